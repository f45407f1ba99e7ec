"""Running kvshard as a service: log lines labelled by process, --log-file reopened on SIGHUP,
--pidfile, the ``shutdown`` command only with -A, and the systemd unit's command line."""

from __future__ import annotations

import configparser
import re
import shlex
import signal
import socket
import time
from pathlib import Path

from tests.servers import start_server

ROOT = Path(__file__).resolve().parent.parent


def _wait_for(path: Path, pattern: str, seconds: float = 10) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if re.search(pattern, text, re.M):
            return text
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} never appeared in {path}:\n{text[-2000:]}")


def test_log_lines_labelled_and_reopened_on_sighup_pidfile(tmp_path: Path) -> None:
    log, pidfile = tmp_path / "kvshard.log", tmp_path / "kvshard.pid"
    with start_server("kvshard", "-vv", "--log-file", str(log), "--pidfile", str(pidfile)) as server:
        proc, port = server.proc, server.port
        assert pidfile.read_text() == f"{proc.pid}\n"
        _wait_for(log, r"\[shard 1\] .*listening")
        text = _wait_for(log, r"\[shard 0\] .*listening")  # (the shards start side by side)
        lines = [line for line in text.splitlines() if line.strip()]
        assert lines and all(re.match(r"\S+ \S+ \[(main|shard \d+)\] ", line) for line in lines), text
        assert re.search(r"\[shard 0\] ", text) and re.search(r"\[main\] ", text)
        # logrotate: move the file away, SIGHUP; every process writes to a new file by the name
        log.rename(tmp_path / "kvshard.log.1")
        proc.send_signal(signal.SIGHUP)
        for who in (r"shard 1", r"shard 0", r"main"):
            _wait_for(log, rf"\[{who}\] .*log files reopened")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:  # still serving
            s.sendall(b"version\r\n")
            assert s.recv(100).startswith(b"VERSION")
    assert proc.returncode == 0 and not pidfile.exists()


def test_shutdown_only_with_dash_a() -> None:
    with start_server("kvshard") as server, server.connect() as s:
        s.sendall(b"shutdown\r\nshutdown graceful\r\n")
        time.sleep(0.2)
        assert s.recv(200) == b"ERROR: shutdown not enabled\r\n" * 2
        assert server.proc.poll() is None

    with start_server("kvshard", "-A") as server:
        with server.connect() as s:
            s.sendall(b"shutdown now\r\n")
            assert s.recv(200) == b"CLIENT_ERROR invalid shutdown mode\r\n"
            s.sendall(b"shutdown\r\n")
            assert s.recv(200) == b""  # the connection closes, and the whole server stops
        assert server.proc.wait(10) == 0


def test_systemd_unit_runs_kvshard_with_flags_it_accepts(tmp_path: Path) -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.read(ROOT / "deploy" / "kvshard.service")
    command = shlex.split(unit["Service"]["ExecStart"])
    assert command[0] == "/opt/kvshard/bin/kvshard" and unit["Service"]["KillSignal"] == "SIGTERM"
    assert unit["Service"]["ExecReload"] == "/bin/kill -HUP $MAINPID"
    # the same flags with paths we may write, and a free port: the server starts and serves
    flags = [a.replace("/run/kvshard", str(tmp_path)).replace("/var/log/kvshard", str(tmp_path)) for a in command[1:]]
    at = flags.index("-p")
    del flags[at : at + 2]  # start_server gives its own free port (and the same -l)
    with start_server("kvshard", *flags) as server:
        pass
    assert server.proc.returncode == 0
