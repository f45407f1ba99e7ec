"""ICMP (RFC 792): echo requests are answered; every other message is counted and ignored.

Receive path: the message checksum must be right (``icmp_bad_checksum``), and a type 8 code 0
echo request becomes a type 0 echo reply with the same identifier, sequence and data. Send path:
only those replies."""

from __future__ import annotations

from typing import Final, NamedTuple

from .checksum import internet_checksum

__all__ = ["IcmpMessage", "parse_icmp", "build_echo_reply", "build_echo_request", "ECHO_REQUEST", "ECHO_REPLY"]

ECHO_REPLY: Final = 0
ECHO_REQUEST: Final = 8
_HEADER_LEN: Final = 8


class IcmpMessage(NamedTuple):
    type: int
    code: int
    rest: bytes  # identifier + sequence for echo
    data: memoryview


def parse_icmp(message: memoryview) -> IcmpMessage | None:
    """The message, or None if it is short or its checksum is wrong."""
    if len(message) < _HEADER_LEN or internet_checksum(message) != 0:
        return None
    return IcmpMessage(message[0], message[1], bytes(message[4:8]), message[8:])


def _build(type_: int, rest: bytes, data: bytes | memoryview) -> bytes:
    body = bytes((type_, 0, 0, 0)) + rest + bytes(data)
    csum = internet_checksum(body)
    return body[:2] + csum.to_bytes(2, "big") + body[4:]


def build_echo_reply(request: IcmpMessage) -> bytes:
    return _build(ECHO_REPLY, request.rest, request.data)


def build_echo_request(ident: int, sequence: int, data: bytes) -> bytes:
    return _build(ECHO_REQUEST, ident.to_bytes(2, "big") + sequence.to_bytes(2, "big"), data)
