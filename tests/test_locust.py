"""The locust user of loadtest/locustfile.py, run headless by locust itself: against kvshard it
does work and reports no failure; against a server that corrupts values it reports failures."""

from __future__ import annotations

import csv
import socketserver
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest

from tests.servers import start_server

LOCUSTFILE = Path(__file__).resolve().parent.parent / "loadtest" / "locustfile.py"


def _locust(host: str, seconds: int, out: Path, *options: str) -> dict[str, dict[str, str]]:
    """Run locust headless; its CSV statistics by request name (and "Aggregated")."""
    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "10", "-r", "10", "-t", f"{seconds}s",
         "--host", host, "--only-summary", "--csv", str(out / "run"), "--exit-code-on-error", "0", *options],
        capture_output=True, text=True, timeout=seconds + 60, cwd=out,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out / "run_stats.csv", newline="") as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


def test_locust_against_kvshard_does_work_without_failures(tmp_path: Path) -> None:
    with start_server("kvshard") as server:
        stats = _locust(f"memcached://127.0.0.1:{server.port}", 15, tmp_path, "--mc-keys", "2000", "--mc-zipf", "1.0",
                        "--mc-value-size", "50-500")
    total = stats["Aggregated"]
    assert int(total["Request Count"]) > 1000 and int(total["Failure Count"]) == 0, total
    for name in ("get", "set", "multiget", "delete", "incr"):
        assert int(stats[name]["Request Count"]) > 0, name


class _CorruptingHandler(socketserver.StreamRequestHandler):
    """Stores sets; answers gets with the stored value with its first byte changed."""

    store: dict[bytes, bytes] = {}

    def handle(self) -> None:
        while line := self.rfile.readline():
            parts = line.split()
            if parts[:1] == [b"set"]:
                self.store[parts[1]] = self.rfile.read(int(parts[4]) + 2)[:-2]
                self.wfile.write(b"STORED\r\n")
            elif parts[:1] == [b"get"]:
                for key in parts[1:]:
                    if key in self.store:
                        value = self.store[key]
                        bad = bytes([value[0] ^ 1]) + value[1:]
                        self.wfile.write(b"VALUE %s 0 %d\r\n%s\r\n" % (key, len(bad), bad))
                self.wfile.write(b"END\r\n")
            elif parts[:1] == [b"delete"]:
                self.wfile.write(b"NOT_FOUND\r\n")
            elif parts[:1] == [b"incr"]:
                self.wfile.write(b"1\r\n")
            else:
                self.wfile.write(b"ERROR\r\n")


@pytest.fixture
def corrupting_server() -> Iterator[int]:
    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", 0), _CorruptingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_locust_reports_corrupted_values(tmp_path: Path, corrupting_server: int) -> None:
    stats = _locust(f"127.0.0.1:{corrupting_server}", 4, tmp_path, "--mc-keys", "50")
    assert int(stats["get"]["Failure Count"]) > 0 and int(stats["set"]["Failure Count"]) == 0
    failures = (tmp_path / "run_failures.csv").read_text()
    assert "checksum does not match" in failures, failures
