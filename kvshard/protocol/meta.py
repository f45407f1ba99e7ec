"""memcached's meta commands (mg, ms, md, ma, mn, me), sans-IO: a command line's tokens in, a
request or an error line out.

Theory of operation
-------------------
A meta command is ``<cm> <key> [<datalen>] <flag>*``: ``cm`` is two characters starting with
``m``; each flag is one character, maybe followed by a token (``T30``, ``Oabc``). The
:class:`~kvshard.protocol.ascii.AsciiParser` splits the line and hands the tokens here; ``ms``
then reads its data block like ``set`` does.

Checks run in memcached 1.6's order, and the first failure is the answer:

  1. too few tokens: ``ERROR`` (``me``: ``CLIENT_ERROR bad command line format``);
  2. key over 250 bytes, then more than 17 flags (16 for ``ms``, whose data length is a
     token too), then for ``ms`` the data length;
  3. the flags, left to right (:func:`parse_flags`): a repeated flag (or one whose first
     byte is >= 127) or an unknown one stops at once; a bad number or an undecodable base64
     key is remembered and parsing goes on, so a later bad number's message wins;
  4. the mode (``M``) of ``ms`` and ``ma``;
  5. an opaque (``O``) token over 32 bytes, ``O`` included (``ma`` checks it after doing
     its arithmetic, as memcached does, so a non-numeric value is reported first; see
     :mod:`kvshard.meta_ops`).

``md`` and ``ma`` answer every step-3 failure with ``CLIENT_ERROR invalid or duplicate flag``,
as memcached does. Errors are always sent, ``q`` or not. An ``ms`` that fails at step 3 or
later still has its data block read and dropped; one that fails earlier does not (its data is
then parsed as a command, as in memcached).

memcached checks an ``mg``'s opaque length while writing the answer, after a ``T`` before it
has changed the item; this parser checks it first, so such an ``mg`` changes nothing. The
reply is the same.

Flags that memcached 1.6.18 does not know yet but later versions do are accepted, with the
semantics of memcached's current protocol.txt: ``E<cas>`` (the CAS value an item gets when the
command changes it) and ``md x`` (keep the item, drop its value).

Every flag is accepted by every command (memcached parses them all the same way); a flag a
command has no use for is ignored.
"""

from __future__ import annotations

import binascii
from typing import Final, NamedTuple

from .numbers import strtol32, strtoul32, strtoull

__all__ = [
    "MetaFlags",
    "META_GET", "META_SET", "META_DELETE", "META_ARITH", "META_DEBUG",
    "MS_MODES", "MA_DECREMENT_MODES",
    "MAX_OPAQUE_LENGTH",
    "parse_flags",
    "check_line",
    "check_flags",
    "debug_key",
    "decode_key",
    "key_token",
    "long_opaque",
    "R_MN", "R_EN", "R_OPAQUE_TOO_LONG",
]

META_GET: Final = b"g"
META_SET: Final = b"s"
META_DELETE: Final = b"d"
META_ARITH: Final = b"a"
META_DEBUG: Final = b"e"

MS_MODES: Final = {b"S": b"set", b"E": b"add", b"A": b"append", b"P": b"prepend", b"R": b"replace"}
MA_DECREMENT_MODES: Final = frozenset((b"D", b"-"))
_MA_MODES: Final = frozenset((b"I", b"+", b"D", b"-"))

MAX_OPAQUE_LENGTH: Final = 32
_MAX_TOKENS: Final = 19  # memcached: more than 20 tokens counting its end marker is too many
_KEY_MAX_LENGTH: Final = 250

R_MN: Final = b"MN\r\n"
R_EN: Final = b"EN\r\n"
_R_ERROR: Final = b"ERROR\r\n"
_R_BAD_FORMAT: Final = b"CLIENT_ERROR bad command line format\r\n"
_R_BAD_TOKEN: Final = b"CLIENT_ERROR bad token in command line format\r\n"
_R_DUPLICATE: Final = b"CLIENT_ERROR duplicate flag\r\n"
_R_INVALID: Final = b"CLIENT_ERROR invalid flag\r\n"
_R_INVALID_OR_DUPLICATE: Final = b"CLIENT_ERROR invalid or duplicate flag\r\n"
R_OPAQUE_TOO_LONG: Final = b"CLIENT_ERROR opaque token too long\r\n"
_R_GET_TOO_MANY: Final = b"CLIENT_ERROR options flags are too long\r\n"
_R_TOO_MANY: Final = b"CLIENT_ERROR options flags too long\r\n"


class MetaFlags(NamedTuple):
    """What a meta command's flags ask for. ``tokens`` keeps every flag in request order:
    the answer's flags follow that order. Travels between shards as a plain list."""

    tokens: list[bytes]
    quiet: bool = False          # q
    base64: bool = False         # b: the key was sent base64-encoded
    value: bool = False          # v
    no_bump: bool = False        # u
    ttl: int | None = None       # T
    vivify: int | None = None    # N
    recache: int | None = None   # R
    compare_cas: int | None = None  # C
    new_cas: int | None = None   # E
    client_flags: int = 0        # F
    invalidate: bool = False     # I
    remove_value: bool = False   # x
    mode: bytes = b""            # M
    delta: int = 1               # D
    initial: int = 0             # J


