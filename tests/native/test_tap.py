"""The native stack over a real TAP device, with the Linux kernel as its peer, in a network
namespace the test makes (kernel side 10.77.0.1/24, our stack 10.77.0.2): the kernel's ``ping``
is answered. Needs root and /dev/net/tun: skipped without them, except under CI (CI=true),
where a missing tool or privilege fails the test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import selectors
import subprocess
import time
import uuid
from typing import Callable, Iterator

import pytest

from net_backends.native.stack import NativeStack, StackAddress
from net_backends.native.tap import TapDevice, mac_for_ipv4
from tests.servers import in_ci, require_tool


def require_privileges() -> None:
    problem = None
    if os.geteuid() != 0:
        problem = "needs root (network namespaces and TAP devices)"
    elif not os.path.exists("/dev/net/tun"):
        problem = "needs /dev/net/tun"
    if problem:
        if in_ci():
            pytest.fail(problem)
        pytest.skip(problem)


@pytest.fixture
def tap_in_namespace() -> Iterator[tuple[str, TapDevice, NativeStack]]:
    """A namespace with the kernel's side of a tap; our stack on one queue of it."""
    with tap_queues_in_namespace(1) as (ns, stacks):
        yield ns, stacks[0].device, stacks[0]  # type: ignore[misc]


@contextlib.contextmanager
def tap_queues_in_namespace(queues: int) -> Iterator[tuple[str, list[NativeStack]]]:
    """A namespace with the kernel's side of a tap, and ``queues`` stacks, one per queue of it
    (the queues are opened before the tap moves: a name is looked up in our own namespace)."""
    require_privileges()
    ip = require_tool("ip")
    tag = uuid.uuid4().hex[:6]
    ns, tap = f"kvns{tag}", f"kvtap{tag}"

    def sh(*args: str) -> None:
        subprocess.run([ip, *args], check=True, capture_output=True, timeout=10)

    sh("netns", "add", ns)
    try:
        sh("tuntap", "add", "dev", tap, "mode", "tap", "multi_queue")
        address = StackAddress("10.77.0.2", "255.255.255.0")
        devices = [TapDevice(tap, mac_for_ipv4(address.ip)) for _ in range(queues)]
        try:
            sh("link", "set", tap, "netns", ns)
            sh("-n", ns, "addr", "add", "10.77.0.1/24", "dev", tap)
            sh("-n", ns, "link", "set", tap, "up")
            yield ns, [NativeStack(device, address) for device in devices]
        finally:
            for device in devices:
                device.close()
    finally:
        subprocess.run([ip, "netns", "del", ns], capture_output=True, timeout=10)


def serve_while(proc: subprocess.Popen[bytes], stack: NativeStack, seconds: float) -> None:
    device = stack.device
    fd = device.fileno()
    assert fd is not None
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        deadline = time.monotonic() + seconds
        while proc.poll() is None and time.monotonic() < deadline:
            sel.select(0.05)
            stack.poll()


def run_kernel_python(
    ns: str, code: str, stacks: list[NativeStack], busy: Callable[[], bool] = lambda: False,
    each_round: Callable[[], None] = lambda: None,
) -> str:
    """Run ``code`` with the kernel's python3 inside ``ns`` while serving ``stacks`` (calling
    ``each_round`` after every round of polls); go on serving while ``busy()`` after it exits
    (at most 20 s in all); return its output."""
    proc = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with selectors.DefaultSelector() as sel:
        for stack in stacks:
            sel.register(stack.device.fileno(), selectors.EVENT_READ, stack)  # type: ignore[arg-type]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (proc.poll() is None or busy()):
            for key, _ in sel.select(0.02):
                key.data.poll()
            for stack in stacks:
                stack.poll()  # timers
            each_round()
    return proc.communicate(timeout=5)[0].decode()


def test_kernel_ping_is_answered(tap_in_namespace: tuple[str, TapDevice, NativeStack]) -> None:
    ns, _device, stack = tap_in_namespace
    ping = require_tool("ping")
    stack.announce()
    stack.flush()
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, ping, "-c", "5", "-i", "0.2", "-W", "2", "-s", "1000", "10.77.0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    serve_while(proc, stack, 15)
    output = proc.communicate(timeout=5)[0].decode()
    assert proc.returncode == 0, output
    assert "5 packets transmitted, 5 received" in output
    assert stack.echo_replies.value == 5
    # the kernel learned our MAC from the gratuitous ARP or asked for it: either way one of us spoke
    assert stack.arp_cache.lookup(bytes([10, 77, 0, 1])) is not None or stack.arp_replies.value >= 1


