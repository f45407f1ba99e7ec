"""Network stacks under one Protocol/Transport contract.

A stack offers ``await stack.listen_tcp(protocol_factory, host, port)`` and hands each accepted
connection to a fresh ``asyncio.Protocol`` through an ``asyncio.Transport``. Stacks: ``posix``
(kernel sockets via uvloop); ``native`` (our own TCP/IP stack over a TAP device, one queue per
shard: net_backends/native, or over a DPDK port: net_backends/dpdk). Imports only ``framework``.
"""

import framework.extensions  # noqa: F401 - first: decides compiled or interpreted modules

__all__ = ["STACKS"]

STACKS = ("posix", "native")
