"""The runtime across real shard processes: channels, calls, crashes, sleep, clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_scenario(tmp_path: Path, name: str, timeout: float = 300, **params: Any) -> dict[str, Any]:
    out = tmp_path / f"{name}.json"
    args = [sys.executable, "-m", "tests.shardapps", name, str(out)]
    args += [f"{k}={v}" for k, v in params.items()]
    proc = subprocess.run(args, cwd=ROOT, timeout=timeout, capture_output=True, text=True)
    assert out.exists(), f"scenario wrote no result; exit {proc.returncode}\n{proc.stderr[-4000:]}"
    result = json.loads(out.read_text())
    assert "exception" not in result, result.get("traceback")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return result


def test_million_messages_each_way_in_order(tmp_path: Path) -> None:
    r = run_scenario(tmp_path, "two_way_small", count=1_000_000)
    for side, src in (("at_1", "0"), ("at_0", "1")):
        assert r[side]["errors"] == []
        assert r[side]["received"] == 1_000_000
        assert r[side]["expected"][src] == 1_000_000
    # batching really happened: far fewer published batches than messages
    assert all(0 < b < 200_000 for b in r["batches"])


def test_random_sizes_up_to_64k_through_small_rings(tmp_path: Path) -> None:
    # 256 KiB rings: records wrap around the end and big ones are fragmented
    r = run_scenario(tmp_path, "two_way_sized", count=3000, ring_capacity=256 * 1024)
    for side in ("at_1", "at_0"):
        assert r[side]["errors"] == []
        assert r[side]["received"] == 3000
    assert r["ring_full"] > 0  # the producer did outrun the ring at least once


def test_fast_producer_slow_consumer_memory_bounded(tmp_path: Path) -> None:
    r = run_scenario(tmp_path, "slow_consumer", count=100_000, ring_capacity=1 << 20, max_queued=4096)
    assert r["at_1"]["errors"] == []
    assert r["at_1"]["received"] == r["count"]
    assert r["ring_full"] > 0
    assert r["max_pending"] <= r["max_queued_setting"]
    assert r["max_queued_bytes"] <= 2 * (1 << 20) + 4096 * 1100
    # ~100 MiB went through; the producer's memory grew by a bounded amount
    assert r["max_rss_kib"] - r["rss_before_kib"] < 48 * 1024, r


def test_submit_to_api(tmp_path: Path) -> None:
    r = run_scenario(tmp_path, "api", max_inflight=16)
    assert r["local_echo"] == "(1, b'a')"
    # through msgpack: bytes and str kept apart, sequences arrive as tuples
    assert r["remote_echo"] == "(1, b'a', 's', (1, 2), {'k': 3})"
    e = r["errors"]
    for where in ("0", "1"):
        assert e[f"{where}:KeyError"] == ["KeyError", "'boom KeyError'"]
        assert e[f"{where}:ValueError"] == ["ValueError", "boom ValueError"]
        assert e[f"{where}:unknown"][0] == "UnknownHandler"
    assert e["unpackable_args"] == ["TypeError", "arguments not serializable: can not seri"]
    assert e["unpackable_result"] == ["TypeError", "result not serializable: can not seriali"]
    assert r["after_unpackable"] == [7]
    assert e["0:Custom"] == ["CustomError", "boom Custom"]  # local: the exception itself
    assert e["1:Custom"] == ["RemoteError", "__main__.CustomError: boom Custom"]
    assert [p[0] for p in r["invoke_on_all"]] == [0, 1]
    assert r["map_reduce"] == 10
    assert r["max_concurrent_seen"] == r["max_inflight"] == 16
    assert r["batches_for_501"] == 1
    assert r["metrics_shards"] == [0, 1]


def test_no_lost_wakeups(tmp_path: Path) -> None:
    r = run_scenario(tmp_path, "wakeups", rounds=20000, idle_poll=0.0001)
    assert r["hung"] == 0
    # the sleep path really ran on the callee: it slept and was woken by doorbells
    assert r["sleeps"][1] > 100
    assert r["doorbell_wakeups"][1] > 100


def test_kill_9_shard_during_traffic(tmp_path: Path) -> None:
    r = run_scenario(tmp_path, "kill_peer")
    assert r["outcomes"] == ["ShardUnavailable"] * 20
    assert r["failed_after"] < 5.0
    assert r["downs"] == [1] and r["ups"] == [1]
    assert r["first"][0] == r["second"][0] == 1
    assert r["first"][1] != r["second"][1]  # a new process
    assert r["second"][2] == r["first"][2] + 1  # next incarnation
    assert r["echo_ok"]
    assert r["state_after"]["errors"] == [] and r["state_after"]["received"] == 10_000


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_idle(tmp_path: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    out = tmp_path / "idle.json"
    proc = subprocess.Popen([sys.executable, "-m", "tests.shardapps", "idle", str(out)], cwd=ROOT)
    pid_file = Path(str(out) + ".pids")
    deadline = time.monotonic() + 30
    while not pid_file.exists():
        assert time.monotonic() < deadline and proc.poll() is None, "runtime did not start"
        time.sleep(0.05)
    time.sleep(0.1)
    return proc, json.loads(pid_file.read_text())


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_idle_shards_use_almost_no_cpu(tmp_path: Path) -> None:
    proc, pids = _start_idle(tmp_path)
    try:
        time.sleep(1.0)
        watched = [pids["supervisor"], *pids["shards"]]
        before = sum(_cpu_seconds(p) for p in watched)
        time.sleep(5.0)
        used = sum(_cpu_seconds(p) for p in watched) - before
        assert used / 5.0 < 0.02, f"idle runtime used {used:.3f} s of CPU in 5 s"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def _shm() -> set[str]:
    return set(os.listdir("/dev/shm"))


@pytest.mark.parametrize(
    "crash_first,signum", [(False, signal.SIGTERM), (True, signal.SIGTERM), (False, signal.SIGINT)]
)
def test_signal_stops_everything_cleanly(tmp_path: Path, crash_first: bool, signum: int) -> None:
    shm_before = _shm()
    proc, pids = _start_idle(tmp_path)
    assert sorted(_children(proc.pid)) == sorted(pids["shards"])
    if crash_first:
        os.kill(pids["shards"][1], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while True:  # wait for the replacement
            kids = _children(proc.pid)
            if len(kids) == 2 and pids["shards"][1] not in kids:
                break
            assert time.monotonic() < deadline, "shard was not restarted"
            time.sleep(0.05)
        pids["shards"] = kids
        time.sleep(0.3)
    started = time.monotonic()
    proc.send_signal(signum)
    assert proc.wait(10) == 0
    assert time.monotonic() - started < 5.0
    for pid in pids["shards"]:
        assert not _alive(pid), f"shard {pid} outlived the supervisor"
    assert _shm() - shm_before == set()


def test_supervisor_sigkill_takes_shards_down(tmp_path: Path) -> None:
    proc, pids = _start_idle(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids["shards"]):
        assert time.monotonic() < deadline, "shards outlived a SIGKILLed supervisor"
        time.sleep(0.05)
