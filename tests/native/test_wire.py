"""The impairment wire: deterministic by seed, each impairment doing what it says, and two
native stacks pinging each other across it."""

from __future__ import annotations

from net_backends.native import icmp, ipv4
from net_backends.native.stack import NativeStack, StackAddress
from net_backends.native.wire import WirePair

HEADER = b"\x02" * 6 + b"\x03" * 6 + b"\x08\x00"


def frames(n: int, size: int = 100) -> list[bytes]:
    return [HEADER + i.to_bytes(4, "big") + b"x" * (size - 4) for i in range(n)]


def run(pair: WirePair, n: int = 1000) -> list[bytes]:
    pair.a.send_burst(frames(n))
    pair.a.flush()
    return pair.b.receive_burst(10 * n)


def test_same_seed_same_misbehaviour() -> None:
    settings = dict(loss=0.05, duplicate=0.02, corrupt=0.01, reorder=0.05)
    first, second = run(WirePair(42, **settings)), run(WirePair(42, **settings))
    assert first == second
    assert run(WirePair(43, **settings)) != first


def test_clean_wire_delivers_everything_in_order() -> None:
    assert run(WirePair(1)) == frames(1000)


def test_each_impairment() -> None:
    pair = WirePair(5, loss=0.1)
    got = run(pair)
    assert len(got) == 1000 - pair.a.dropped_loss and 60 < pair.a.dropped_loss < 140
    pair = WirePair(5, duplicate=0.1)
    got = run(pair)
    assert len(got) == 1000 + pair.a.duplicated and 60 < pair.a.duplicated < 140
    pair = WirePair(5, reorder=0.1)
    got = run(pair)
    assert sorted(got) == frames(1000) and got != frames(1000) and pair.a.reordered > 50
    pair = WirePair(5, corrupt=0.1)
    got = run(pair)
    changed = sum(a != b for a, b in zip(got, frames(1000)))
    assert changed == pair.a.corrupted and all(g[:14] == HEADER for g in got)  # header untouched
    pair = WirePair(5, mtu=60)
    assert run(pair) == [] and pair.a.dropped_mtu == 1000


def test_delay_follows_the_clock() -> None:
    now = [0.0]
    pair = WirePair(1, delay=0.5, clock=lambda: now[0])
    pair.a.send_burst(frames(3))
    assert pair.b.receive_burst() == []
    now[0] = 0.5
    assert pair.b.receive_burst() == frames(3)


def ping_over(pair: WirePair, count: int) -> tuple[NativeStack, NativeStack, int]:
    """``count`` echo requests from a to b, one at a time; the replies a received."""
    a = NativeStack(pair.a, StackAddress("10.0.0.1", "255.255.255.0"))
    b = NativeStack(pair.b, StackAddress("10.0.0.2", "255.255.255.0"))
    replies = 0
    for seq in range(count):
        a.send_ipv4(b.address.ip, ipv4.PROTO_ICMP, icmp.build_echo_request(1, seq, b"ping %d" % seq))
        a.flush()
        for _ in range(4):
            pair.a.flush()
            pair.b.flush()
            b.poll()
            before = a.drops("icmp_ignored")
            a.poll()
            replies += a.drops("icmp_ignored") - before  # our stack counts replies it gets as ignored
    return a, b, replies


def test_two_stacks_ping_across_a_clean_wire() -> None:
    a, b, replies = ping_over(WirePair(3), 20)
    assert replies == 20 and b.echo_replies.value == 20 and b.arp_replies.value == 1


def test_corruption_is_caught_by_checksums() -> None:
    pair = WirePair(9, corrupt=0.3)
    a, b, replies = ping_over(pair, 200)
    caught = sum(s.drops(r) for s in (a, b) for r in ("ipv4_bad_checksum", "icmp_malformed", "arp_malformed",
                                                       "ipv4_malformed", "ipv4_not_for_us", "ipv4_fragment",
                                                       "ipv4_unsupported_protocol", "icmp_ignored"))
    assert pair.a.corrupted + pair.b.corrupted > 50
    assert 0 < replies < 200 and b.echo_replies.value < 200 + 10
    assert b.drops("ipv4_bad_checksum") + b.drops("icmp_malformed") > 0 and caught > 0
