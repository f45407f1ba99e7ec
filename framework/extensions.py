"""The compiled core: which of our modules run compiled, and how to run them interpreted.

Theory of operation
-------------------
The hot modules are ordinary ``.py`` files with a ``.pxd`` beside them (Cython's pure-Python
mode): ``pip install`` compiles each into an extension module of the same name (setup.py), which
Python's import system then prefers to the ``.py``. Nothing else marks a module as compiled:
the ``.pxd`` is the list.

Two things make the ``.py`` run instead, per module, before it is imported:
  * ``KVSHARD_NO_EXTENSIONS=1`` in the environment (aiohttp's ``AIOHTTP_NO_EXTENSIONS`` is the
    model): every module of ours is loaded from its source, so the same tests can run on both;
  * a *stale* extension in a source checkout (a directory with ``setup.py`` above the
    package: an editable install), one older than its ``.py`` because the source was edited
    since the build: running yesterday's machine code against today's source would be a
    silent lie, so the source runs and :func:`stale_modules` names it until a rebuild. An
    installed wheel is never judged by file times (pip does not keep them in order).

Both are done by :class:`_SourceFirst`, a finder put at the front of ``sys.meta_path`` when
this module is first imported (``framework/__init__`` imports it before anything else). It
asks the normal path finder for a spec and, only when that spec is one of our extension
modules that must not run, answers the ``.py`` instead. Modules outside our packages are
never touched.

:func:`core_mode` tells which core runs, from the modules themselves: ``compiled`` when every
given module was loaded from an extension, else ``interpreted``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from types import ModuleType
from typing import Final, Iterable, Sequence

__all__ = [
    "NO_EXTENSIONS_ENV",
    "extensions_disabled",
    "is_compiled",
    "core_mode",
    "interpreted_modules",
    "stale_modules",
]

NO_EXTENSIONS_ENV: Final = "KVSHARD_NO_EXTENSIONS"
_PACKAGES: Final = ("framework", "kvshard", "net_backends")
_stale: list[str] = []


def extensions_disabled() -> bool:
    """True when ``KVSHARD_NO_EXTENSIONS`` asks for the interpreted modules."""
    return os.environ.get(NO_EXTENSIONS_ENV, "") not in ("", "0")


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Loads one of our modules from its ``.py`` when its extension must not run."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] not in _PACKAGES or path is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            return None
        assert spec.origin is not None
        source = os.path.join(os.path.dirname(spec.origin), fullname.rpartition(".")[2] + ".py")
        if not os.path.exists(source):
            return spec
        if not extensions_disabled():
            if not _in_checkout(fullname, spec.origin) or os.stat(source).st_mtime <= os.stat(spec.origin).st_mtime:
                return spec
            _stale.append(fullname)
        return importlib.util.spec_from_file_location(fullname, source)


def _in_checkout(fullname: str, origin: str) -> bool:
    """True if the module file lies in a source tree with setup.py at its root."""
    root = os.path.dirname(origin)
    for _ in range(fullname.count(".")):
        root = os.path.dirname(root)
    return os.path.exists(os.path.join(root, "setup.py"))


if not any(isinstance(finder, _SourceFirst) for finder in sys.meta_path):
    sys.meta_path.insert(0, _SourceFirst())


def is_compiled(module: ModuleType) -> bool:
    """True if ``module`` was loaded from a compiled extension."""
    return isinstance(getattr(module, "__loader__", None), importlib.machinery.ExtensionFileLoader)


def interpreted_modules(modules: Iterable[ModuleType]) -> list[str]:
    """The names of those ``modules`` that run interpreted."""
    return [module.__name__ for module in modules if not is_compiled(module)]


def core_mode(modules: Iterable[ModuleType]) -> str:
    """``compiled`` if every one of ``modules`` is compiled, else ``interpreted``."""
    return "interpreted" if interpreted_modules(modules) else "compiled"


def stale_modules() -> list[str]:
    """Modules whose extension was older than their source, so the source runs (rebuild with
    ``pip install -e .``)."""
    return list(_stale)
