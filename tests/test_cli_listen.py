"""``-l`` on the command line: memcached 1.6.18's refusals of a listener list, byte for byte and
with its exit status (each run against the installed memcached too); what kvshard refuses on
top (what memcached would misread, what would open a way around -S/-Y); and the metrics
endpoint, which listens on -l's hosts by default."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.servers import free_port, require_tool, server_kinds, start_server
from tests.test_cli import kvshard


def _memcached_listen_refusal(*args: str) -> tuple[int, str]:
    """memcached's exit status and message (its lines joined) for ``args``, with a TCP port to
    listen on (with ``-p 0`` memcached never reads -l)."""
    binary = require_tool("memcached")
    r = subprocess.run([binary, "-u", "nobody", "-p", str(free_port()), "-U", "0", *args],
                       capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    return r.returncode, " ".join(line.strip() for line in (r.stdout + r.stderr).splitlines() if line.strip())


LISTEN_REFUSALS = [
    ["-l", "proto[bogus:127.0.0.1"], ["-l", "proto[ascii:127.0.0.1"], ["-l", "tag[abcdefghi]:127.0.0.1"],
    ["-l", "tag[]:127.0.0.1"], ["-l", "tag[abc:127.0.0.1"], ["-l", "[::1"], ["-l", "[::1:11311"],
    ["-l", "notls:127.0.0.1"], ["-l", "127.0.0.1,notls:127.0.0.2"], ["-l", "proto[proxy]:127.0.0.1"],
    ["-l", f"tag[ok]:[::1]:{free_port()},proto[proxy]:127.0.0.1"], ["-l", "127.0.0.1:abc"], ["-l", "127.0.0.1:"],
    ["-l", "[::1]:1:2"], ["-l", "proto[ascii]:"], ["-l", "127.0.0.1;proto[binary]:"],
    ["-l", "proto[bogus]:127.0.0.1:abc"], ["-l", "proto[ascii]"], ["-l", "127.0.0.1:0,proto[ascii:127.0.0.1"],
    ["-l", "127.0.0.1,127.0.0.1"], ["-l", "127.0.0.1", "-l", "proto[ascii]:127.0.0.1"], ["-l", "*,127.0.0.1"],
]


@pytest.mark.parametrize("args", LISTEN_REFUSALS, ids=" ".join)
def test_listen_refusals_are_memcacheds(args: list[str]) -> None:
    status, message = _memcached_listen_refusal(*args)
    assert status == 71, f"memcached took {args}: {message}"
    r = kvshard(*args, "-p", str(free_port()))
    assert (r.returncode, r.stderr) == (status, f"kvshard: {message}\n")


USERS = "<a password file>"


@pytest.mark.parametrize(("args", "message"), [
    (["-l", "proto[bogus]:127.0.0.1"], "-l 'proto[bogus]:127.0.0.1': proto[bogus] is no protocol"),
    (["-l", "proto[ascii]127.0.0.1"], "-l 'proto[ascii]127.0.0.1': ':' must follow 'proto[ascii]'"),
    (["-l", "protocol.example"], "-l 'protocol.example': memcached 1.6.18 reads 'proto' without '[...]' as nothing"),
    (["-l", "127.0.0.1:0"], "-l '127.0.0.1:0': port '0' is not a port number from 1 to 65535"),
    (["-l", "127.0.0.1:70000"], "-l '127.0.0.1:70000': port '70000' is not a port number from 1 to 65535"),
    (["-l", "[::1]junk"], "-l '[::1]junk': memcached 1.6.18 ignores 'junk' after the address in brackets"),
    (["-l", "127.0.0.1:1000", "-l", "127.0.0.1:100"], "-l '127.0.0.1:100': memcached 1.6.18 ignores an -l whose"),
    (["-l", "127.0.0.1:9150"], "--metrics-port: 9150 is already the memcached port of -l '127.0.0.1:9150'"),
    (["-l", "proto[ascii]:127.0.0.1", "-S", "--sasl-pwdb", USERS],
     "-l 'proto[ascii]:127.0.0.1': -S serves the binary protocol only"),
    (["-l", "proto[negotiating]:127.0.0.1", "-Y", USERS],
     "-l 'proto[negotiating]:127.0.0.1': -Y serves the ASCII protocol only"),
    (["-l", "proto[binary]:127.0.0.1", "--network-stack", "native", "--tap-device", "t0", "--host-ipv4-addr", "10.0.0.2"],
     "-l 'proto[binary]:127.0.0.1': a listener's own port, protocol or notls is served on the kernel's stack only"),
])
def test_what_memcached_would_misread_is_refused(args: list[str], message: str, tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("bob:pw\n")
    r = kvshard(*(str(users) if arg == USERS else arg for arg in args))
    assert r.returncode == 64 and r.stderr.startswith(f"kvshard: {message}") and r.stderr.count("\n") == 1, r.stderr


def test_memcached_takes_what_kvshard_refuses_as_a_misread() -> None:
    """The misreads are real: memcached 1.6.18 starts with an unknown protocol name (and serves
    -B's protocol there)."""
    port = free_port()
    with start_server("memcached", "-l", f"proto[bogus]:127.0.0.1:{port}", port=free_port()) as server:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"version\r\n")
            assert s.recv(100).startswith(b"VERSION ")
        assert server.proc.poll() is None


def _health(host: str, port: int) -> int:
    with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=5) as answer:
        return int(answer.status)


def test_the_metrics_endpoint_listens_on_the_hosts_of_the_listeners() -> None:
    """--metrics-listen defaults to -l's hosts, whatever each element's protocol, tag and port:
    ::1 comes from an element that has all three (127.0.0.1 from start_server's -l)."""
    metrics, port = free_port(), free_port()
    with start_server("kvshard", "-l", f"proto[binary]:tag[v6]:[::1]:{port}", "--metrics-port", str(metrics),
                      ready=lambda server: _health("[::1]", metrics) == 200):
        assert _health("[::1]", metrics) == 200 and _health("127.0.0.1", metrics) == 200


@pytest.mark.parametrize("kind", server_kinds())
def test_a_listeners_port_serves_udp_too(kind: str) -> None:
    """As memcached's UDP pass: an element's port is its UDP port as well (-U is the others')."""
    udp, element = free_port(), free_port()
    request = b"\x00\x01\x00\x00\x00\x01\x00\x00version\r\n"
    with start_server(kind, "-U", str(udp), "-l", f"127.0.0.1:{element}"):
        for port in (udp, element):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(5)
                deadline = time.monotonic() + 5
                while True:
                    s.sendto(request, ("127.0.0.1", port))
                    try:
                        answer = s.recv(1500)
                        break
                    except TimeoutError:
                        assert time.monotonic() < deadline
            assert answer[8:].startswith(b"VERSION ")
