"""Meta commands (mg, ms, md, ma, mn, me): every flag, against kvshard and (where installed)
memcached.

Answers are compared byte for byte. CAS values are read back with ``mg c`` (the servers number
items differently); TTLs and last-access times may tick over a second boundary between the
request and the check, so those fields are matched with a one-second tolerance. Flags that
memcached gained after 1.6.18 (``E``, ``md x``) are tested in test_meta_newer.py.
"""

from __future__ import annotations

import base64
import re

import pytest

from .conftest import Keys
from .wire import Wire, meta_cas


def line_of(conn: Wire, request: bytes) -> bytes:
    return conn.request(request, b"\r\n")


def ttl_field(line: bytes, name: bytes = b"t") -> int:
    m = re.search(rb" " + name + rb"(-?\d+)", line)
    assert m, line
    return int(m.group(1))


# ----- mg ---------------------------------------------------------------------------------------


def test_mg_hit_without_flags_is_hd(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(b"ms " + k + b" 5\r\nhello\r\n", b"HD\r\n")
    conn.call(b"mg " + k + b"\r\n", b"HD\r\n")
    conn.call(b"mg " + k + b" v\r\n", b"VA 5\r\nhello\r\n")


def test_mg_return_flags_in_request_order(conn: Wire, keys: Keys) -> None:
    """s f c k O print in the order asked, value last; a miss is EN with O and k echoed."""
    k = keys()
    conn.call(b"ms " + k + b" 5 F7\r\nhello\r\n", b"HD\r\n")
    cas = meta_cas(conn, k)
    conn.call(
        b"mg " + k + b" s v f c k O99\r\n",
        b"VA 5 s5 f7 c%d k%s O99\r\nhello\r\n" % (cas, k),
    )
    conn.call(b"mg " + k + b" O1 k f\r\n", b"HD O1 k" + k + b" f7\r\n")
    missing = keys()
    conn.call(b"mg " + missing + b" v\r\n", b"EN\r\n")
    conn.call(b"mg " + missing + b" v k O5 s c\r\n", b"EN k" + missing + b" O5\r\n")


def test_mg_ttl_flag(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(b"ms " + k + b" 1\r\nx\r\n", b"HD\r\n")
    conn.call(b"mg " + k + b" t\r\n", b"HD t-1\r\n")
    conn.call(b"ms " + k + b" 1 T100\r\nx\r\n", b"HD\r\n")
    assert 99 <= ttl_field(line_of(conn, b"mg " + k + b" t\r\n")) <= 100


def test_mg_T_updates_ttl_in_flag_order(conn: Wire, keys: Keys) -> None:
    """T applies where it stands: a t before it shows the old TTL, a t after it the new."""
    k = keys()
    conn.call(b"ms " + k + b" 1\r\nx\r\n", b"HD\r\n")
    conn.call(b"mg " + k + b" t T300\r\n", b"HD t-1\r\n")
    assert 299 <= ttl_field(line_of(conn, b"mg " + k + b" t\r\n")) <= 300
    assert 199 <= ttl_field(line_of(conn, b"mg " + k + b" T200 t\r\n")) <= 200


def test_mg_T_counts_as_touch(conn: Wire, keys: Keys) -> None:
    def counters() -> dict[bytes, int]:
        conn.send(b"stats\r\n")
        out = conn.recv_until(b"END\r\n")
        return {m.group(1): int(m.group(2)) for m in re.finditer(rb"STAT (\w+) (\d+)\r\n", out)}

    k = keys()
    conn.call(b"ms " + k + b" 1\r\nx\r\n", b"HD\r\n")
    before = counters()
    conn.call(b"mg " + k + b" T30\r\n", b"HD\r\n")
    conn.call(b"mg " + k + b"\r\n", b"HD\r\n")
    conn.call(b"mg " + keys() + b"\r\n", b"EN\r\n")
    after = counters()
    assert after[b"cmd_touch"] - before[b"cmd_touch"] == 1
    assert after[b"touch_hits"] - before[b"touch_hits"] == 1
    assert after[b"get_hits"] - before[b"get_hits"] == 1
    assert after[b"get_misses"] - before[b"get_misses"] == 1


def test_mg_h_and_l_show_the_item_before_this_hit(conn: Wire, keys: Keys) -> None:
    """h: hit before? l: seconds since last access. u leaves both alone."""
    k = keys()
    conn.call(b"ms " + k + b" 1\r\nx\r\n", b"HD\r\n")
    assert re.fullmatch(rb"HD h0 l[01]\r\n", line_of(conn, b"mg " + k + b" h l u\r\n"))
    assert re.fullmatch(rb"HD h0 l[01]\r\n", line_of(conn, b"mg " + k + b" h l\r\n"))
    assert re.fullmatch(rb"HD h1 l[01]\r\n", line_of(conn, b"mg " + k + b" h l\r\n"))


def test_mg_quiet_hides_only_misses(conn: Wire, keys: Keys) -> None:
    """q: a miss says nothing; a hit still answers; mn marks the end of the pipeline."""
    hit, miss = keys(), keys()
    conn.call(b"ms " + hit + b" 2\r\nhi\r\n", b"HD\r\n")
    conn.call(
        b"mg " + miss + b" v q k\r\nmg " + hit + b" v q k\r\nmg " + hit + b" q\r\nmn\r\n",
        b"VA 2 k" + hit + b"\r\nhi\r\nHD\r\nMN\r\n",
    )


def test_mg_opaque_pipeline_matches_answers(conn: Wire, keys: Keys) -> None:
    """Opaques tell pipelined answers apart across both shards' keys."""
    ks = [keys() for _ in range(8)]
    for i, k in enumerate(ks[::2]):
        conn.call(b"ms %s 1\r\n%d\r\n" % (k, i), b"HD\r\n")
    request = b"".join(b"mg %s v q O%d\r\n" % (k, n) for n, k in enumerate(ks)) + b"mn\r\n"
    expected = b"".join(b"VA 1 O%d\r\n%d\r\n" % (n, n // 2) for n in range(0, 8, 2)) + b"MN\r\n"
    conn.call(request, expected)


def test_mg_base64_key(conn: Wire, keys: Keys) -> None:
    """b: the key is base64; k answers it in base64 followed by a b flag; the decoded key is
    the same item a plain command sees."""
    raw = keys()
    encoded = base64.b64encode(raw)
    conn.call(b"ms " + encoded + b" 2 b\r\nzz\r\n", b"HD\r\n")
    conn.call(b"mg " + encoded + b" b k v\r\n", b"VA 2 k" + encoded + b" b\r\nzz\r\n")
    conn.call(b"get " + raw + b"\r\n", b"VALUE " + raw + b" 0 2\r\nzz\r\nEND\r\n")
    conn.call(b"mg " + raw + b" k\r\n", b"HD k" + encoded + b" b\r\n")  # the item remembers
    missing = base64.b64encode(keys())
    conn.call(b"mg " + missing + b" b k\r\n", b"EN k" + missing + b" b\r\n")


def test_mg_vivify_wins_then_others_see_Z(conn: Wire, keys: Keys) -> None:
    """N on a miss creates an empty item and answers W (won); later fetches see Z; the TTL
    is the N token's."""
    k = keys()
    line = line_of(conn, b"mg " + k + b" N100 s t v\r\n")
    m = re.fullmatch(rb"VA 0 s0 t(\d+) W\r\n", line)
    assert m and 99 <= int(m.group(1)) <= 100, line
    conn.expect(b"\r\n")
    conn.call(b"mg " + k + b" N100 s v\r\n", b"VA 0 s0 Z\r\n\r\n")
    conn.call(b"mg " + k + b" f\r\n", b"HD f0 Z\r\n")
    conn.call(b"ms " + k + b" 3\r\nnew\r\n", b"HD\r\n")  # recached: the marks are gone
    conn.call(b"mg " + k + b" v\r\n", b"VA 3\r\nnew\r\n")


def test_mg_recache_wins_once_when_ttl_is_low(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(b"ms " + k + b" 2 T100\r\nxx\r\n", b"HD\r\n")
    conn.call(b"mg " + k + b" R30 v\r\n", b"VA 2\r\nxx\r\n")
    conn.call(b"mg " + k + b" R200 v\r\n", b"VA 2 W\r\nxx\r\n")
    conn.call(b"mg " + k + b" R200 v\r\n", b"VA 2 Z\r\nxx\r\n")
    forever = keys()
    conn.call(b"ms " + forever + b" 2\r\nxx\r\n", b"HD\r\n")
    conn.call(b"mg " + forever + b" R200\r\n", b"HD\r\n")  # no TTL: never recached early


def test_md_invalidate_serves_stale_with_one_winner(conn: Wire, keys: Keys) -> None:
    """md I keeps the item, marks it stale (X) and gives it a new CAS; the first fetch wins
    (W), the rest see Z; a set clears it all."""
    k = keys()
    conn.call(b"ms " + k + b" 3\r\nold\r\n", b"HD\r\n")
    old_cas = meta_cas(conn, k)
    conn.call(b"md " + k + b" I T30\r\n", b"HD\r\n")
    new_cas = meta_cas(conn, k)  # this fetch is the winner
    assert new_cas != old_cas
    line = line_of(conn, b"mg " + k + b" t c v\r\n")
    m = re.fullmatch(rb"VA 3 t(\d+) c(\d+) Z X\r\n", line)
    assert m and 29 <= int(m.group(1)) <= 30 and int(m.group(2)) == new_cas, line
    conn.expect(b"old\r\n")
    conn.call(b"ms " + k + b" 3\r\nnew\r\n", b"HD\r\n")
    conn.call(b"mg " + k + b" v\r\n", b"VA 3\r\nnew\r\n")


def test_md_invalidate_first_fetch_sees_X_W(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(b"ms " + k + b" 1\r\nv\r\n", b"HD\r\n")
    conn.call(b"md " + k + b" I\r\n", b"HD\r\n")
    conn.call(b"mg " + k + b" v\r\n", b"VA 1 X W\r\nv\r\n")
    conn.call(b"mg " + k + b" v\r\n", b"VA 1 Z X\r\nv\r\n")


def test_ms_invalidate_with_lower_cas_stores_stale(conn: Wire, keys: Keys) -> None:
    """ms I with a CAS lower than the item's stores the value as stale, keeping the TTL and
    the win mark; a higher mismatching CAS is EX."""
    k = keys()
    conn.call(b"ms " + k + b" 2 T100\r\nv1\r\n", b"HD\r\n")
    cas = meta_cas(conn, k)
    conn.call(b"ms %s 2 C%d I\r\nv9\r\n" % (k, cas + 1000), b"EX\r\n")
    conn.call(b"md " + k + b" I\r\n", b"HD\r\n")
    conn.call(b"mg " + k + b"\r\n", b"HD X W\r\n")
    conn.call(b"ms %s 2 C%d I T0\r\nv0\r\n" % (k, cas), b"HD\r\n")
    line = line_of(conn, b"mg " + k + b" t v\r\n")
    m = re.fullmatch(rb"VA 2 t(\d+) Z X\r\n", line)
    assert m and 98 <= int(m.group(1)) <= 100, line
    conn.expect(b"v0\r\n")


# ----- ms ---------------------------------------------------------------------------------------


def test_ms_flags_ttl_and_returned_cas(conn: Wire, keys: Keys) -> None:
    k = keys()
    line = line_of(conn, b"ms " + k + b" 5 T0 F7 c k O123\r\nhello\r\n")
    m = re.fullmatch(rb"HD c(\d+) k" + re.escape(k) + rb" O123\r\n", line)
    assert m, line
    assert meta_cas(conn, k) == int(m.group(1))
    conn.call(b"get " + k + b"\r\n", b"VALUE " + k + b" 7 5\r\nhello\r\nEND\r\n")
    conn.call(b"ms " + k + b" 2 F4294967296\r\nab\r\n", b"HD\r\n")  # flags wrap at 32 bits
    conn.call(b"mg " + k + b" f\r\n", b"HD f0\r\n")
    conn.call(b"ms " + k + b" 2 T-1\r\nab\r\n", b"HD\r\n")  # a negative TTL: gone at once
    conn.call(b"mg " + k + b"\r\n", b"EN\r\n")


def test_ms_quiet_hides_only_success(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(b"ms " + k + b" 2 q\r\nab\r\nmn\r\n", b"MN\r\n")
    conn.call(b"ms " + k + b" 2 ME q\r\nab\r\nmn\r\n", b"NS\r\nMN\r\n")
    conn.call(b"ms " + k + b" 2 C1 q\r\nab\r\nmn\r\n", b"EX\r\nMN\r\n")


def test_ms_modes(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(b"ms " + k + b" 2 MR\r\nab\r\n", b"NS\r\n")
    conn.call(b"ms " + k + b" 2 MA\r\nab\r\n", b"NS\r\n")
    conn.call(b"ms " + k + b" 2 MP\r\nab\r\n", b"NS\r\n")
    conn.call(b"ms " + k + b" 2 ME\r\nab\r\n", b"HD\r\n")
    conn.call(b"ms " + k + b" 2 ME\r\nxx\r\n", b"NS\r\n")
    conn.call(b"ms " + k + b" 2 MA\r\ncd\r\n", b"HD\r\n")
    conn.call(b"ms " + k + b" 2 MP\r\n00\r\n", b"HD\r\n")
    conn.call(b"ms " + k + b" 2 MR F3\r\nrr\r\n", b"HD\r\n")
    conn.call(b"mg " + k + b" v f\r\n", b"VA 2 f3\r\nrr\r\n")
    conn.call(b"ms " + k + b" 6 MS\r\nsetset\r\n", b"HD\r\n")
    conn.call(b"mg " + k + b" v\r\n", b"VA 6\r\nsetset\r\n")


def test_ms_append_keeps_flags_and_ttl(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(b"ms " + k + b" 2 F5 T100\r\nab\r\n", b"HD\r\n")
    conn.call(b"ms " + k + b" 2 MA F9\r\ncd\r\n", b"HD\r\n")
    line = line_of(conn, b"mg " + k + b" f t v\r\n")
    m = re.fullmatch(rb"VA 4 f5 t(\d+)\r\n", line)
    assert m and 99 <= int(m.group(1)) <= 100, line
    conn.expect(b"abcd\r\n")


def test_ms_compare_cas(conn: Wire, keys: Keys) -> None:
    """C makes set/replace a CAS store (NF when missing), append/prepend check it only if the
    item exists, add ignores it; c answers 0 when nothing was stored."""
    k = keys()
    conn.call(b"ms " + k + b" 2 C1 c\r\nzz\r\n", b"NF c0\r\n")
    conn.call(b"ms " + k + b" 2 MR C1\r\nzz\r\n", b"NF\r\n")
    conn.call(b"ms " + k + b" 2 MA C1\r\nzz\r\n", b"NS\r\n")
    conn.call(b"ms " + k + b" 2 ME C1\r\nab\r\n", b"HD\r\n")
    conn.call(b"ms " + k + b" 2 ME C1 c\r\nab\r\n", b"NS c0\r\n")
    cas = meta_cas(conn, k)
    conn.call(b"ms %s 2 C%d c\r\nzz\r\n" % (k, cas + 1), b"EX c0\r\n")
    conn.call(b"ms %s 2 MA C%d\r\nzz\r\n" % (k, cas + 1), b"EX\r\n")
    conn.call(b"ms %s 2 MA C%d\r\ncd\r\n" % (k, cas), b"HD\r\n")
    cas = meta_cas(conn, k)
    line = line_of(conn, b"ms %s 2 C%d c\r\nxy\r\n" % (k, cas))
    m = re.fullmatch(rb"HD c(\d+)\r\n", line)
    assert m and int(m.group(1)) != cas and int(m.group(1)) == meta_cas(conn, k), line
    conn.call(b"mg " + k + b" v\r\n", b"VA 2\r\nxy\r\n")


def test_ms_zero_length_and_binary_value(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(b"ms " + k + b" 0\r\n\r\n", b"HD\r\n")
    conn.call(b"mg " + k + b" s v\r\n", b"VA 0 s0\r\n\r\n")
    data = bytes(range(256))
    conn.call(b"ms " + k + b" 256\r\n" + data + b"\r\n", b"HD\r\n")
    conn.call(b"mg " + k + b" v\r\n", b"VA 256\r\n" + data + b"\r\n")


def test_ms_ignores_flags_it_does_not_use(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(b"ms " + k + b" 2 P1 Lpath s t f h l u v N5 D5 J5 R5\r\nzz\r\n", b"HD\r\n")


def test_ms_binary_key(conn: Wire, keys: Keys) -> None:
    raw = keys()
    encoded = base64.b64encode(raw)
    line = line_of(conn, b"ms " + encoded + b" 2 b k c\r\nzz\r\n")
    assert re.fullmatch(rb"HD k" + re.escape(encoded) + rb" b c\d+\r\n", line), line


def test_ms_too_large_swallows_data_and_drops_old_item(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(b"ms " + k + b" 2\r\nok\r\n", b"HD\r\n")
    big = 1024 * 1024 + 1
    conn.call(b"ms %s %d MA\r\n" % (k, big) + b"x" * big + b"\r\n",
              b"SERVER_ERROR object too large for cache\r\n")
    conn.call(b"mg " + k + b"\r\n", b"EN\r\n")


# ----- md ---------------------------------------------------------------------------------------


def test_md_deletes(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(b"ms " + k + b" 2\r\nab\r\n", b"HD\r\n")
    conn.call(b"md " + k + b" k O12\r\n", b"HD k" + k + b" O12\r\n")
    conn.call(b"md " + k + b"\r\n", b"NF\r\n")
    conn.call(b"md " + k + b" k O12\r\n", b"NF k" + k + b" O12\r\n")
    conn.call(b"mg " + k + b"\r\n", b"EN\r\n")


def test_md_quiet_and_cas(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(b"md " + k + b" q\r\nmn\r\n", b"NF\r\nMN\r\n")
    conn.call(b"ms " + k + b" 2\r\nab\r\n", b"HD\r\n")
    cas = meta_cas(conn, k)
    conn.call(b"md %s C%d q\r\nmn\r\n" % (k, cas + 1), b"EX\r\nMN\r\n")
    conn.call(b"md %s C%d q\r\nmn\r\n" % (k, cas), b"MN\r\n")
    conn.call(b"mg " + k + b"\r\n", b"EN\r\n")


def test_md_T_without_I_leaves_ttl(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(b"ms " + k + b" 2\r\nab\r\n", b"HD\r\n")
    conn.call(b"md " + k + b" I q\r\nmn\r\n", b"MN\r\n")
    conn.call(b"mg " + k + b" t\r\n", b"HD t-1 X W\r\n")
    conn.call(b"md " + k + b" T30 v s t f\r\n", b"HD\r\n")  # deletes; v s t f ignored
    conn.call(b"mg " + k + b"\r\n", b"EN\r\n")


def test_md_binary_key(conn: Wire, keys: Keys) -> None:
    encoded = base64.b64encode(keys())
    conn.call(b"md " + encoded + b" b k\r\n", b"NF k" + encoded + b" b\r\n")
    conn.call(b"ms " + encoded + b" 1 b\r\nx\r\n", b"HD\r\n")
    conn.call(b"md " + encoded + b" b k q\r\nmn\r\n", b"MN\r\n")


# ----- ma ---------------------------------------------------------------------------------------


def test_ma_increment_decrement(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(b"ma " + k + b"\r\n", b"NF\r\n")
    conn.call(b"ms " + k + b" 2\r\n10\r\n", b"HD\r\n")
    conn.call(b"ma " + k + b"\r\n", b"HD\r\n")
    conn.call(b"ma " + k + b" v\r\n", b"VA 2\r\n12\r\n")
    conn.call(b"ma " + k + b" D10 v\r\n", b"VA 2\r\n22\r\n")
    conn.call(b"ma " + k + b" MD D2 v\r\n", b"VA 2\r\n20\r\n")
    conn.call(b"ma " + k + b" M- D100 v\r\n", b"VA 1\r\n0\r\n")  # decr stops at 0
    conn.call(b"mg " + k + b" v\r\n", b"VA 2\r\n0 \r\n")  # written in place, space-padded
    conn.call(b"ma " + k + b" M+ D18446744073709551615 v\r\n", b"VA 20\r\n18446744073709551615\r\n")
    conn.call(b"ma " + k + b" MI v\r\n", b"VA 1\r\n0\r\n")  # incr wraps at 2**64


def test_ma_vivify_with_initial_value(conn: Wire, keys: Keys) -> None:
    k = keys()
    line = line_of(conn, b"ma " + k + b" N100 J10 t v k O9\r\n")
    m = re.fullmatch(rb"VA 2 t(\d+) k" + re.escape(k) + rb" O9\r\n", line)
    assert m and 99 <= int(m.group(1)) <= 100, line
    conn.expect(b"10\r\n")
    conn.call(b"ma " + k + b" N100 J10 v\r\n", b"VA 2\r\n11\r\n")
    other = keys()
    conn.call(b"ma " + other + b" t N100\r\n", b"HD t-1\r\n")  # t before N: no TTL yet
    assert 99 <= ttl_field(line_of(conn, b"mg " + other + b" t\r\n")) <= 100
    conn.call(b"mg " + other + b" v\r\n", b"VA 1\r\n0\r\n")


def test_ma_quiet(conn: Wire, keys: Keys) -> None:
    """q hides a plain success; NF and EX are sent; memcached 1.6.18 answers an item that N
    created even with q."""
    k = keys()
    conn.call(b"ma " + k + b" q\r\nmn\r\n", b"NF\r\nMN\r\n")
    conn.call(b"ma " + k + b" N0 q\r\nmn\r\n", b"HD\r\nMN\r\n")
    conn.call(b"ma " + k + b" q v\r\nmn\r\n", b"MN\r\n")
    conn.call(b"ma " + k + b" C1 q\r\nmn\r\n", b"EX\r\nMN\r\n")
    conn.call(b"mg " + k + b" v\r\n", b"VA 1\r\n1\r\n")


def test_ma_cas_ttl_and_returned_cas(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(b"ms " + k + b" 1 T100\r\n5\r\n", b"HD\r\n")
    cas = meta_cas(conn, k)
    conn.call(b"ma %s C%d v k O1\r\n" % (k, cas + 1), b"EX k" + k + b" O1\r\n")
    line = line_of(conn, b"ma %s C%d c t v\r\n" % (k, cas))
    m = re.fullmatch(rb"VA 1 c(\d+) t(\d+)\r\n", line)
    assert m and int(m.group(1)) != cas and 99 <= int(m.group(2)) <= 100, line
    conn.expect(b"6\r\n")
    assert meta_cas(conn, k) == int(m.group(1))
    conn.call(b"ma " + k + b" T0 t v\r\n", b"VA 1 t-1\r\n7\r\n")
    conn.call(b"ma " + k + b" t T50 v\r\n", b"VA 1 t-1\r\n8\r\n")
    assert 49 <= ttl_field(line_of(conn, b"mg " + k + b" t\r\n")) <= 50


def test_ma_non_numeric_and_binary_key(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(b"ms " + k + b" 3\r\nabc\r\n", b"HD\r\n")
    conn.call(b"ma " + k + b" q\r\n", b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
    encoded = base64.b64encode(keys())
    conn.call(b"ma " + encoded + b" b N0 v k\r\n", b"VA 1 k" + encoded + b" b\r\n0\r\n")
    conn.call(b"ma " + encoded + b" b v\r\n", b"VA 1\r\n1\r\n")


def test_ma_ignores_flags_it_does_not_use(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(b"ma " + k + b" N0 s f I h l u\r\n", b"HD\r\n")


# ----- mn, me -------------------------------------------------------------------------------------


def test_mn(conn: Wire) -> None:
    conn.call(b"mn\r\n", b"MN\r\n")
    conn.call(b"mn extra tokens\r\n", b"MN\r\n")


def test_me_shows_item_metadata(conn: Wire, keys: Keys) -> None:
    k = keys()
    conn.call(b"me " + k + b"\r\n", b"EN\r\n")
    conn.call(b"ms " + k + b" 5 F7 T100\r\nhello\r\n", b"HD\r\n")
    cas = meta_cas(conn, k)  # a fetch
    size = 48 + 8 + len(k) + 1 + 4 + 5 + 2
    line = line_of(conn, b"me " + k + b" ignored\r\n")
    m = re.fullmatch(
        rb"ME " + re.escape(k) + rb" exp=(-?\d+) la=(\d+) cas=(\d+) fetch=yes cls=\d+ size=(\d+)\r\n", line
    )
    assert m, line
    assert -100 <= int(m.group(1)) <= -99 and int(m.group(2)) <= 1
    assert int(m.group(3)) == cas and int(m.group(4)) == size
    other = keys()
    conn.call(b"ms " + other + b" 1\r\nx\r\n", b"HD\r\n")
    assert re.fullmatch(rb"ME \S+ exp=-1 la=[01] cas=\d+ fetch=no cls=\d+ size=\d+\r\n", line_of(conn, b"me " + other + b"\r\n"))


def test_me_slab_class_and_binary_key(conn: Wire) -> None:
    """cls is the class memcached's default slab table gives the item's size."""
    raw = b"me-slab"  # short, so that the smallest class is reachable
    encoded = base64.b64encode(raw)
    overhead = 48 + 8 + len(raw) + 1 + 2  # item header, CAS, key, NUL, CRLF (no flags)
    # chunk sizes of classes 1, 2, 15, 16 are 96, 120, 2320, 2904; items over 512 KiB: 39
    for size, cls in ((96, 1), (97, 2), (2320, 15), (2321, 16), (600_000, 39)):
        length = size - overhead
        conn.call(b"ms %s %d b\r\n" % (encoded, length) + b"v" * length + b"\r\n", b"HD\r\n")
        line = line_of(conn, b"me " + encoded + b" b\r\n")
        assert line.startswith(b"ME " + encoded + b" ") and line.endswith(b" cls=%d size=%d\r\n" % (cls, size)), line
    conn.call(b"me " + encoded + b"\r\n", b"EN\r\n")  # not decoded without b
