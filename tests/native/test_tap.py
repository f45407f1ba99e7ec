"""The native stack over a real TAP device, with the Linux kernel as its peer, in a network
namespace the test makes (kernel side 10.77.0.1/24, our stack 10.77.0.2): the kernel's ``ping``
is answered. Needs root and /dev/net/tun: skipped without them, except under CI (CI=true),
where a missing tool or privilege fails the test."""

from __future__ import annotations

import os
import selectors
import subprocess
import time
import uuid
from typing import Iterator

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
        device = TapDevice(tap, mac_for_ipv4(address.ip))
        try:
            sh("link", "set", tap, "netns", ns)
            sh("-n", ns, "addr", "add", "10.77.0.1/24", "dev", tap)
            sh("-n", ns, "link", "set", tap, "up")
            yield ns, device, NativeStack(device, address)
        finally:
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
    proc = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", client], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    serve_while(proc, stack, 15)
    output = proc.communicate(timeout=5)[0].decode()
    assert proc.returncode == 0 and output.strip() == "1205 b'echo:' ('10.77.0.2', 7777)", output
