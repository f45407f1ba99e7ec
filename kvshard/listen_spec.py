"""``-l``: memcached 1.6.18's listener list, read as memcached reads it.

The grammar
-----------
``-l`` may be given several times; memcached joins the texts with ``,`` (a text already
contained in what came before is dropped). The list is split on ``;`` and ``,`` (empty
elements skipped), and each element is, in this order::

    [notls:][proto[ascii|binary|negotiating]:][tag[NAME]:]HOST[:PORT]

* ``notls:``: with ``-Z``, this listener is plain TCP; without ``-Z`` memcached refuses it.
* ``proto[...]``: the protocol of this listener's connections, whatever ``-B`` says
  (``negotiating``: each connection's first byte decides). memcached compares only as many
  letters as are given, so ``proto[a]`` is ``ascii``; ``proxy`` needs memcached's proxy.
* ``tag[NAME]``: 1 to 8 characters; memcached uses it only in its proxy, kvshard checks it
  and has no use for it.
* ``HOST``: a name or address, ``*`` for every address, an IPv6 address in brackets
  (``[::1]:11311``); an IPv6 address without brackets cannot take a port (``::1``).
* ``:PORT``: this listener's port, for TCP and for UDP alike, instead of ``-p`` / ``-U``.

What is refused, and how
------------------------
Where memcached 1.6.18 refuses an element it prints its message, then ``failed to listen on
one of interface(s) <the whole -l>: Success`` (the ``errno`` of a parse error is 0), and exits
71; kvshard prints the same, joined on one line, and exits 71 (:class:`MemcachedRefusal`).
Where memcached silently reads something else than what is written (an unknown protocol name
is -B's protocol, ``protoX`` drops ``proto``, the character after ``proto[...]`` is skipped
whatever it is, a port of ``0``, ``-1`` or ``70000``, ``[::1]junk``), kvshard refuses the
element with its own message and exit 64, as for the other flags
(:mod:`kvshard.memcached_options`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Final

from .memcached_options import EX_OSERR, UsageError

__all__ = ["Listener", "MemcachedRefusal", "parse_listeners", "join_listen_flags", "listener_hosts", "MAX_TAG_LENGTH"]

MAX_TAG_LENGTH: Final = 8
# memcached's names for proto[...], in the order it compares them, and kvshard's for each
_PROTOCOLS: Final = (("ascii", "ascii"), ("binary", "binary"), ("negotiating", "auto"), ("proxy", ""))
_SEPARATORS: Final = re.compile(r"[;,]")
_C_SPACE: Final = " \t\n\v\f\r"  # C's isspace
_STRTOL: Final = re.compile(r"[ \t\n\v\f\r]*[+-]?[0-9]+")
_LONG_BITS: Final = 64
_MAX_PORT: Final = 65535


@dataclass(frozen=True)
class Listener:
    """One element of ``-l``: where to listen and how to serve its connections."""

    host: str  # "" for "*": every address
    port: int = 0  # 0: -p's for TCP, -U's for UDP
    protocol: str = ""  # "ascii", "binary", "auto"; "": -B's
    notls: bool = False  # "notls:": plain TCP under -Z
    tag: str = ""
    text: str = ""  # the element as written

    def port_or(self, default: int) -> int:
        """This listener's port: its own, else ``default`` (-p's for TCP, -U's for UDP: memcached's
        UDP pass reads the same list, so an element's port is its UDP port too)."""
        return self.port or default

    def describe(self, default_port: int) -> str:
        """For the start-up log: ``[::1]:11211``, then what differs from the server's defaults."""
        host = f"[{self.host}]" if ":" in self.host else self.host or "*"
        notes = [name for name, present in (
            (f"proto {self.protocol}", self.protocol), ("notls", self.notls), (f"tag {self.tag}", self.tag),
        ) if present]
        return f"{host}:{self.port_or(default_port)}" + (f" ({', '.join(notes)})" if notes else "")


