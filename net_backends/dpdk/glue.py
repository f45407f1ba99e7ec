"""Building and loading the C glue (``glue.c``) with cffi in API mode, against the DPDK that
``pkg-config libdpdk`` describes.

The glue is compiled on first use into a cache directory (``$KVSHARD_CACHE``, else
``$XDG_CACHE_HOME/kvshard``, else ``~/.cache/kvshard``) under a name that hashes the C source,
the declarations and DPDK's version, so a changed source or a new DPDK builds anew and nothing
is ever written into the source tree. Concurrent first uses (several shards) serialise on a lock
file; the first builds, the others load. What is missing is reported as :class:`DpdkUnavailable`
with a one-line message that says how to install it.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

__all__ = ["DpdkUnavailable", "load", "FRAME_ROOM", "MAX_BURST", "INSTALL_HINT"]

FRAME_ROOM: Final = 2048  # glue.c's KV_FRAME_ROOM: the receive buffer's slot per frame
MAX_BURST: Final = 64  # the most frames one glue call moves
INSTALL_HINT: Final = "apt-get install dpdk libdpdk-dev pkg-config gcc, and pip install 'kvshard[dpdk]'"

CDEF: Final = """
int kv_eal_init(int argc, char **argv);
const char *kv_strerror(int err);
int kv_port_by_name(const char *name);
int kv_port_count(void);
int kv_port_start(uint16_t port, unsigned n_mbufs, uint16_t rx_desc, uint16_t tx_desc, int want_rx_intr,
                  const uint8_t *mac, uint16_t *mtu, int *rx_fd, char *driver, unsigned driver_len);
int kv_rx_intr_enable(uint16_t port);
int kv_rx_burst(uint16_t port, uint8_t *buf, uint16_t *lens, unsigned max, uint64_t *too_long);
int kv_tx_burst(uint16_t port, const char *buf, const uint16_t *lens, unsigned n);
int kv_port_stats(uint16_t port, uint64_t *out);
int kv_link_up(uint16_t port);
void kv_port_close(uint16_t port);
"""

_SOURCE: Final = Path(__file__).with_name("glue.c")
_loaded: tuple[Any, Any] | None = None


class DpdkUnavailable(Exception):
    """DPDK support cannot be used here; the message says what is missing and how to fix it."""


def _pkg_config(*args: str) -> str:
    tool = shutil.which("pkg-config")
    if tool is None:
        raise DpdkUnavailable(f"DPDK is not installed (no pkg-config to find libdpdk): {INSTALL_HINT}")
    result = subprocess.run([tool, *args, "libdpdk"], capture_output=True, text=True)
    if result.returncode != 0:
        raise DpdkUnavailable(f"DPDK is not installed (pkg-config finds no libdpdk): {INSTALL_HINT}")
    return result.stdout.strip()


def cache_dir() -> Path:
    base = os.environ.get("KVSHARD_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kvshard")
    return Path(base) / "dpdk"


def load() -> tuple[Any, Any]:
    """``(ffi, lib)`` of the glue, building it first if this DPDK and source have no build."""
    global _loaded
    if _loaded is not None:
        return _loaded
    try:
        import cffi
    except ImportError:
        raise DpdkUnavailable(f"DPDK support needs cffi, which is not installed: {INSTALL_HINT}") from None
    version = _pkg_config("--modversion")
    source = _SOURCE.read_text()
    digest = hashlib.sha256("\0".join((source, CDEF, version, cffi.__version__, sys.version)).encode()).hexdigest()[:16]
    name = f"_kvshard_dpdk_{digest}"
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = [p for p in directory.glob(f"{name}*.so")]
        if not built:
            _build(cffi, name, source, directory)
            built = [p for p in directory.glob(f"{name}*.so")]
    spec = importlib.util.spec_from_file_location(name, built[0])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    _loaded = (module.ffi, module.lib)
    return _loaded


def _build(cffi: Any, name: str, source: str, directory: Path) -> None:
    if shutil.which(os.environ.get("CC", "gcc")) is None and shutil.which("cc") is None:
        raise DpdkUnavailable(f"building kvshard's DPDK glue needs a C compiler: {INSTALL_HINT}")
    cflags = _pkg_config("--cflags").split()
    libs = _pkg_config("--libs").split()
    builder = cffi.FFI()
    builder.cdef(CDEF)
    builder.set_source(name, source, extra_compile_args=[*cflags, "-O2", "-w"], extra_link_args=libs)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        try:
            so = builder.compile(tmpdir=tmp, verbose=False)
        except Exception as exc:  # distutils' CompileError / LinkError
            raise DpdkUnavailable(f"building kvshard's DPDK glue failed ({str(exc).strip().splitlines()[-1]}): {INSTALL_HINT}") from None
        os.replace(so, directory / os.path.basename(so))