def decode_key(token: bytes) -> bytes | None:
    """A base64 key (``b``) decoded; None if it is not valid base64 or decodes to nothing."""
    try:
        key = binascii.a2b_base64(token, strict_mode=True)
    except binascii.Error:
        return None
    return key or None


def key_token(key: bytes, base64: bool) -> bytes:
    """The ``k`` flag of an answer: `` k<key>``, or `` k<base64> b`` for a binary key."""
    if base64:
        return b" k" + binascii.b2a_base64(key, newline=False) + b" b"
    return b" k" + key


_NUMBERS: Final = {
    ord("T"): ("ttl", strtol32, _R_BAD_TOKEN),
    ord("N"): ("vivify", strtol32, _R_BAD_TOKEN),
    ord("R"): ("recache", strtol32, _R_BAD_TOKEN),
    ord("C"): ("compare_cas", strtoull, _R_BAD_TOKEN),
    ord("E"): ("new_cas", strtoull, _R_BAD_TOKEN),
    ord("J"): ("initial", strtoull, b"CLIENT_ERROR invalid numeric initial value\r\n"),
    ord("D"): ("delta", strtoull, b"CLIENT_ERROR invalid numeric delta value\r\n"),
    ord("F"): ("client_flags", strtoul32, None),  # memcached keeps the message it had
}
_SWITCHES: Final = {
    ord("q"): "quiet", ord("v"): "value", ord("u"): "no_bump", ord("I"): "invalidate",
    ord("x"): "remove_value",
}
_PLAIN: Final = frozenset(b"OPLkstcfhl")  # known flags that set nothing while parsing


def parse_flags(key: bytes, tokens: list[bytes]) -> tuple[bytes, MetaFlags] | bytes:
    """(decoded key, flags), or the error line for a bad flag (step 3 above, with the
    messages ``mg`` and ``ms`` use)."""
    seen: set[int] = set()
    fields: dict[str, object] = {}
    error: bytes | None = None
    for token in tokens:
        flag = token[0]
        if flag >= 127 or flag in seen:
            return _R_DUPLICATE
        seen.add(flag)
        number = _NUMBERS.get(flag)
        if number is not None:
            name, parse, message = number
            parsed = parse(token[1:])
            if parsed is None:
                error = message or error or _R_BAD_FORMAT
            else:
                fields[name] = parsed
        elif flag in _SWITCHES:
            fields[_SWITCHES[flag]] = True
        elif flag == 98:  # b
            decoded = decode_key(key)
            if decoded is None:
                error = b"CLIENT_ERROR error decoding key\r\n"
            else:
                key = decoded
            fields["base64"] = True
        elif flag == 77:  # M
            if len(token) != 2:
                error = b"CLIENT_ERROR incorrect length for M token\r\n"
            else:
                fields["mode"] = token[1:]
        elif flag not in _PLAIN:
            return _R_INVALID
    if error is not None:
        return error
    return key, MetaFlags(tokens, **fields)  # type: ignore[arg-type]


def check_line(verb: bytes, tokens: list[bytes]) -> bytes | None:
    """Step 2 (key length, flag count) for ``mg``, ``ms``, ``md``, ``ma``: the error line, or
    None. ``tokens`` is the whole line."""
    if len(tokens[1]) > _KEY_MAX_LENGTH:
        return _R_BAD_FORMAT
    if len(tokens) > _MAX_TOKENS:
        return _R_GET_TOO_MANY if verb == META_GET else _R_TOO_MANY
    return None


def check_flags(verb: bytes, tokens: list[bytes]) -> tuple[bytes, MetaFlags] | bytes:
    """Steps 3 to 5: (decoded key, flags) or the error line. ``tokens`` is the whole line
    (an ``ms``'s flags start after its data length)."""
    parsed = parse_flags(tokens[1], tokens[3:] if verb == META_SET else tokens[2:])
    if type(parsed) is bytes:
        return _R_INVALID_OR_DUPLICATE if verb in (META_DELETE, META_ARITH) else parsed
    flags = parsed[1]  # type: ignore[index]
    if flags.mode:
        if verb == META_SET and flags.mode not in MS_MODES:
            return b"CLIENT_ERROR invalid mode for ms M token\r\n"
        if verb == META_ARITH and flags.mode not in _MA_MODES:
            return b"CLIENT_ERROR invalid mode for ma M token\r\n"
    if verb != META_ARITH and long_opaque(flags.tokens):
        return R_OPAQUE_TOO_LONG
    return parsed  # type: ignore[return-value]


def long_opaque(tokens: list[bytes]) -> bool:
    """An ``O`` token over :data:`MAX_OPAQUE_LENGTH` bytes (``O`` included) is there."""
    return any(token[0] == 79 and len(token) > MAX_OPAQUE_LENGTH for token in tokens)


def debug_key(tokens: list[bytes]) -> bytes | None:
    """The key ``me`` looks up (decoded when the next token is exactly ``b``), or None for a
    bad line; ``me`` ignores any other token."""
    if len(tokens) < 2 or len(tokens[1]) > _KEY_MAX_LENGTH:
        return None
    key = tokens[1]
    if len(tokens) > 2 and tokens[2] == b"b":
        return decode_key(key)
    return key