class MemcachedRefusal(UsageError):
    """An element memcached 1.6.18 refuses: its message, then its line about the whole list."""

    def __init__(self, message: str, listen_text: str, newline: bool = True) -> None:
        joined = " " if newline else ""  # (memcached forgets the newline after some messages)
        super().__init__(f"{message}{joined}failed to listen on one of interface(s) {listen_text}: Success", EX_OSERR)


def join_listen_flags(texts: list[str]) -> str:
    """Several ``-l`` flags as memcached joins them: with ``,``, dropping a text that is already
    part of the joined list. Dropping a whole repeated element changes nothing and is done; a
    text that is only part of another element would be lost, and is refused."""
    joined = ""
    for text in texts:
        if not joined:
            joined = text
        elif text not in joined:
            joined = f"{joined},{text}"
        elif not set(_SEPARATORS.split(text)) <= set(_SEPARATORS.split(joined)):
            raise UsageError(f"-l {text!r}: memcached 1.6.18 ignores an -l whose text is part of an earlier one "
                             f"({joined!r}); give both in one -l")
    return joined


class _Element:
    """Reads one element left to right, as memcached's ``server_sockets`` does, and goes on as
    memcached would where memcached misreads it, noting the misread in ``misreads``: those are
    refused only once no refusal of memcached's own came, in this element or a later one (as
    memcached would have met it first). ``start`` is the element's offset in the whole list and
    ``cuts`` the offsets where memcached has written a NUL into its copy of the list so far (one
    of its messages prints the list up to the first)."""

    def __init__(self, text: str, listen_text: str, start: int, cuts: list[int], tls_enabled: bool,
                 misreads: list[UsageError]) -> None:
        self.rest = text
        self.text = text
        self.listen_text = listen_text
        self.start = start
        self.cuts = cuts
        self.tls_enabled = tls_enabled
        self.misreads = misreads

    def _misread(self, why: str) -> None:
        """Something memcached would read as other than what it says."""
        self.misreads.append(UsageError(f"-l {self.text!r}: {why}"))

    def _cut(self) -> None:
        self.cuts.append(self.start + len(self.text) - len(self.rest))

    def _take(self, prefix: str) -> bool:
        if not self.rest.startswith(prefix):
            return False
        self.rest = self.rest[len(prefix):]
        return True

    def _skip_separator(self, after: str) -> None:
        """The ``:`` memcached assumes after ``after`` (it skips that character, whatever it is)."""
        if not self.rest.startswith(":"):
            self._misread(f"':' must follow '{after}' (memcached 1.6.18 skips the character there, whatever it is)")
        self.rest = self.rest[1:]

    def _option(self, name: str, refusal: str) -> str | None:
        """``name[VALUE]:`` where the rest starts with ``name``: VALUE (the rest then follows the
        colon); None when it does not start with ``name[``."""
        if not self._take(name):
            return None
        if not self.rest.startswith("["):
            if self.rest:  # (nothing: an empty host, which memcached refuses)
                self._misread(f"memcached 1.6.18 reads {name!r} without '[...]' as nothing; write {name}[...]: "
                              f"or a host name that does not start with {name!r}")
            return None
        end = self.rest.find("]")
        if end < 0:
            raise MemcachedRefusal(f'{refusal}: "{self.rest}"', self.listen_text)
        value = self.rest[1:end]
        self.rest = self.rest[end:]
        self._cut()
        self.rest = self.rest[1:]
        self._skip_separator(f"{name}[{value}]")
        return value

    def notls(self) -> bool:
        """``notls:``: whether this listener is plain TCP under ``-Z``."""
        if not self._take("notls"):
            return False
        if not self.tls_enabled:
            raise MemcachedRefusal("'notls' option is valid only when SSL is enabled", self.listen_text)
        self._skip_separator("notls")
        return True

    def protocol(self) -> str:
        name = self._option("proto", "Invalid protocol spec")
        if name is None:
            return ""
        for memcached_name, ours in _PROTOCOLS:
            if name and memcached_name.startswith(name):
                if not ours:
                    shown = self.listen_text[:min(self.cuts)]
                    raise MemcachedRefusal(f'Server not built with proxy: "{shown}"', self.listen_text)
                return ours
        instead = "-B's protocol" if name else "ASCII"
        self._misread(f"proto[{name}] is no protocol: ascii, binary or negotiating (memcached 1.6.18 would "
                      f"silently use {instead})")
        return ""

    def tag(self) -> str:
        name = self._option("tag", "Invalid tag in socket config")
        if name is None:
            return ""
        if not 1 <= len(os.fsencode(name)) <= MAX_TAG_LENGTH:  # bytes, as memcached counts
            raise MemcachedRefusal(f'Listener tags must be between 1 and {MAX_TAG_LENGTH} characters: "{name}"',
                                   self.listen_text)
        return name

    def host_and_port(self) -> tuple[str, int]:
        bracketed = self.rest.startswith("[")
        if bracketed:
            end = self.rest.find("]")
            if end < 0:
                raise MemcachedRefusal(f'Invalid IPV6 address: "{self.rest}"', self.listen_text, newline=False)
            host, self.rest = self.rest[1:end], self.rest[end:]
            self._cut()
            self.rest = self.rest[1:]
        else:
            host = self.rest
        port = 0
        colon = self.rest.find(":")
        before_port = self.rest
        # an IPv6 address without brackets has more than one colon: it takes no port
        if colon >= 0 and (bracketed or ":" not in self.rest[colon + 1:]):
            before_port, self.rest = self.rest[:colon], self.rest[colon:]
            self._cut()
            port = self._port(self.rest[1:])
            host = host if bracketed else before_port
        if bracketed and before_port:
            self._misread(f"memcached 1.6.18 ignores {before_port!r} after the address in brackets")
        if not host:
            raise MemcachedRefusal("getaddrinfo(): Name or service not known", self.listen_text)
        return ("" if host == "*" else host), port

    def _port(self, text: str) -> int:
        """memcached's ``safe_strtol``, then kvshard's range."""
        match = _STRTOL.match(text)
        rest = text[match.end():] if match else ""
        in_range = match is not None and -(1 << (_LONG_BITS - 1)) <= int(match[0]) < 1 << (_LONG_BITS - 1)
        if not in_range or rest[:1] not in ("", *_C_SPACE):
            raise MemcachedRefusal(f'Invalid port number: "{text}"', self.listen_text)
        if not re.fullmatch("[0-9]+", text) or not 1 <= int(text) <= _MAX_PORT:
            self._misread(f"port {text!r} is not a port number from 1 to {_MAX_PORT} (memcached 1.6.18 would "
                          "listen on another port than that)")
            return 0
        return int(text)


def parse_listeners(listen_text: str, tls_enabled: bool) -> tuple[Listener, ...]:
    """Every element of the joined ``-l`` text (``tls_enabled``: ``-Z`` was given)."""
    listeners = []
    cuts = [len(listen_text)]
    misreads: list[UsageError] = []
    for match in re.finditer(r"[^;,]+", listen_text):
        cuts.append(match.end())  # strtok_r ends the element there
        element = _Element(match[0], listen_text, match.start(), cuts, tls_enabled, misreads)
        notls = element.notls()
        protocol = element.protocol()
        tag = element.tag()
        host, port = element.host_and_port()
        listeners.append(Listener(host, port, protocol, notls, tag, match[0]))
    if misreads:
        raise misreads[0]
    if not listeners:
        raise UsageError(f"-l {listen_text!r}: no address given")
    return tuple(listeners)


def listener_hosts(listeners: tuple[Listener, ...]) -> tuple[str, ...]:
    """The hosts of ``listeners``, each once, in order (for the metrics endpoint's default)."""
    return tuple(dict.fromkeys(listener.host for listener in listeners))
