"""Builds the compiled core: every module of ours with a ``.pxd`` beside its ``.py`` is compiled
by Cython (pure-Python mode) into an extension of the same name. Everything else about the
package is in pyproject.toml.

No extensions are built when ``KVSHARD_NO_EXTENSIONS=1`` is set, and a failed build (no C
compiler, no Python headers) installs the interpreted modules with a warning instead of
failing: the server then runs, several times slower, and says so at start.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

PACKAGES = ("framework", "kvshard", "net_backends")
HERE = Path(__file__).parent
# Cython directives for every compiled module: Python semantics stay exact (the interpreted
# modules must behave the same), annotations are documentation, types come from the .pxd.
DIRECTIVES = {
    "language_level": 3,
    "annotation_typing": False,
    "binding": False,
    "embedsignature": False,
}


def _compiled_sources() -> list[Path]:
    return sorted(
        pxd.with_suffix(".py")
        for package in PACKAGES
        for pxd in (HERE / package).rglob("*.pxd")
        if pxd.with_suffix(".py").exists()
    )


def _extensions() -> list[Extension]:
    if os.environ.get("KVSHARD_NO_EXTENSIONS", "") not in ("", "0"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("kvshard: Cython is missing; installing the interpreted core", file=sys.stderr)
        return []
    modules = [
        Extension(".".join(source.relative_to(HERE).with_suffix("").parts), [str(source.relative_to(HERE))])
        for source in _compiled_sources()
    ]
    # the generated C goes to build/ (ignored by git), the extensions next to their sources
    return cythonize(modules, compiler_directives=DIRECTIVES, quiet=True, build_dir="build/cython")


class _OptionalBuildExt(build_ext):
    """A build that cannot compile leaves the interpreted modules in place (aiohttp and
    msgpack do the same)."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any compiler failure
            self._fallback(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self._fallback(exc)

    @staticmethod
    def _fallback(exc: Exception) -> None:
        print(f"kvshard: WARNING: could not compile the core ({exc}); the interpreted modules will run",
              file=sys.stderr)


setup(ext_modules=_extensions(), cmdclass={"build_ext": _OptionalBuildExt})
