"""Network stacks under one Protocol/Transport contract.

A stack offers ``await stack.listen_tcp(protocol_factory, host, port)`` and hands each accepted
connection to a fresh ``asyncio.Protocol`` through an ``asyncio.Transport``. Stacks: ``posix``
(kernel sockets via uvloop); the native TCP/IP stack and DPDK come later. Imports only
``framework``.
"""

__all__ = ["STACKS"]

STACKS = ("posix",)