def test_kernel_udp_round_trip(tap_in_namespace: tuple[str, TapDevice, NativeStack]) -> None:
    """A kernel UDP socket sends to our stack, which echoes: each side checks the other's
    checksums (the kernel drops a datagram whose checksum is wrong)."""
    ns, _device, stack = tap_in_namespace
    stack.bind_udp(7777, lambda payload, addr, port: stack.send_udp(
        bytes(int(x) for x in addr[0].split(".")), port, addr[1], b"echo:" + bytes(payload)))
    client = (
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5); "
        "s.sendto(b'x' * 1200, ('10.77.0.2', 7777)); data, addr = s.recvfrom(2000); "
        "print(len(data), data[:5], addr)"
    )
    output = run_kernel_python(ns, client, [stack])
    assert output.strip() == "1205 b'echo:' ('10.77.0.2', 7777)", output


def test_two_queues_share_the_flows() -> None:
    """Two stacks with the same address, one per queue of the same tap (as two shards are): the
    kernel spreads UDP flows over the queues by hash, each stack answers the flows it gets, and
    together they answer all."""
    with tap_queues_in_namespace(2) as (ns, stacks):
        answered = serve_udp_flows(ns, stacks)
    assert sum(answered) == 32 and min(answered) > 0, answered  # both queues served flows


def serve_udp_flows(ns: str, stacks: list[NativeStack]) -> list[int]:
    """32 UDP flows from the kernel side to port 7777, echoed by whichever stack gets each."""
    answered = [0] * len(stacks)
    for i, stack in enumerate(stacks):
        def echo(payload: memoryview, addr: tuple[str, int], port: int, stack: NativeStack = stack, i: int = i) -> None:
            answered[i] += 1
            stack.send_udp(bytes(int(x) for x in addr[0].split(".")), port, addr[1], bytes(payload))
        stack.bind_udp(7777, echo)
    client = (
        "import socket\nok = 0\nfor i in range(32):\n"
        "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)\n"
        "    s.sendto(b'flow %d' % i, ('10.77.0.2', 7777)); ok += s.recvfrom(100)[0] == b'flow %d' % i\n"
        "print(ok)"
    )
    output = run_kernel_python(ns, client, stacks)
    assert output.strip() == "32", output
    return answered


def test_stack_as_a_reactor_poller_sleeps_and_wakes(tap_in_namespace: tuple[str, TapDevice, NativeStack]) -> None:
    """Attached to a shard's reactor, the stack answers pings 0.3 s apart: between them the
    reactor goes to sleep, and each ping's frame on the tap wakes it."""
    import asyncio

    from framework.reactor import Reactor

    ns, _device, stack = tap_in_namespace
    ping = require_tool("ping")

    async def scenario() -> tuple[int, str, int]:
        loop = asyncio.get_running_loop()
        doorbell = os.eventfd(0, os.EFD_NONBLOCK)
        reactor = Reactor(loop, doorbell, memoryview(bytearray(8)), 0, idle_poll_seconds=0.0)
        stack.attach(reactor, loop)
        try:
            proc = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", ns, ping, "-c", "4", "-i", "0.3", "-W", "2", "10.77.0.2",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await asyncio.wait_for(proc.communicate(), 20)
            return proc.returncode or 0, output.decode(), reactor.sleeps.value
        finally:
            stack.detach(loop)
            reactor.stop()
            os.close(doorbell)

    returncode, output, sleeps = asyncio.run(scenario())
    assert returncode == 0 and "4 packets transmitted, 4 received" in output, output
    assert stack.echo_replies.value == 4 and sleeps >= 3


class _Echo(asyncio.Protocol):
    """Echoes everything; closes its side when the peer closes its."""

    lost: list[Exception | None]

    def __init__(self, lost: list[Exception | None]) -> None:
        self.lost = lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        assert transport.get_extra_info("sockname") == ("10.77.0.2", 7000)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.append(exc)


def test_kernel_tcp_echo_half_close_and_reset() -> None:
    """The kernel's TCP as our peer: 100 KiB echoed intact through our TCP (a client half-close
    ends it: our FIN follows the echoed data, then TIME-WAIT), and a connection to a port
    nobody listens on is refused with an RST."""
    with tap_queues_in_namespace(1) as (ns, stacks):
        stack = stacks[0]
        tcp = stack.enable_tcp(time_wait=0.5)
        lost: list[Exception | None] = []
        tcp.listen(7000, lambda: _Echo(lost))
        client = (
            "import socket\n"
            "s = socket.create_connection(('10.77.0.2', 7000), timeout=5)\n"
            "data = bytes(range(256)) * 400\n"
            "s.sendall(data)\n"
            "s.shutdown(socket.SHUT_WR)\n"
            "got = b''\n"
            "while (chunk := s.recv(65536)):\n"
            "    got += chunk\n"
            "print(len(got), got == data)\n"
            "r = socket.socket()\n"
            "r.settimeout(3)\n"
            "try:\n"
            "    r.connect(('10.77.0.2', 7001))\n"
            "except OSError as e:\n"
            "    print(type(e).__name__)\n"
        )
        output = run_kernel_python(ns, client, [stack], busy=lambda: bool(tcp.connections))
    assert output.split() == ["102400", "True", "ConnectionRefusedError"], output
    assert lost == [None] and tcp.connections == {}  # TIME-WAIT passed: closed and forgotten
    assert stack.drops("tcp_closed_port") == 1 and stack.events("tcp_segments_received") > 50


