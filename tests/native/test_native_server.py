"""kvshard on its own TCP/IP stack (``--network-stack native``) with the Linux kernel as the
client, in a network namespace the test makes: the server runs inside it, its shards open the
queues of a TAP device there (kernel side 10.77.0.1/24, our stack 10.77.0.2). Needs root; under
CI (CI=true) a missing privilege or tool fails instead of skipping."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from typing import Iterator

import pytest

from tests.servers import in_ci, require_tool, stop_process

from .test_tap import require_privileges

STACK_IP = "10.77.0.2"
METRICS_PORT = 9150  # inside the test's own namespace


@pytest.fixture(scope="module", params=["tap", "dpdk"])
def native_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """The namespace where ``kvshard -t 2 --network-stack native`` serves on 10.77.0.2:11211
    (TCP and UDP): over the TAP device's queues, or with ``--dpdk-pmd`` over DPDK's net_tap
    driver on the same kind of tap."""
    require_privileges()
    extra = []
    if request.param == "dpdk":
        require_dpdk()
        extra = ["--dpdk-pmd"]
    ip = require_tool("ip")
    tag = uuid.uuid4().hex[:6]
    ns, tap = f"kvsrv{tag}", f"kvsrv{tag}"
    subprocess.run([ip, "netns", "add", ns], check=True, timeout=10)
    server = None
    try:
        # the tap is made first (multi-queue, as the shards open it), so that it is there with its
        # address before and after the CLI's DPDK probe (which attaches to it for a moment)
        for command in (["link", "set", "lo", "up"], ["tuntap", "add", "dev", tap, "mode", "tap", "multi_queue"],
                        ["addr", "add", "10.77.0.1/24", "dev", tap], ["link", "set", tap, "up"]):
            subprocess.run([ip, "-n", ns, *command], check=True, timeout=10)
        server = subprocess.Popen(
            [ip, "netns", "exec", ns, sys.executable, "-m", "kvshard.cli", "-t", "2", "-m", "256",
             "--metrics-port", str(METRICS_PORT), "--metrics-listen", "127.0.0.1", "-U", "11211",
             "--network-stack", "native", "--tap-device", tap, "--host-ipv4-addr", STACK_IP, "-l", STACK_IP, *extra],
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not _answers_version(ns):
            assert server.poll() is None and time.monotonic() < deadline, "no answer over the native stack"
            time.sleep(0.1)
        yield ns
    finally:
        if server is not None:
            stop_process(server)
        subprocess.run([ip, "netns", "del", ns], capture_output=True, timeout=10)


def require_dpdk() -> None:
    """DPDK's glue builds and loads here, or the test skips (fails under CI)."""
    from net_backends.dpdk.glue import DpdkUnavailable, load

    try:
        load()
    except DpdkUnavailable as exc:
        if in_ci():
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def _in_ns(ns: str, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *command], capture_output=True, text=True, timeout=timeout)


def _answers_version(ns: str) -> bool:
    probe = (
        "import socket\ntry:\n"
        f"    s = socket.create_connection(('{STACK_IP}', 11211), timeout=1); s.sendall(b'version\\r\\n')\n"
        "    print(s.recv(100).decode().strip())\nexcept OSError:\n    pass\n"
    )
    return _in_ns(ns, "python3", "-c", probe, timeout=10).stdout.startswith("VERSION ")


def test_ping(native_server: str) -> None:
    result = _in_ns(native_server, require_tool("ping"), "-c", "3", "-i", "0.2", "-W", "2", STACK_IP)
    assert result.returncode == 0 and "3 received" in result.stdout, result.stdout


def test_memccapable_ascii(native_server: str) -> None:
    result = _in_ns(native_server, require_tool("memccapable"), "-h", STACK_IP, "-p", "11211", "-a", timeout=120)
    passed = result.stdout.count("[pass]")
    assert result.returncode == 0 and passed == 27 and "All tests passed" in result.stdout, result.stdout + result.stderr


def test_pymemcache_round_trips(native_server: str) -> None:
    client = (
        "from pymemcache.client.base import Client\n"
        f"c = Client(('{STACK_IP}', 11211), connect_timeout=5, timeout=5)\n"
        "big = bytes(range(256)) * 2000\n"
        "assert c.set('k', b'v', noreply=False) and c.get('k') == b'v'\n"
        "assert c.set('big', big, noreply=False) and c.get('big') == big\n"
        "keys = {'m%d' % i: b'%d' % i for i in range(100)}\n"
        "c.set_many(keys, noreply=False)\n"
        "assert c.get_many(list(keys)) == keys\n"
        "assert c.incr('m7', 5) == 12 and c.delete('k', noreply=False) and c.get('k') is None\n"
        "print('ok')\n"
    )
    result = _in_ns(native_server, sys.executable, "-c", client)
    assert result.stdout.strip() == "ok", result.stdout + result.stderr


