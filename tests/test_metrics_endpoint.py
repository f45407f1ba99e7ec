"""The metrics port: /metrics checked by promtool and scraped by a real Prometheus server, its
memcached_* series summing to ``stats``, /health following a stopped shard, HTTP edge cases."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from tests.servers import Server, free_port, require_tool, start_server
from kvshard.routing import owner_of


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.fixture(scope="module")
def metrics_server() -> Iterator[tuple[Server, int]]:
    port = free_port()
    with start_server("kvshard", "--metrics-port", str(port), threads=2) as srv:
        yield srv, port


def http_get(port: int, path: str, method: str = "GET", timeout: float = 10) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def ask(sock: socket.socket, request: bytes, end: bytes = b"\r\n") -> bytes:
    sock.sendall(request)
    out = b""
    while not out.endswith(end):
        chunk = sock.recv(65536)
        assert chunk, out
        out += chunk
    return out


def traffic(srv: Server, sock: socket.socket, n: int = 200) -> None:
    """Sets, hits, misses, deletes, incr/decr, touches, CAS over keys of both shards."""
    for i in range(n):
        ask(sock, b"set m%d 0 0 2\r\n%02d\r\n" % (i, i % 100))
    for i in range(0, n, 2):
        ask(sock, b"get m%d m%d-missing\r\n" % (i, i), b"END\r\n")
        ask(sock, b"incr m%d 1\r\n" % i)
        ask(sock, b"touch m%d 100\r\n" % i)
        ask(sock, b"delete m%d-missing\r\n" % i)
    ask(sock, b"decr m1 1\r\n")
    ask(sock, b"cas m3 0 0 1 999\r\nx\r\n")
    ask(sock, b"delete m5\r\n")


def series(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        assert m, line
        labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(2) or "")))
        out.setdefault(m.group(1), {})[labels] = float(m.group(3))
    return out


def test_promtool_finds_nothing(metrics_server: tuple[Server, int]) -> None:
    srv, port = metrics_server
    with srv.connect() as sock:
        traffic(srv, sock, 20)
    status, body = http_get(port, "/metrics")
    assert status == 200
    promtool = require_tool("promtool")
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert result.returncode == 0 and result.stdout == b"" and result.stderr == b"", result


def test_memcached_series_sum_to_stats(metrics_server: tuple[Server, int]) -> None:
    """After traffic, each memcached_* series summed over shards equals its stats field."""
    srv, port = metrics_server
    with srv.connect() as sock:
        traffic(srv, sock)
        status, body = http_get(port, "/metrics")
        assert status == 200
        stats_text = ask(sock, b"stats\r\n", b"END\r\n")
    stats = {m.group(1).decode(): m.group(2).decode() for m in re.finditer(rb"STAT (\S+) (\S+)\r\n", stats_text)}
    got = series(body.decode())
    per_shard = {name: {dict(labels).get("shard") for labels in values} for name, values in got.items()}
    assert per_shard["memcached_up"] == {"0", "1"}

    def total(name: str, **match: str) -> float:
        return sum(v for labels, v in got[name].items() if all(dict(labels).get(k) == w for k, w in match.items()))

    commands = {
        ("get", "hit"): "get_hits", ("get", "miss"): "get_misses", ("get", "expired"): "get_expired",
        ("set", "hit"): "cmd_set", ("flush", "hit"): "cmd_flush", ("touch", "hit"): "touch_hits",
        ("touch", "miss"): "touch_misses", ("delete", "hit"): "delete_hits",
        ("delete", "miss"): "delete_misses", ("incr", "hit"): "incr_hits", ("incr", "miss"): "incr_misses",
        ("decr", "hit"): "decr_hits", ("decr", "miss"): "decr_misses", ("cas", "hit"): "cas_hits",
        ("cas", "miss"): "cas_misses", ("cas", "badval"): "cas_badval",
    }
    for (command, status_label), field in commands.items():
        assert total("memcached_commands_total", command=command, status=status_label) == int(stats[field]), field
    assert total("memcached_commands_total", command="get", status="hit") > 0
    plain = {
        "memcached_current_items": "curr_items", "memcached_items_total": "total_items",
        "memcached_current_bytes": "bytes", "memcached_limit_bytes": "limit_maxbytes",
        "memcached_current_connections": "curr_connections",
        "memcached_connections_total": "total_connections",
        "memcached_connections_rejected_total": "rejected_connections",
        "memcached_items_evicted_total": "evictions", "memcached_items_reclaimed_total": "reclaimed",
        "memcached_written_bytes_total": "bytes_written",
    }
    for name, field in plain.items():
        assert total(name) == int(stats[field]), name
    # the stats request itself was read after the scrape
    assert total("memcached_read_bytes_total") + len(b"stats\r\n") == int(stats["bytes_read"])
    assert abs(max(got["memcached_uptime_seconds"].values()) - int(stats["uptime"])) <= 1


def test_kvshard_series(metrics_server: tuple[Server, int]) -> None:
    """kvshard's own: keyed operations served here or forwarded (one connection lands on one
    shard; the keys spread over both), channel and reactor counters, ring gauges per peer."""
    srv, port = metrics_server
    before = series(http_get(port, "/metrics")[1].decode())
    with srv.connect() as sock:
        traffic(srv, sock, 200)
    got = series(http_get(port, "/metrics")[1].decode())

    def total(snapshot: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **match: str) -> float:
        return sum(v for labels, v in snapshot.get(name, {}).items() if all(dict(labels).get(k) == w for k, w in match.items()))

    local = total(got, "kvshard_requests_total", served="local") - total(before, "kvshard_requests_total", served="local")
    forwarded = total(got, "kvshard_requests_total", served="forwarded") - total(before, "kvshard_requests_total", served="forwarded")
    assert local > 0 and forwarded > 0
    # sets; per even key a two-key get (one operation per owning shard), incr, touch, delete;
    # then decr, cas, delete
    get_parts = sum(len({owner_of(b"m%d" % i, 2), owner_of(b"m%d-missing" % i, 2)}) for i in range(0, 200, 2))
    assert local + forwarded == 200 + get_parts + 100 * 3 + 3
    sent = total(got, "kvshard_channel_messages_sent_total") - total(before, "kvshard_channel_messages_sent_total")
    assert sent >= forwarded
    batches_out = total(got, "kvshard_channel_batches_sent_total") - total(before, "kvshard_channel_batches_sent_total")
    batches_in = total(got, "kvshard_channel_batches_received_total") - total(before, "kvshard_channel_batches_received_total")
    assert 0 < batches_out <= sent and 0 < batches_in <= batches_out + 4  # the scrapes' own batches
    assert {dict(labels)["peer"] for labels in got["kvshard_channel_ring_used_bytes"]} == {"0", "1"}
    assert set(got["kvshard_channel_calls_in_flight"].values()) <= {0.0, 1.0}  # the scrape itself
    assert total(got, "kvshard_reactor_ticks_total") > 0
    busy = {dict(labels)["shard"]: v for labels, v in got["kvshard_reactor_busy_ratio"].items()}
    assert set(busy) == {"0", "1"} and all(0.0 <= v <= 1.0 for v in busy.values())
    # one read in 64 is timed: 603 requests, one read each, on a fresh connection
    def by_command(snapshot: dict[str, dict[tuple[tuple[str, str], ...], float]]) -> dict[str, float]:
        out: dict[str, float] = {}
        for labels, v in snapshot.get("kvshard_request_latency_seconds_count", {}).items():
            out[dict(labels)["command"]] = out.get(dict(labels)["command"], 0) + v  # summed over shards
        return out

    sampled, sampled_before = by_command(got), by_command(before)
    new = {c: n - sampled_before.get(c, 0) for c, n in sampled.items()}
    assert 8 <= sum(new.values()) <= 9 and new.get("set", 0) >= 2
    assert set(sampled) <= {"set", "get", "incr", "touch", "delete", "decr", "cas", "stats"}


def test_real_prometheus_scrapes_it(metrics_server: tuple[Server, int]) -> None:
    srv, port = metrics_server
    prometheus = require_tool("prometheus")
    web_port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp, "prometheus.yml")
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"scrape_configs:\n  - job_name: kvshard\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        )
        proc = subprocess.Popen(
            [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp}/data",
             f"--web.listen-address=127.0.0.1:{web_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            def query(expr: str) -> float | None:
                url = "/api/v1/query?query=" + urllib.request.quote(expr)
                try:
                    status, body = http_get(web_port, url, timeout=2)
                except OSError:
                    return None
                result = json.loads(body)["data"]["result"] if status == 200 else []
                return float(result[0]["value"][1]) if result else None

            def wait_for(expr: str, want: float, seconds: float = 30) -> None:
                deadline = time.monotonic() + seconds
                while (value := query(expr)) is None or value < want:
                    assert time.monotonic() < deadline, f"{expr} = {value}, wanted >= {want}"
                    time.sleep(0.25)

            wait_for('up{job="kvshard"}', 1)
            wait_for('sum(memcached_up{job="kvshard"})', 2)
            expr = 'sum(memcached_commands_total{job="kvshard",command="set"})'
            wait_for(expr, 0)
            before = query(expr)
            assert before is not None
            with srv.connect() as sock:
                for i in range(50):
                    ask(sock, b"set prom%d 0 0 1\r\nx\r\n" % i)
            wait_for(expr, before + 50)
        finally:
            proc.terminate()
            proc.wait(10)


def test_health_follows_a_stopped_shard(metrics_server: tuple[Server, int]) -> None:
    srv, port = metrics_server
    assert http_get(port, "/health") == (200, b"ok\n")
    shard1 = _children(srv.proc.pid)[1]
    os.kill(shard1, signal.SIGSTOP)
    try:
        status, body = http_get(port, "/health")
        assert (status, body) == (503, b"shard 1 did not answer within 0.5 s\n")
        status, body = http_get(port, "/metrics")  # still answers, without that shard
        assert status == 200 and 'memcached_up{shard="1"} 0.0' in body.decode()
    finally:
        os.kill(shard1, signal.SIGCONT)
    deadline = time.monotonic() + 10
    while http_get(port, "/health")[0] != 200:
        assert time.monotonic() < deadline, "health did not recover after SIGCONT"
        time.sleep(0.1)


def test_http_edges(metrics_server: tuple[Server, int]) -> None:
    _, port = metrics_server
    assert http_get(port, "/nope")[0] == 404
    assert http_get(port, "/metrics", method="POST")[0] == 405
    assert http_get(port, "/health", method="HEAD") == (200, b"")
    assert http_get(port, "/metrics?name[]=memcached_up")[0] == 200
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"garbage\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400 Bad Request\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"x" * 9000)  # no end of head in 8 KiB: closed
        assert s.recv(100) == b""


def test_metrics_port_off_and_clashes() -> None:
    from tests.test_cli import kvshard

    r = kvshard("-p", "22999", "--metrics-port", "22999")
    assert r.returncode == 64 and "--metrics-port" in r.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        r = kvshard("-t", "1", "-p", str(free_port()), "--metrics-port", str(taken.getsockname()[1]))
    assert r.returncode == 71 and "metrics TCP port" in r.stderr


def test_udp_drops_are_counted_only_with_udp(metrics_server: tuple[Server, int]) -> None:
    _, port = metrics_server
    assert "kvshard_udp_dropped_datagrams_total" not in series(http_get(port, "/metrics")[1].decode())
    udp_port, metrics_port = free_port(), free_port()
    with start_server("kvshard", "-U", str(udp_port), "--metrics-port", str(metrics_port)):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"\x00\x01\x00", ("127.0.0.1", udp_port))  # too short for a frame header
            s.sendto(b"\x00\x01\x00\x00\x00\x02\x00\x00get x\r\n", ("127.0.0.1", udp_port))  # count 2
        deadline = time.monotonic() + 10
        dropped = None
        while True:
            try:  # shard 0 opens the metrics port just after the memcached ports start_server waits for
                got = series(http_get(metrics_port, "/metrics")[1].decode())
                dropped = sum(got["kvshard_udp_dropped_datagrams_total"].values())
            except OSError:
                pass
            if dropped == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert dropped == 2


def test_build_info_says_which_core_runs(metrics_server: tuple[Server, int]) -> None:
    """kvshard_build_info{version, core} 1: the same core as ``kvshard --version`` says."""
    from kvshard import __version__, core

    srv, port = metrics_server
    got = series(http_get(port, "/metrics")[1].decode())
    assert got["kvshard_build_info"] == {(("core", core.mode()), ("version", __version__)): 1.0}