def test_kernel_window_scale_and_our_zero_window() -> None:
    """The kernel sends 2 MiB to a server that stops reading for 1.5 s: the kernel takes our
    window scale (``ss`` shows it), our window closes with the buffer full, the kernel probes
    it, and the data arrives intact once we read again (the digest goes back)."""
    from net_backends.native.tcp.connection import RECEIVE_BUFFER, WINDOW_SHIFT

    with tap_queues_in_namespace(1) as (ns, stacks):
        stack = stacks[0]
        tcp = stack.enable_tcp(time_wait=0.5)
        servers: list[_Digest] = []
        full_at_resume: list[int] = []
        tcp.listen(7000, lambda: servers.append(_Digest()) or servers[-1])  # type: ignore[func-returns-value]

        def each_round() -> None:
            if servers and servers[0].paused_at and time.monotonic() - servers[0].paused_at > 1.5:
                full_at_resume.append(servers[0].transport.held_size)  # type: ignore[attr-defined]
                servers[0].paused_at = 0.0
                servers[0].transport.resume_reading()  # type: ignore[attr-defined]

        client = (
            "import hashlib, socket, subprocess\n"
            "s = socket.create_connection(('10.77.0.2', 7000), timeout=10)\n"
            "ss = subprocess.run(['ss', '-tin', 'dst', '10.77.0.2'], capture_output=True, text=True).stdout\n"
            "print([w for w in ss.split() if w.startswith('wscale:')])\n"
            "data = bytes(range(256)) * 8192\n"
            "s.sendall(data)\n"
            "s.shutdown(socket.SHUT_WR)\n"
            "got = b''\n"
            "while (chunk := s.recv(65536)):\n"
            "    got += chunk\n"
            "print(got.decode() == hashlib.sha256(data).hexdigest())\n"
        )
        output = run_kernel_python(ns, client, [stack], busy=lambda: bool(tcp.connections), each_round=each_round)
    lines = output.split("\n")
    assert lines[0].startswith("['wscale:%d," % WINDOW_SHIFT) and lines[1] == "True", output
    assert full_at_resume and full_at_resume[0] > RECEIVE_BUFFER - (1 << WINDOW_SHIFT)
    assert stack.drops("tcp_unacceptable") > 0  # the kernel's window probes (old sequence numbers)


def test_kernel_slow_reader_is_probed() -> None:
    """We send 3 MiB to a kernel socket with a small receive buffer that reads nothing for
    2 s: its window closes, we probe it, and all of it arrives once it reads."""
    with tap_queues_in_namespace(1) as (ns, stacks):
        stack = stacks[0]
        tcp = stack.enable_tcp(time_wait=0.5)
        tcp.listen(7000, _Flood)
        client = (
            "import socket, time\n"
            "s = socket.socket()\n"
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)\n"
            "s.settimeout(10)\n"
            "s.connect(('10.77.0.2', 7000))\n"
            "time.sleep(2)\n"
            "got = b''\n"
            "while (chunk := s.recv(65536)):\n"
            "    got += chunk\n"
            "print(got == bytes(range(256)) * 12288)\n"
        )
        output = run_kernel_python(ns, client, [stack], busy=lambda: bool(tcp.connections))
    assert output.split() == ["True"], output
    assert stack.events("tcp_window_probes") >= 2


class _Digest(asyncio.Protocol):
    """Pauses reading at once (``paused_at``); answers the SHA-256 of all it got at EOF."""

    def __init__(self) -> None:
        import hashlib

        self.hash = hashlib.sha256()
        self.paused_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.pause_reading()  # type: ignore[attr-defined]
        self.paused_at = time.monotonic()

    def data_received(self, data: bytes) -> None:
        self.hash.update(data)

    def eof_received(self) -> bool:
        self.transport.write(self.hash.hexdigest().encode())  # type: ignore[attr-defined]
        return False


class _Flood(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(bytes(range(256)) * 12288)  # type: ignore[attr-defined]
        transport.close()
