"""The meta commands, run by the shard that owns the key: each returns its whole answer.

Theory of operation
-------------------
The parser (:mod:`kvshard.protocol.meta`) has already refused every malformed command, so
these functions only meet valid flags. Each looks the item up once, acts, and writes the
answer: a two-letter code, then the return flags in the order the request gave them, then
(``mg v``, ``ma v``) the value. memcached's rules, with 1.6.18 as the reference:

``mg``  hit: ``VA <size>`` with ``v``, else ``HD``. Walking the flags in order, ``T`` sets the
        TTL, ``N`` (if this command created the item) sets its TTL and wins, ``R`` wins when
        the TTL left is below its token and no win was sent; ``s t c f l h O k`` print.
        Then ``Z`` if a win was already sent, ``X`` if stale (a stale item with no win sent
        wins), ``W`` if won (and the item remembers that a win was sent). ``h`` and ``l``
        show the item before this hit; ``u`` leaves LRU place and hit marks alone.
        Miss: ``N`` creates an empty item (flags 0) and goes on as a hit; otherwise ``EN``
        with ``O``/``k`` echoed, nothing at all with ``q``.
``ms``  modes S (set), E (add), A (append), P (prepend), R (replace); ``C`` makes set and
        replace a CAS store, append/prepend check it, add ignores it; ``I`` with ``C`` lets
        a lower CAS store a stale value. ``HD`` (not sent with ``q``), ``NS``, ``EX``, ``NF``;
        ``c`` prints the new CAS (0 when nothing was stored).
``md``  ``NF`` miss, ``EX`` CAS mismatch, else ``HD`` (not sent with ``q``): deleted, or
        with ``I`` kept, marked stale, win cleared, given a new CAS and, with ``T``, a new
        TTL; with ``x`` the value is replaced by an empty one (flags from ``F``, TTL from
        ``T``, CAS kept unless ``E``).
``ma``  increment (or decrement with ``MD``/``M-``) by ``D`` (default 1); ``NF`` on a miss
        unless ``N`` creates the item with ``J``; ``EX`` on CAS mismatch; ``HD`` or
        ``VA <len>`` + number; a success is not sent with ``q`` unless ``N`` created the item
        (memcached 1.6.18 answers those).
``me``  ``ME <key> exp= la= cas= fetch= cls= size=`` or ``EN``. ``exp`` is memcached's
        ``now - expiry`` (so a TTL of 100 reads -100; -1 for none). kvshard has no slabs:
        ``cls`` is the class memcached's default slab table (``-n 48 -f 1.25``, 512 KiB
        largest chunk) gives an item of ``size`` bytes, so tools reading these lines see
        what they would see from memcached.

One deliberate difference: an item that ``mg N`` or ``ma N`` creates from a base64 key (``b``)
remembers that its key is binary, so ``k`` answers it in base64; memcached 1.6.18 forgets, and
its ``mg ... b N k`` writes the raw key bytes into the answer line, which a binary key (the
reason for ``b``) can break.

Statistics follow memcached: ``mg`` counts a get hit or miss (a touch with ``T``), ``ms`` a
set (and CAS outcomes), ``md`` a delete hit or miss, ``ma`` an incr/decr hit or miss.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

from . import cache as c
from .counters import DELETE_HITS, TOUCH_HITS
from .protocol import meta as m
from .protocol.ascii import R_NON_NUMERIC, R_OUT_OF_MEMORY, item_total_size

__all__ = ["meta_get", "meta_set", "meta_delete", "meta_arith", "meta_debug", "slab_class"]

_U32: Final = 1 << 32
_SET_CODES: Final = {c.STORED: b"HD", c.NOT_STORED: b"NS", c.EXISTS: b"EX", c.NOT_FOUND: b"NF"}


def _slab_sizes() -> list[int]:
    sizes = []
    size = 96  # item header (48) + minimum chunk (-n 48)
    while size < 524288 / 1.25:
        if size % 8:
            size += 8 - size % 8
        sizes.append(size)
        size = int(size * 1.25)
    sizes.append(524288)
    return sizes


_SLAB_SIZES: Final = _slab_sizes()


def slab_class(size: int) -> int:
    """memcached's default slab class for an item of ``size`` bytes (1-based; the largest
    class for items that memcached would store in chunks)."""
    return min(bisect_left(_SLAB_SIZES, size), len(_SLAB_SIZES) - 1) + 1


def _echo(tokens: list[bytes], key: bytes, base64: bool) -> bytes:
    """The ``O`` and ``k`` flags of an answer that has no item to describe."""
    out = b""
    for token in tokens:
        flag = token[0]
        if flag == 79:  # O
            out += b" " + token
        elif flag == 107:  # k
            out += m.key_token(key, base64)
    return out


def _ttl(cache: c.Cache, expire_at: int) -> bytes:
    return b"-1" if not expire_at else b"%d" % (cache.remaining(expire_at) % _U32)


def meta_get(cache: c.Cache, key: bytes, f: m.MetaFlags) -> bytes:
    item = cache.peek(key)
    created = False
    if item is None and f.vivify is not None:
        item = cache.create(key, b"", 0, f.new_cas or 0, marks=c.BINARY_KEY if f.base64 else 0)
        created = item is not None
    if item is None:
        cache.stats.get_misses += 1
        return b"" if f.quiet else b"EN" + _echo(f.tokens, key, f.base64) + b"\r\n"
    block, flags, expire_at, cas, header_len, seen, marks = item
    size = len(block) - header_len - 2
    out = [b"VA %d" % size if f.value else b"HD"]
    won = ttl_set = False
    for token in f.tokens:
        flag = token[0]
        if flag == 84:  # T
            ttl_set = True
            expire_at = cache.expire_at(f.ttl)  # type: ignore[arg-type]
        elif flag == 78:  # N
            if created:
                expire_at = cache.expire_at(f.vivify)  # type: ignore[arg-type]
                won = True
        elif flag == 82:  # R
            if (  # whole seconds, as memcached compares them
                not marks & c.WIN_SENT and not created and expire_at
                and int(expire_at) < int(cache.expire_at(f.recache))  # type: ignore[arg-type]
            ):
                won = True
        elif flag == 115:  # s
            out.append(b" s%d" % size)
        elif flag == 116:  # t
            out.append(b" t" + _ttl(cache, expire_at))
        elif flag == 99:  # c
            out.append(b" c%d" % cas)
        elif flag == 102:  # f
            out.append(b" f%d" % flags)
        elif flag == 108:  # l
            out.append(b" l%d" % ((cache.now_second() - seen) % _U32))
        elif flag == 104:  # h
            out.append(b" h1" if marks & c.FETCHED else b" h0")
        elif flag == 79:  # O
            out.append(b" " + token)
        elif flag == 107:  # k
            out.append(m.key_token(key, bool(marks & c.BINARY_KEY)))
    new_marks = marks
    if marks & c.WIN_SENT:
        out.append(b" Z")
    if marks & c.STALE:
        out.append(b" X")
        if not marks & c.WIN_SENT:
            won = True
    if won:
        out.append(b" W")
        new_marks |= c.WIN_SENT
    if expire_at != item[2] or new_marks != marks:
        item = cache.amend(key, item, expire_at=expire_at, marks=new_marks)
    if not f.no_bump:
        cache.bump(key, item)
    if ttl_set:
        cache.stats.cmd_touch += 1
        cache.count_hit(TOUCH_HITS, key, item)
    else:
        cache.count_get_hit(key)
    out.append(b"\r\n")
    if f.value:
        out.append(block[header_len:])
    return b"".join(out)


def meta_set(cache: c.Cache, key: bytes, f: m.MetaFlags, value: bytes) -> bytes:
    op = m.MS_MODES[f.mode or b"S"]
    cas = f.compare_cas or 0
    if op == b"add":
        cas = 0  # an add with a CAS is just an add
    elif f.compare_cas is not None and (op == b"set" or op == b"replace"):
        op = b"cas"  # (C0 included: a CAS of 0 never matches, as in memcached)
    result = cache.store(
        op, key, f.client_flags, f.ttl or 0, value, cas,
        new_cas=f.new_cas or 0, allow_stale=f.invalidate and op == b"cas",
        marks=c.BINARY_KEY if f.base64 else 0,
    )
    if result == c.NO_MEMORY:
        return R_OUT_OF_MEMORY
    if result == c.STORED and f.quiet:
        return b""
    out = [_SET_CODES[result]]
    for token in f.tokens:
        flag = token[0]
        if flag == 79:  # O
            out.append(b" " + token)
        elif flag == 107:  # k
            out.append(m.key_token(key, f.base64))
        elif flag == 99:  # c
            out.append(b" c%d" % (cache.cas_of(key) if result == c.STORED else 0))
    out.append(b"\r\n")
    return b"".join(out)


def meta_delete(cache: c.Cache, key: bytes, f: m.MetaFlags) -> bytes:
    echo = _echo(f.tokens, key, f.base64)
    item = cache.peek(key)
    if item is None:
        cache.stats.delete_misses += 1
        return b"NF" + echo + b"\r\n"
    if f.compare_cas is not None and item[3] != f.compare_cas:
        cache.stats.delete_misses += 1
        return b"EX" + echo + b"\r\n"
    found = item  # (counted in its class, as memcached counts the item it found)
    if f.remove_value:
        emptied = cache.create(key, b"", cache.expire_at(f.ttl or 0), f.new_cas or item[3], f.client_flags)
        if emptied is None:
            return b"NS" + echo + b"\r\n"
        item = emptied
    if f.invalidate:
        expire_at = cache.expire_at(f.ttl) if f.ttl is not None else None
        marks = (item[6] | c.STALE) & ~c.WIN_SENT
        cache.amend(key, item, expire_at=expire_at, marks=marks, cas=f.new_cas or cache.new_cas())
    else:
        cache.count_hit(DELETE_HITS, key, found)
        if not f.remove_value:
            cache.remove(key, item)
    return b"" if f.quiet else b"HD" + echo + b"\r\n"


def meta_arith(cache: c.Cache, key: bytes, f: m.MetaFlags) -> bytes:
    incr = f.mode not in m.MA_DECREMENT_MODES
    item = cache.peek(key)
    created = False
    if item is None:
        if f.vivify is None:
            cache.stats.add("incr_misses" if incr else "decr_misses")
            return _code_or_opaque_error(b"NF", f, key)
        item = cache.create(key, b"%d" % f.initial, 0, f.new_cas or 0, marks=c.BINARY_KEY if f.base64 else 0)
        if item is None:
            return b"SERVER_ERROR Out of memory allocating new item\r\n"
        created = True
        number = f.initial
    elif f.compare_cas is not None and item[3] != f.compare_cas:
        return _code_or_opaque_error(b"EX", f, key)
    else:
        result = cache.arith(incr, key, f.delta)
        if result == c.NON_NUMERIC:
            return R_NON_NUMERIC
        assert result is not None  # the item was live a moment ago
        number = result
        item = cache.peek(key)
        assert item is not None
        if f.new_cas is not None:
            item = cache.amend(key, item, cas=f.new_cas)
    if m.long_opaque(f.tokens):  # checked after the arithmetic, as memcached does
        return m.R_OPAQUE_TOO_LONG
    if f.quiet and not created:
        # the item's new TTL still applies; memcached 1.6.18 answers created items even with q
        _arith_flags(cache, key, item, f, created, [])
        return b""
    digits = b"%d" % number
    out = [b"VA %d" % len(digits) if f.value else b"HD"]
    _arith_flags(cache, key, item, f, created, out)
    if f.value:
        out.append(b"\r\n" + digits)
    out.append(b"\r\n")
    return b"".join(out)


def _code_or_opaque_error(code: bytes, f: m.MetaFlags, key: bytes) -> bytes:
    if m.long_opaque(f.tokens):
        return m.R_OPAQUE_TOO_LONG
    return code + _echo(f.tokens, key, f.base64) + b"\r\n"


def _arith_flags(cache: c.Cache, key: bytes, item: c.Item, f: m.MetaFlags, created: bool, out: list[bytes]) -> None:
    """The flags of an ``ma`` that found or made its item, in request order."""
    expire_at = item[2]
    for token in f.tokens:
        flag = token[0]
        if flag == 99:  # c
            out.append(b" c%d" % item[3])
        elif flag == 116:  # t
            out.append(b" t" + _ttl(cache, expire_at))
        elif flag == 84:  # T
            expire_at = cache.expire_at(f.ttl)  # type: ignore[arg-type]
        elif flag == 78:  # N
            if created:
                expire_at = cache.expire_at(f.vivify)  # type: ignore[arg-type]
        elif flag == 79:  # O
            out.append(b" " + token)
        elif flag == 107:  # k
            out.append(m.key_token(key, f.base64))
    if expire_at != item[2]:
        cache.amend(key, item, expire_at=expire_at)


def meta_debug(cache: c.Cache, key: bytes) -> bytes:
    item = cache.peek(key)
    if item is None:
        return m.R_EN
    block, flags, expire_at, cas, header_len, seen, marks = item
    shown = m.key_token(key, bool(marks & c.BINARY_KEY))[2:].removesuffix(b" b")
    size = item_total_size(len(key), flags, len(block) - header_len - 2)
    exp = -1 if not expire_at else -cache.remaining(expire_at)
    return b"ME %b exp=%d la=%d cas=%d fetch=%b cls=%d size=%d\r\n" % (
        shown, exp, cache.now_second() - seen, cas, b"yes" if marks & c.FETCHED else b"no",
        slab_class(size), size,
    )
