"""The container recipe: hadolint finds nothing at warning level, and the Dockerfile's build
steps (its COPY lines, then the RUN between ``# install: begin`` and ``# install: end``) run in
a fresh directory and venv give a kvshard that starts with the image's entrypoint and flags
and that the image's HEALTHCHECK calls healthy. Nothing built is in git (issue 19: the
wheels once committed at the root)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers import free_port, require_tool, stop_process

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    return found if os.path.exists(found) else require_tool("hadolint")


def test_hadolint_finds_nothing_at_warning_level() -> None:
    result = subprocess.run([_hadolint(), "--failure-threshold", "warning", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _build_stage() -> tuple[list[tuple[str, str]], str, dict[str, str]]:
    """(COPY sources and targets, the install RUN as shell text, ENV) of the build stage."""
    text = DOCKERFILE.read_text()
    build = text.split("\nFROM ", 2)[1]  # the first stage
    copies = []
    for line in re.findall(r"^COPY (.*)$", build, re.M):
        *sources, target = line.split()
        copies += [(source, target) for source in sources]
    install = build.split("# install: begin\n", 1)[1].split("# install: end", 1)[0]
    command = install.replace("\\\n", " ").strip()
    assert command.startswith("RUN ")
    env = dict(re.findall(r"(\w+)=(\S+)", re.search(r"^ENV (.*)$", build, re.M)[1]))  # type: ignore[index]
    return copies, command[4:], env


def test_the_image_install_steps_give_a_working_server(tmp_path: Path) -> None:
    copies, command, env = _build_stage()
    src, venv = tmp_path / "src", tmp_path / "venv"
    src.mkdir()
    for source, target in copies:  # (relative to WORKDIR /src, as in the Dockerfile)
        origin = ROOT / source
        dest = src / source if target.endswith("/") else src / target
        if origin.is_dir():
            shutil.copytree(origin, dest, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(origin, dest)
    run_env = {**os.environ, **env, "VENV": str(venv), "SRC": str(src)}
    run_env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(["bash", "-c", command.replace("python ", f"{sys.executable} ", 1)], cwd=src,
                            env=run_env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]

    # the install compiled the core (the image has gcc, and so does a machine set up for the tests)
    version = subprocess.run([str(venv / "bin" / "kvshard"), "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.splitlines()[1:] == ["core: compiled"], version.stdout + version.stderr

    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", DOCKERFILE.read_text(), re.M)[1])  # type: ignore[index]
    health = json.loads(re.search(r'CMD (\["python", "-m", "kvshard.health"\])', DOCKERFILE.read_text())[1])  # type: ignore[index]
    port = free_port()
    # the image's entrypoint, then flags as `docker run kvshard ...` passes them (an -l replaces the
    # entrypoint's --listen-default)
    server = subprocess.Popen([str(venv / "bin" / entrypoint[0]), *entrypoint[1:], "-l", "127.0.0.1", "-p", str(port),
                               "--metrics-port", "0", "-t", "1"], stdin=subprocess.DEVNULL)
    health_env = {**os.environ, "KVSHARD_PORT": str(port)}
    healthcheck = [str(venv / "bin" / health[0]), *health[1:]]
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(healthcheck, env=health_env, capture_output=True, timeout=10).returncode != 0:
            assert server.poll() is None and time.monotonic() < deadline, "the installed kvshard did not become healthy"
            time.sleep(0.2)
    finally:
        stop_process(server)
    assert server.returncode == 0
    down = subprocess.run(healthcheck, env=health_env, capture_output=True, text=True, timeout=10)
    assert down.returncode == 1 and "unhealthy" in down.stderr


BUILD_OUTPUT = re.compile(r"\.(whl|so|pyd|dylib|o|a|egg|tar\.gz|zip)$")


def test_git_holds_no_build_output() -> None:
    """``git ls-files``: no wheel, shared object, object file or archive, and no C file that
    Cython generated (hand-written C, such as the DPDK glue, is source)."""
    git = require_tool("git")
    listed = subprocess.run([git, "-C", str(ROOT), "ls-files"], capture_output=True, text=True, timeout=60)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    files = listed.stdout.splitlines()
    assert files
    built = [name for name in files if BUILD_OUTPUT.search(name)]
    built += [name for name in files if name.endswith(".c") and "Generated by Cython" in (ROOT / name).read_text()[:200]]
    assert not built
