"""``kvshard --dpdk-pmd`` where DPDK cannot be used: one line naming what is missing and how
to install it, exit status 69, no traceback, before any shard starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .test_native_server import require_dpdk

NATIVE_DPDK = ["--network-stack", "native", "--dpdk-pmd", "--tap-device", "kvnodpdk0", "--host-ipv4-addr", "10.75.0.2",
               "--metrics-port", "0"]


def _run(code_or_args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *code_or_args], capture_output=True, text=True, timeout=60, env=env)


def _assert_one_line(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert result.returncode == 69, result
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


def test_without_dpdk_installed(tmp_path: Path) -> None:
    """No pkg-config/libdpdk on the PATH and nothing built before (an empty cache)."""
    env = {**os.environ, "PATH": str(tmp_path), "KVSHARD_CACHE": str(tmp_path / "cache")}
    result = _run(["-m", "kvshard.cli", *NATIVE_DPDK], env)
    _assert_one_line(result, "kvshard: DPDK is not installed", "apt-get install dpdk libdpdk-dev")


def test_without_cffi(tmp_path: Path) -> None:
    code = "import sys; sys.modules['cffi'] = None; from kvshard.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "KVSHARD_CACHE": str(tmp_path / "cache")}
    result = _run(["-c", code, *NATIVE_DPDK], env)
    _assert_one_line(result, "DPDK support needs cffi", "pip install 'kvshard[dpdk]'")


def test_eal_refusing_its_arguments() -> None:
    require_dpdk()
    result = _run(["-m", "kvshard.cli", *NATIVE_DPDK, "--dpdk-args=--no-such-eal-option"], dict(os.environ))
    _assert_one_line(result, "kvshard: DPDK EAL start-up failed", "--no-such-eal-option")


def test_dpdk_flags_need_the_native_stack() -> None:
    result = _run(["-m", "kvshard.cli", "--dpdk-pmd"], dict(os.environ))
    assert result.returncode == 64 and "--dpdk-pmd needs --network-stack native" in result.stderr
    result = _run(["-m", "kvshard.cli", "--network-stack", "native", "--tap-device", "t0", "--host-ipv4-addr",
                   "10.0.0.2", "--dpdk-args=-l 0"], dict(os.environ))
    assert result.returncode == 64 and "--dpdk-args needs --dpdk-pmd" in result.stderr