def test_memcaslap_verify(native_server: str) -> None:
    """memaslap's default mix with --verify from the kernel side for 30 s: no verify failures,
    and (with -m 256, so that nothing is evicted) no verify misses either."""
    result = _in_ns(
        native_server, require_tool("memcaslap"), "-s", f"{STACK_IP}:11211", "-T", "2", "-c", "16", "-t", "30s",
        "--verify=0.1", timeout=90,
    )
    out = result.stdout + result.stderr
    assert "verify_failed: 0" in out and "verify_misses: 0" in out and "TPS:" in out, out


def test_udp(native_server: str) -> None:
    """memcached's UDP on the native stack: 16 client sockets (the kernel spreads their flows
    over both shards' queues) set and get 64 keys (half of them owned by the other shard), each
    answer framed with its request id; a 5000-byte value (set over TCP:
    a request larger than a frame arrives in IPv4 fragments, which the stack drops) comes back in
    4 numbered datagrams."""
    client = (
        "import socket, struct\n"
        "socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(16)]\n"
        "def ask(s, rid, text):\n"
        f"    s.sendto(struct.pack('>HHHH', rid, 0, 1, 0) + text, ('{STACK_IP}', 11211))\n"
        "    parts = {}\n"
        "    while True:\n"
        "        s.settimeout(5)\n"
        "        data = s.recv(2000)\n"
        "        r, seq, count, _ = struct.unpack('>HHHH', data[:8])\n"
        "        assert r == rid, (r, rid)\n"
        "        parts[seq] = data[8:]\n"
        "        if len(parts) == count:\n"
        "            return b''.join(parts[i] for i in range(count)), count\n"
        "for i in range(64):\n"
        "    s = socks[i % 16]\n"
        "    assert ask(s, i, b'set u%d 0 0 %d\\r\\nv%d\\r\\n' % (i, len(b'v%d' % i), i)) == (b'STORED\\r\\n', 1)\n"
        "for i in range(64):\n"
        "    s = socks[(i + 5) % 16]\n"
        "    want = b'VALUE u%d 0 %d\\r\\nv%d\\r\\nEND\\r\\n' % (i, len(b'v%d' % i), i)\n"
        "    assert ask(s, 1000 + i, b'get u%d\\r\\n' % i) == (want, 1)\n"
        "big = bytes(range(97, 123)) * 192 + b'abcdefgh'\n"
        # a request over one frame would be fragmented, and the stack drops fragments: over TCP
        f"t = socket.create_connection(('{STACK_IP}', 11211), timeout=5)\n"
        "t.sendall(b'set big 0 0 %d\\r\\n%s\\r\\n' % (len(big), big))\n"
        "assert t.recv(100) == b'STORED\\r\\n'\n"
        "answer, count = ask(socks[3], 8, b'get big\\r\\n')\n"
        "assert count == 4 and answer == b'VALUE big 0 5000\\r\\n' + big + b'\\r\\nEND\\r\\n'\n"
        "print('ok')\n"
    )
    result = _in_ns(native_server, "python3", "-c", client)
    assert result.stdout.strip() == "ok", result.stdout + result.stderr


def test_metrics_count_the_stack_and_the_port(native_server: str, request: pytest.FixtureRequest) -> None:
    """/metrics (on the namespace's loopback) shows the stack's frame counters; over DPDK also
    the port's statistics from the driver and its link state."""
    scrape = (
        "import urllib.request\n"
        f"print(urllib.request.urlopen('http://127.0.0.1:{METRICS_PORT}/metrics', timeout=5).read().decode())\n"
    )
    text = _in_ns(native_server, "python3", "-c", scrape).stdout
    totals: dict[tuple[str, str], float] = {}  # (name, direction label) summed over shards
    for name, labels, value in re.findall(r"^(\w+)(?:\{(.*)\})? (\S+)$", text, re.M):
        direction = re.search(r'direction="(\w+)"', labels)
        key = (name, direction.group(1) if direction else "")
        totals[key] = totals.get(key, 0.0) + float(value)
    assert totals[("kvshard_native_frames_received_total", "")] > 0, text[:2000]
    assert totals[("kvshard_native_frames_sent_total", "")] > 0, text[:2000]
    if request.node.callspec.params["native_server"] == "dpdk":
        assert totals[("kvshard_native_dpdk_packets_total", "rx")] > 0, text[:3000]
        assert totals[("kvshard_native_dpdk_packets_total", "tx")] > 0, text[:3000]
        assert totals[("kvshard_native_dpdk_link_up", "")] == 2  # one per shard, both up
