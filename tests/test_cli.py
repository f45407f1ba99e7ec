"""The kvshard command line: version, bad flags, clean start and stop, and every flag and -o option
of memcached 1.6.18: refused as memcached refuses it, or taking effect, or named as ignored."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from framework import extensions
from kvshard import __version__, core
from tests.servers import free_port, require_tool, start_server, stop_process
from tests.test_metrics_endpoint import ask


def kvshard(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kvshard.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def test_version() -> None:
    """-V names the version and, on a second line, the core this install runs; in CI the
    compiled core must have been built (no silent fallback to the interpreted one)."""
    r = kvshard("-V")
    assert r.returncode == 0 and r.stdout.splitlines() == [f"kvshard {__version__}", f"core: {core.mode()}"]
    if os.environ.get("CI") and not extensions.extensions_disabled():
        assert core.mode() == "compiled", extensions.interpreted_modules(core.HOT_MODULES)


def test_version_says_interpreted_when_extensions_are_off() -> None:
    r = subprocess.run([sys.executable, "-m", "kvshard.cli", "-V"], capture_output=True, text=True, timeout=30,
                       env={**os.environ, extensions.NO_EXTENSIONS_ENV: "1"})
    assert r.returncode == 0 and r.stdout.splitlines()[1] == "core: interpreted"


def test_unknown_flag_is_a_one_line_usage_error() -> None:
    r = kvshard("--no-such-flag")
    assert r.returncode == 64
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("kvshard: ")


def test_starts_and_stops_on_sigterm() -> None:
    port = str(free_port())
    proc = subprocess.Popen(
        # no metrics port: another server on this machine may hold the default 9150
        [sys.executable, "-m", "kvshard.cli", "-t", "2", "-v", "-p", port, "--metrics-port", "0"], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 20
    assert proc.stderr is not None
    seen = ""
    while "all 2 shards running" not in seen:
        assert time.monotonic() < deadline, seen
        seen += proc.stderr.readline()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def _start_log(*args: str, env: dict[str, str] | None = None, until: str = "") -> list[str]:
    """The log lines of a one-shard server started with ``args`` and stopped once it wrote a
    line containing ``until`` (any line when empty; 30 s at most)."""
    port = str(free_port())
    proc = subprocess.Popen([sys.executable, "-m", "kvshard.cli", "-t", "1", *args, "-p", port, "--metrics-port", "0"],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            seen += line
            if not line or until in line:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=10)[1]
    return (seen + rest).splitlines()


def test_start_says_which_core_runs() -> None:
    """-v logs the core at start; the interpreted core adds one warning line, shown even
    without -v."""
    for env, verbose in (({}, ["-v"]), ({extensions.NO_EXTENSIONS_ENV: "1"}, [])):
        lines = _start_log(*verbose, env=env)
        if verbose:
            assert f"kvshard {__version__}, core: {core.mode()}" in lines[0]
        else:
            warnings = [line for line in lines if "WARNING" in line]
            assert len(warnings) == 1 and "core: interpreted, several times slower" in warnings[0], lines
            assert "KVSHARD_NO_EXTENSIONS is set" in warnings[0]


def test_port_in_use_exits_71() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        r = kvshard("-p", str(taken.getsockname()[1]), "-t", "1")
    assert r.returncode == 71 and "failed to listen" in r.stderr


def test_udp_port_in_use_exits_71() -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        r = kvshard("-U", str(taken.getsockname()[1]), "-t", "1")
    assert r.returncode == 71 and "failed to listen on 127.0.0.1 UDP port" in r.stderr


def test_connection_limit_counts_all_shards() -> None:
    """-c is for the whole server: however the kernel spreads connections over the shards,
    exactly that many are served and the next is refused as memcached refuses it."""
    import time

    from tests.servers import start_server

    with start_server("kvshard", "-c", "6", threads=2) as srv:
        time.sleep(0.3)  # let the server see the readiness probe's connection close
        kept = []
        for _ in range(5):  # the readiness probe's connection is closed by now
            s = srv.connect()
            s.sendall(b"version\r\n")
            assert s.recv(100).startswith(b"VERSION ")
            kept.append(s)
        sixth = srv.connect()
        sixth.sendall(b"version\r\n")
        assert sixth.recv(100).startswith(b"VERSION ")
        refused = srv.connect()
        assert refused.recv(100) == b"ERROR Too many open connections\r\n"
        assert refused.recv(100) == b""
        refused.close()
        sixth.close()
        for s in kept:
            s.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--network-stack", "native"], "needs --tap-device"),
        (["--network-stack", "native", "--tap-device", "t0"], "needs --host-ipv4-addr"),
        (["--network-stack", "native", "--tap-device", "t" * 16, "--host-ipv4-addr", "10.0.0.2"], "longer than 15 bytes"),
        (["--network-stack", "native", "--tap-device", "t0", "--host-ipv4-addr", "10.0.0.300"], "native stack address"),
        (["--network-stack", "native", "--tap-device", "t0", "--host-ipv4-addr", "10.0.0.2", "--gw-ipv4-addr", "10.9.0.1"], "is not on 10.0.0.0/24"),
    ],
)
def test_native_stack_option_errors(args: list[str], message: str) -> None:
    r = kvshard(*args)
    assert r.returncode == 64 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr


# ----- memcached's flags ------------------------------------------------------------------

# Values memcached 1.6.18 refuses: kvshard must print memcached's message (one line) and exit
# with memcached's status. Each case is run against the installed memcached too.
MEMCACHED_REFUSALS = [
    ["-t", "0"], ["-t", "abc"], ["-t", "-3"], ["-c", "0"], ["-c", "abc"], ["-R", "0"], ["-R", "x"],
    ["-n", "0"], ["-f", "1"], ["-f", "abc"], ["-D", ""], ["-B", "foo"], ["-N", "0"], ["-t", "2", "-N", "5"],
    ["-I", "100"], ["-I", "2g"], ["-I", "abc"], ["-I", "600m"], ["-I", "100k"], ["-I", "1500k"], ["-m", "0"],
    ["-p", "70000"], ["-S", "-B", "ascii"],
    ["-o", "bogus"], ["-o", "hashpower"], ["-o", "hashpower=5"], ["-o", "hashpower=40"], ["-o", "slab_automove=5"],
    ["-o", "slab_automove_ratio"], ["-o", "slab_automove_ratio=0"], ["-o", "slab_automove_window=2"],
    ["-o", "tail_repair_time=1"], ["-o", "tail_repair_time"], ["-o", "hash_algorithm=foo"], ["-o", "hash_algorithm"],
    ["-o", "lru_crawler_sleep=2000000"], ["-o", "lru_crawler_tocrawl=abc"], ["-o", "hot_lru_pct=90"],
    ["-o", "warm_lru_pct=0"], ["-o", "hot_lru_pct=50,warm_lru_pct=50"], ["-o", "hot_max_factor=0"],
    ["-o", "warm_max_factor=-1"], ["-o", "no_lru_maintainer,temporary_ttl=10"], ["-o", "temporary_ttl"],
    ["-o", "idle_timeout"], ["-o", "watcher_logbuf_size=abc"], ["-o", "worker_logbuf_size=abc"],
    ["-o", "read_buf_mem_limit=abc"], ["-o", "slab_sizes=abc"], ["-o", "slab_sizes=100-96"],
    ["-o", "ssl_min_version=9"], ["-o", "ssl_verify_mode=9"], ["-o", "ssl_keyformat=abc"], ["-o", "ssl_wbuf_size=abc"],
    ["-o", "ssl_chain_cert"], ["-o", "ext_path=/tmp/x"], ["-o", "ext_page_size=abc"], ["-o", "ext_threads=abc"],
    ["-o", "ext_max_frag=x"], ["-o", "modern,hashpower=1"],
]


def _memcached_refusal(args: list[str]) -> tuple[int, str]:
    """memcached's exit status and message (its lines joined, as kvshard prints one line)."""
    binary = require_tool("memcached")
    r = subprocess.run([binary, "-u", "nobody", "-l", "127.0.0.1", "-p", "0", "-U", "0", *args],
                       capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    return r.returncode, " ".join(line.strip() for line in (r.stdout + r.stderr).splitlines() if line.strip())


@pytest.mark.parametrize("args", MEMCACHED_REFUSALS, ids=" ".join)
def test_invalid_values_get_memcacheds_message_and_status(args: list[str]) -> None:
    status, message = _memcached_refusal(args)
    assert status != 0, f"memcached took {args}"
    r = kvshard(*args)
    assert (r.returncode, r.stderr) == (status, f"kvshard: {message}\n")


@pytest.mark.parametrize(("args", "message"), [
    (["-p", "abc"], "-p: 'abc' is not a port number"),  # memcached: port 0 (TCP off)
    (["-p", "0"], "-p 0: kvshard always serves TCP"),
    (["-U", "70000"], "ERROR: Invalid port number 70000."),  # memcached: cut to 16 bits
    (["-b", "x"], "-b: 'x' is not a whole number"),  # memcached: a backlog of 0
    (["-b", "-1"], "-b: must be at least 0, not -1"),
    (["-a", "999"], "-a: '999' is not an octal mask"),
    (["-m", "-5"], "-m: '-5' is not a number of megabytes"),  # memcached: 16 EiB
    (["-t", "12abc"], "-t: '12abc' is not a whole number"),  # memcached: 12
    (["-I", "2000x"], "-I: '2000x' is not a size"),
    (["-t", "2000"], "-t: at most 1024 shards"),
    (["-o", "proxy_config=/etc/p.lua"], "-o proxy_config: kvshard is not a proxy"),
    (["-o", "ssl_keyformat=2"], "-o ssl_keyformat: kvshard reads PEM keys only"),
    (["-s", "/tmp/x.sock", "--network-stack", "native"], "-s: a UNIX socket is served on the kernel's stack only"),
])
def test_values_memcached_misreads_are_refused(args: list[str], message: str) -> None:
    r = kvshard(*args)
    assert r.returncode in (1, 64) and r.stderr.startswith(f"kvshard: {message}") and r.stderr.count("\n") == 1, r.stderr


def _startup(*args: str) -> Any:
    from kvshard.cli_config import startup_from
    from kvshard.cli_flags import parser
    from net_backends import STACKS

    return startup_from(parser(STACKS).parse_args(list(args)))


@pytest.mark.parametrize(("args", "field", "value"), [
    ([], "protocol", "auto"), (["-B", "ascii"], "protocol", "ascii"), (["--protocol", "binary"], "protocol", "binary"),
    (["-C"], "cas_enabled", False), (["--disable-cas"], "cas_enabled", False), ([], "cas_enabled", True),
    (["-F"], "flush_enabled", False), (["--disable-flush-all"], "flush_enabled", False),
    (["-X"], "dump_enabled", False), (["--disable-dumping"], "dump_enabled", False),
    (["-W"], "watch_enabled", False), (["--disable-watch"], "watch_enabled", False),
    (["-M"], "evictions", False), (["--disable-evictions"], "evictions", False),
    (["-R", "5"], "reqs_per_event", 5), (["--max-reqs-per-event", "7"], "reqs_per_event", 7), ([], "reqs_per_event", 20),
    (["-b", "16"], "backlog", 16), (["--listen-backlog", "4096"], "backlog", 4096), ([], "backlog", 1024),
    (["-D", "#"], "prefix_delimiter", "#"), (["-D", "#"], "detail_enabled", True), ([], "detail_enabled", False),
    (["-s", "/tmp/k.sock"], "unix_socket", "/tmp/k.sock"), (["--unix-socket", "/tmp/k"], "unix_socket", "/tmp/k"),
    (["-s", "/tmp/k", "-U", "5000"], "udp_port", 0),
    (["-a", "755"], "unix_mask", 0o755), (["--unix-mask", "0600"], "unix_mask", 0o600), ([], "unix_mask", 0o700),
    (["-A"], "shutdown_enabled", True), (["--enable-shutdown"], "shutdown_enabled", True),
    (["-p", "4000"], "port", 4000), (["--port", "4001"], "port", 4001), (["-U", "4002"], "port", 4002),
    (["-U", "4003"], "udp_port", 4003), (["--udp-port", "4004", "-p", "4005"], "udp_port", 4004),
    (["-l", "127.0.0.1,::1"], "listen_text", "127.0.0.1,::1"), (["--listen", "0.0.0.0"], "listen_text", "0.0.0.0"),
    (["-l", "127.0.0.1", "-l", "::1"], "listen_text", "127.0.0.1,::1"), ([], "listen_text", "127.0.0.1"),
    (["--listen-default", "0.0.0.0"], "listen_text", "0.0.0.0"), (["--listen-default", "::", "-l", "h"], "listen_text", "h"),
    (["-m", "128"], "memory_bytes", 128 << 20), (["--memory-limit", "2"], "memory_bytes", 2 << 20),
    (["-c", "99"], "max_connections", 99), (["--conn-limit", "98"], "max_connections", 98),
    (["-I", "2m"], "max_item_size", 2 << 20), (["--max-item-size", "512k"], "max_item_size", 512 << 10),
    (["-v"], "verbosity", 1), (["-vv"], "verbosity", 2), (["--verbose"], "verbosity", 1),
    (["-o", "idle_timeout=30"], "idle_timeout", 30),
    (["-o", "hashpower=20,lru_crawler"], "extended_options", (("hashpower", "20"), ("lru_crawler", None))),
])
def test_each_memcached_flag_reaches_the_config(args: list[str], field: str, value: object) -> None:
    assert getattr(_startup(*args).config, field) == value


def test_threads_flag() -> None:
    assert _startup("-t", "3").shards == 3 and _startup("--threads", "2").shards == 2 and _startup().shards is None


def test_login_flags_choose_the_protocol_as_memcached() -> None:
    """-S means binary only, -Y ASCII only (memcached sets -B so unless it was given)."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".users") as users:
        users.write("bob:pw\n")
        users.flush()
        assert _startup("-S", "--sasl-pwdb", users.name).config.protocol == "binary"
        assert _startup("-Y", users.name).config.protocol == "ascii"
        assert _startup("--auth-file", users.name, "-B", "ascii").config.protocol == "ascii"
        r = kvshard("-Y", users.name, "-B", "binary")
        assert (r.returncode, r.stderr) == (64, "kvshard: ERROR: You cannot allow the BINARY protocol while using "
                                                "ascii authentication tokens.\n")


def _valid_value(name: str) -> str:
    """A value memcached takes for suboption ``name`` (none for a switch)."""
    from kvshard.memcached_options import SUBOPTIONS

    samples = {"hashpower": "20", "slab_automove": "1", "slab_automove_ratio": "0.5", "slab_automove_window": "30",
               "tail_repair_time": "60", "hash_algorithm": "xxh3", "lru_crawler_sleep": "100", "lru_crawler_tocrawl": "0",
               "hot_lru_pct": "20", "warm_lru_pct": "40", "hot_max_factor": "0.2", "warm_max_factor": "2.0",
               "temporary_ttl": "61", "idle_timeout": "10", "slab_sizes": "96-192-384", "slab_chunk_max": "524288",
               "ext_path": "/tmp/ext:64m", "ext_max_frag": "0.8", "slab_automove_freeratio": "0.01",
               "ssl_ciphers": "HIGH", "ssl_keyformat": "1", "ssl_verify_mode": "0", "ssl_min_version": "2"}
    assert name in SUBOPTIONS
    if name in samples:
        return f"{name}={samples[name]}"
    numeric = ("_size", "_depth", "_threads", "_age", "_ttl", "_rate", "_under", "_sleep", "_limit", "_id")
    return f"{name}=4" if name.endswith(numeric) and name not in ("track_sizes",) else name


def test_every_memcached_suboption_is_accepted_and_its_effect_said() -> None:
    """Each -o option of memcached 1.6.18 is accepted; those without effect here are named in
    the start-up warning with a reason, and those with one are not. (The TLS options take
    effect and need -Z with real files: tests/test_tls.py starts servers with them.)"""
    from kvshard.memcached_options import SUBOPTIONS, ignored_reason

    taking_effect = {"idle_timeout", "ssl_chain_cert", "ssl_key", "ssl_ca_cert", "ssl_verify_mode", "ssl_min_version",
                     "ssl_ciphers", "ssl_keyformat", "lru_crawler", "no_lru_crawler", "lru_crawler_sleep",
                     "lru_crawler_tocrawl", "track_sizes", "lru_maintainer", "no_lru_maintainer", "hot_lru_pct",
                     "warm_lru_pct", "hot_max_factor", "warm_max_factor", "temporary_ttl", "slab_reassign",
                     "no_slab_reassign", "slab_automove", "no_slab_automove", "slab_automove_ratio",
                     "slab_automove_window", "hashpower"}
    assert {name for name in SUBOPTIONS if ignored_reason(name) is None} == taking_effect
    for name in SUBOPTIONS:
        if name in taking_effect - {"idle_timeout"} or name.startswith("proxy_"):
            continue  # proxy_*: refused, kvshard is not a proxy (test_values_memcached_misreads_are_refused)
        named = [line for line in _startup("-o", _valid_value(name)).ignored if line.startswith(f"-o {name} (")]
        assert len(named) == (0 if name in taking_effect else 1), (name, named)


def test_ignored_options_are_one_warning_line_at_start() -> None:
    lines = _start_log("-L", "-k", "-e", "/tmp/kvshard-memory-file", "-o", "ext_path=/tmp/e:64m,ext_threads=2,no_hashexpand",
                       until="accepted but ignored here: ")
    warnings = [line for line in lines if "accepted but ignored here: " in line]
    assert len(warnings) == 1, lines
    for named in ("-L (", "-k (", "-e (", "-o ext_path (extstore", "-o ext_threads (extstore", "-o no_hashexpand ("):
        assert named in warnings[0], warnings


def test_every_flag_of_memcacheds_help_is_taken() -> None:
    """Each flag ``memcached -h`` lists, short and long, is one of kvshard's (the help spells
    ``--napi_ids``; memcached's option table, like kvshard, ``--napi-ids``)."""
    import re

    from kvshard.cli_flags import parser
    from net_backends import STACKS

    text = subprocess.run([require_tool("memcached"), "-h"], capture_output=True, text=True, timeout=10).stdout
    listed = re.findall(r"^(-[A-Za-z])[, ]+(--[\w-]+)?", text, re.M)
    known = set(parser(STACKS)._option_string_actions)
    flags = {flag.replace("_", "-") for pair in listed for flag in pair if flag}
    assert len(listed) >= 35 and flags - known == set()


def test_version_help_and_license_exit_0() -> None:
    for flag in ("-h", "--help", "-i", "--license", "--version"):
        r = kvshard(flag)
        assert r.returncode == 0 and r.stdout and not r.stderr, (flag, r.stderr)
    assert "Apache License" in kvshard("-i").stdout


def _serving(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"version\r\n")
        return s.recv(100).startswith(b"VERSION ")


def test_the_issue_command_line_serves_a_real_client() -> None:
    """memcached's flags as a Docker image or unit file carries them."""
    from pymemcache.client.base import Client

    port = free_port()
    args = ["-m", "1024", "-c", "4096", "-t", "2", "-o", "modern,lru_crawler,hashpower=20", "-I", "2m", "-v",
            "-R", "20", "-b", "2048", "-D", ":"]
    with start_server("kvshard", *args, port=port, threads=2):
        client = Client(("127.0.0.1", port), connect_timeout=5, timeout=5)
        big = b"x" * (1536 << 10)  # over 1m: -I 2m took effect
        assert client.set("k", b"v", noreply=False) and client.set("big", big, noreply=False)
        assert client.get("k") == b"v" and client.get("big") == big
        client.close()


def _listen_backlog(port: int) -> int:
    """The backlog of the listening TCP socket on ``port`` (ss shows it as Send-Q)."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, timeout=10).stdout
    return int(out.split()[2])


def test_backlog_reaches_the_listening_socket() -> None:
    require_tool("ss")
    with start_server("kvshard", "-b", "77", threads=1) as server:
        assert _listen_backlog(server.port) == 77


def test_unix_socket_with_mask_and_no_tcp(tmp_path: Path) -> None:
    """-s FILE -a MASK: served on the UNIX socket only (as memcached: no TCP, no UDP), the
    file made with MASK, and removed at exit."""
    path, port = tmp_path / "kv.sock", free_port()
    proc = subprocess.Popen([sys.executable, "-m", "kvshard.cli", "-t", "2", "-p", str(port), "--metrics-port", "0",
                             "-s", str(path), "-a", "750"], stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not path.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        assert stat.S_IMODE(path.stat().st_mode) == 0o750
        for i in range(20):  # connections land on both shards
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(str(path))
                assert ask(s, b"set k%d 0 0 1\r\nx\r\nget k%d\r\n" % (i, i), b"END\r\n") == b"STORED\r\nVALUE k%d 0 1\r\nx\r\nEND\r\n" % i
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        stop_process(proc)
    assert proc.returncode == 0 and not path.exists()


def _uids(pid: int) -> set[int]:
    """Real and effective uid of ``pid`` and of its children (the shards)."""
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    uids = set()
    for one in pids:
        line = next(l for l in Path(f"/proc/{one}/status").read_text().splitlines() if l.startswith("Uid:"))
        uids.update(int(u) for u in line.split()[1:3])
    return uids


@pytest.mark.skipif(os.geteuid() != 0, reason="-u switches user only when started as root")
def test_user_flag_drops_root_in_every_process_and_daemon_writes_its_pid() -> None:
    """-u nobody -d -P FILE -r: the command returns 0 at once; the server runs on as nobody
    (supervisor and shards), with no core size limit, its pid in FILE; SIGTERM stops it and
    removes FILE."""
    import pwd
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="kvshard-user-"))  # under /tmp: nobody may enter it
    folder.chmod(0o777)  # nobody writes and removes the pid file (memcached writes it as the user too)
    pidfile, port = folder / "kv.pid", free_port()
    r = kvshard("-u", "nobody", "-d", "-P", str(pidfile), "-r", "-p", str(port), "-t", "2", "--metrics-port", "0")
    assert r.returncode == 0 and not r.stderr
    deadline = time.monotonic() + 20
    while not pidfile.exists() or not _answers(port):
        assert time.monotonic() < deadline, "the daemon did not serve"
        time.sleep(0.1)
    pid = int(pidfile.read_text())
    try:
        assert _uids(pid) == {pwd.getpwnam("nobody").pw_uid}
        assert "Max core file size        unlimited" in Path(f"/proc/{pid}/limits").read_text()
    finally:
        os.kill(pid, signal.SIGTERM)
    while pidfile.exists():
        assert time.monotonic() < deadline + 10, "the pid file was not removed"
        time.sleep(0.1)
    folder.rmdir()


def _answers(port: int) -> bool:
    try:
        return _serving(port)
    except OSError:
        return False


def test_unknown_user_is_memcacheds_error() -> None:
    r = kvshard("-u", "no-such-user-here", "-p", str(free_port()), "--metrics-port", "0")
    if os.geteuid() == 0:
        assert (r.returncode, r.stderr) == (67, "kvshard: can't find the user no-such-user-here to switch to\n")
    else:  # memcached ignores -u when not root; so does kvshard
        assert "can't find the user" not in r.stderr


def test_pidfile_short_flag_is_the_long_one(tmp_path: Path) -> None:
    for flag in ("-P", "--pidfile"):
        pidfile = tmp_path / f"{flag.strip('-')}.pid"
        with start_server("kvshard", flag, str(pidfile), threads=1) as server:
            assert int(pidfile.read_text()) == server.proc.pid
        assert not pidfile.exists()


def test_several_servers_differing_only_in_port_all_serve() -> None:
    """Three kvshard with the default metrics port: the first to start takes 9150 if it is
    free, the others say in one warning line that they run without /metrics, and all serve."""
    ports = [free_port() for _ in range(3)]
    procs = [subprocess.Popen([sys.executable, "-m", "kvshard.cli", "-t", "1", "-p", str(port)],
                              stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for port in ports]
    try:
        deadline = time.monotonic() + 30
        while not all(_answers(port) for port in ports):
            assert all(proc.poll() is None for proc in procs) and time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        outputs = []
        for proc in procs:
            stop_process(proc)
            outputs.append(proc.communicate(timeout=10)[1])
    assert [proc.returncode for proc in procs] == [0, 0, 0], outputs
    skipped = [out for out in outputs if "metrics port 9150 is taken" in out]
    assert len(skipped) >= 2, outputs
