"""framework.extensions: which of our modules run compiled, and the two ways their source runs
instead (KVSHARD_NO_EXTENSIONS=1, and a stale extension in a source checkout).

The cases run in a throwaway tree holding a copy of one real compiled module (and its source),
under the package name it was built for, each in a fresh interpreter."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from framework import extensions
from kvshard import core
from kvshard.protocol import numbers

ROOT = Path(__file__).resolve().parent.parent

_PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from framework import extensions
import kvshard.protocol.numbers as m
print(json.dumps([m.__file__.rsplit("/", 1)[1], extensions.is_compiled(m), extensions.stale_modules()]))
"""


def _tree(tmp_path: Path, checkout: bool) -> tuple[Path, Path]:
    """A copy of kvshard.protocol.numbers, compiled and source, in tmp_path; returns (py, so)."""
    package = tmp_path / "kvshard" / "protocol"
    package.mkdir(parents=True)
    (tmp_path / "kvshard" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    if checkout:
        (tmp_path / "setup.py").write_text("")
    source = shutil.copy(ROOT / "kvshard" / "protocol" / "numbers.py", package / "numbers.py")
    compiled = shutil.copy(numbers.__file__, package / Path(numbers.__file__).name)
    return Path(source), Path(compiled)


def _probe(tree: Path, **env: str) -> list[object]:
    environment = {k: v for k, v in os.environ.items() if k != extensions.NO_EXTENSIONS_ENV}
    environment["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", _PROBE, str(tree)], capture_output=True, text=True, timeout=60,
                         env={**environment, **env}, cwd=tree)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


needs_compiled = pytest.mark.skipif(not extensions.is_compiled(numbers), reason="the compiled core is not built")


@needs_compiled
def test_a_built_extension_runs(tmp_path: Path) -> None:
    source, compiled = _tree(tmp_path, checkout=True)
    os.utime(source, (time.time() - 60, time.time() - 60))
    name, is_compiled, stale = _probe(tmp_path)
    assert name == compiled.name and is_compiled and stale == []


@needs_compiled
def test_no_extensions_runs_the_source(tmp_path: Path) -> None:
    source, _ = _tree(tmp_path, checkout=True)
    os.utime(source, (time.time() - 60, time.time() - 60))
    assert _probe(tmp_path, **{extensions.NO_EXTENSIONS_ENV: "1"}) == ["numbers.py", False, []]
    assert _probe(tmp_path, **{extensions.NO_EXTENSIONS_ENV: "0"})[1] is True


@needs_compiled
def test_a_stale_extension_in_a_checkout_runs_the_source(tmp_path: Path) -> None:
    source, compiled = _tree(tmp_path, checkout=True)
    os.utime(compiled, (time.time() - 60, time.time() - 60))
    assert _probe(tmp_path) == ["numbers.py", False, ["kvshard.protocol.numbers"]]


@needs_compiled
def test_an_installed_extension_is_not_judged_by_file_times(tmp_path: Path) -> None:
    _, compiled = _tree(tmp_path, checkout=False)  # no setup.py: an installed package
    os.utime(compiled, (time.time() - 60, time.time() - 60))
    name, is_compiled, stale = _probe(tmp_path)
    assert name == compiled.name and is_compiled and stale == []


def test_core_mode_names_every_hot_module() -> None:
    """The hot modules are exactly those with a .pxd, but for the channel benchmark's compiled
    ends (framework.bench reports their core itself); the core is compiled only if all are."""
    with_pxd = {
        ".".join(pxd.relative_to(ROOT).with_suffix("").parts)
        for package in ("framework", "kvshard", "net_backends")
        for pxd in (ROOT / package).rglob("*.pxd")
    } - {"framework.bench_fixed"}
    assert {module.__name__ for module in core.HOT_MODULES} == with_pxd
    slow = extensions.interpreted_modules(core.HOT_MODULES)
    assert core.mode() == ("interpreted" if slow else "compiled")
    if extensions.extensions_disabled():
        assert slow == [module.__name__ for module in core.HOT_MODULES]


@pytest.mark.parametrize("module", ["kvshard.protocol.ascii", "kvshard.cache", "kvshard.service"])
def test_the_c_constants_of_a_pxd_are_the_numbers_of_its_source(module: str) -> None:
    """Compiled, a module's ``cpdef enum`` (the ASCII opcodes, the store results, the
    fixed-record handler ids) defines the names; interpreted, the ``.py`` does, inside
    ``if not cython.compiled:``. The two lists must agree, name for name and number for number."""
    import importlib
    import re

    path = ROOT.joinpath(*module.split("."))
    source = path.with_suffix(".py").read_text()
    pxd = path.with_suffix(".pxd").read_text()
    guarded = source[source.index("if not cython.compiled:"):].split("\n\n")[0]
    in_source = dict(re.findall(r"^    ([A-Z_]+): Final = (\d+)\b", guarded, re.M))
    enum = pxd[pxd.index("cpdef enum:"):].split("\n\n")[0]
    in_pxd = dict(re.findall(r"^    ([A-Z_]+) = (\d+)$", enum, re.M))
    assert in_source and in_source == in_pxd
    loaded = importlib.import_module(module)
    assert all(getattr(loaded, name) == int(number) for name, number in in_source.items())
