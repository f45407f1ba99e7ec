"""A DPDK port as a device of the native stack (net_backends/native/device.py): one Rx and one
Tx queue of one port, in a process that has started DPDK's EAL.

Theory of operation
-------------------
:func:`start_eal` runs ``rte_eal_init`` once per process (EAL cannot start twice, nor survive a
fork: each kvshard shard is a process of its own that starts its own EAL, with its own
``--file-prefix``, so shards never share DPDK state). :func:`eal_args` gives the defaults that
work on a machine without hugepages or NICs: no hugepages, no PCI scan, no shared config, 256 MB,
the shard's CPUs as its one lcore, and ``--vdev=net_tap0,iface=NAME``: DPDK's TAP driver, which
opens a queue of the kernel's multi-queue tap NAME, so the shards' processes share that tap as
the queues of one interface, as the native TAP device does. On a real NIC the operator passes
``--dpdk-args`` instead (hugepages, ``-a`` the PCI address).

:class:`DpdkDevice` configures the port with one queue pair and a mempool of its own, then moves
frames in bursts: ``receive_burst`` asks the C glue to receive up to a burst and copy every
frame into one buffer (``FRAME_ROOM`` bytes apart) in one call, and slices the frames out;
``send_burst`` joins the frames and hands them, with their lengths, to one C call that fills
mbufs and transmits. A driver that can wake us (net_tap: its queue's fd becomes readable) gives
``fileno``; the shard then sleeps when idle. Otherwise ``fileno`` is None and the stack is
polled without pause (DPDK's poll mode).

Port statistics (packets, missed, errors, allocation failures) and the link state are read
from the driver when metrics are collected. The stack's MAC is its own (as on the TAP device):
the driver does not filter by destination, and net_tap gives the kernel's side its own address.
"""

from __future__ import annotations

import os
from typing import Final, Sequence

from framework.metrics import MetricsRegistry

from .glue import FRAME_ROOM, MAX_BURST, DpdkUnavailable, load

__all__ = ["DpdkDevice", "DpdkError", "eal_args", "start_eal", "DEFAULT_PORT"]

DEFAULT_PORT: Final = "net_tap0"
_MBUFS: Final = 4095  # per shard; a power of two minus one suits the mempool's ring
_DESCRIPTORS: Final = 512


class DpdkError(DpdkUnavailable):
    """EAL or the port would not start; the message says why (DPDK's own words)."""


def eal_args(tap_device: str, tag: str, cpus: Sequence[int] | None = None, extra: str = "") -> list[str]:
    """EAL arguments: ``extra`` (``--dpdk-args``, split on spaces) when given, else the defaults
    for a TAP-backed port described in the module docstring."""
    if extra:
        return extra.split()
    cpu_set = ",".join(str(c) for c in (cpus if cpus is not None else sorted(os.sched_getaffinity(0))))
    return [
        "--no-huge", "--no-pci", "--no-shconf", "-m", "256", f"--file-prefix=kvshard-{tag}",
        f"--lcores=0@({cpu_set})", "--no-telemetry",
        "--log-level=lib.eal:warning", "--log-level=pmd.net.tap:crit",  # net_tap's flow-rule set-up fails harmlessly here
        f"--vdev={DEFAULT_PORT},iface={tap_device}",
    ]


_eal_started = False


def start_eal(args: Sequence[str]) -> None:
    """Start EAL with ``args`` (once per process)."""
    global _eal_started
    if _eal_started:
        return
    ffi, lib = load()
    argv = [b"kvshard", *(a.encode() for a in args)]
    keep = [ffi.new("char[]", a) for a in argv]
    rc = lib.kv_eal_init(len(keep), ffi.new("char *[]", keep))
    if rc < 0:
        reason = ffi.string(lib.kv_strerror(rc)).decode(errors="replace")
        raise DpdkError(f"DPDK EAL start-up failed: {reason} (EAL arguments: {' '.join(args)})")
    _eal_started = True


class DpdkDevice:
    """One queue pair of a DPDK port (a :class:`~net_backends.native.device.Device`)."""

    def __init__(self, mac: bytes, port_name: str = DEFAULT_PORT, rx_interrupts: bool = True) -> None:
        ffi, lib = load()
        self._ffi, self._lib = ffi, lib
        port = lib.kv_port_by_name(port_name.encode())
        if port < 0:
            if lib.kv_port_count() == 0:
                raise DpdkError("DPDK found no port: give one with --dpdk-args (a --vdev, or -a PCI address)")
            port = 0  # the first port EAL found, when it is not named like ours
        mtu = ffi.new("uint16_t *")
        fd = ffi.new("int *")
        driver = ffi.new("char[64]")
        rc = lib.kv_port_start(port, _MBUFS, _DESCRIPTORS, _DESCRIPTORS, int(rx_interrupts), mac, mtu, fd, driver, 64)
        if rc < 0:
            raise DpdkError(f"DPDK port {port_name} would not start: {ffi.string(lib.kv_strerror(rc)).decode(errors='replace')}")
        self.port = port
        self.mac = mac
        self.mtu = min(int(mtu[0]), 1500)
        self.driver = ffi.string(driver).decode(errors="replace")
        self._fd = int(fd[0]) if fd[0] >= 0 else None
        self._rx = ffi.new("uint8_t[]", MAX_BURST * FRAME_ROOM)
        self._rx_view = ffi.buffer(self._rx)
        self._rx_lens = ffi.new("uint16_t[]", MAX_BURST)
        self._tx_lens = ffi.new("uint16_t[]", MAX_BURST)
        self._too_long = ffi.new("uint64_t *")
        self._stats = ffi.new("uint64_t[]", 6)
        self._last_stats = [0] * 6
        self.tx_dropped = 0
        self._closed = False

    def fileno(self) -> int | None:
        return self._fd

    def receive_burst(self, max_frames: int = 32) -> list[bytes]:
        count = self._lib.kv_rx_burst(self.port, self._rx, self._rx_lens, min(max_frames, MAX_BURST), self._too_long)
        if count <= 0:
            return []
        view, lens = self._rx_view, self._rx_lens
        return [view[i * FRAME_ROOM : i * FRAME_ROOM + lens[i]] for i in range(count)]

    def send_burst(self, frames: Sequence[bytes]) -> int:
        sent = 0
        lens = self._tx_lens
        for start in range(0, len(frames), MAX_BURST):
            chunk = frames[start : start + MAX_BURST]
            for i, frame in enumerate(chunk):
                lens[i] = len(frame)
            took = self._lib.kv_tx_burst(self.port, b"".join(chunk), lens, len(chunk))
            sent += took
            self.tx_dropped += len(chunk) - took
        return sent

    def register_metrics(self, registry: MetricsRegistry) -> None:
        """The port's statistics and link state, read from the driver at collection."""
        names = (
            ("native_dpdk_packets_total", "Packets the DPDK port received and sent", {"direction": "rx"}, 0),
            ("native_dpdk_packets_total", "Packets the DPDK port received and sent", {"direction": "tx"}, 1),
            ("native_dpdk_missed_total", "Packets the DPDK port dropped for want of Rx descriptors", None, 2),
            ("native_dpdk_errors_total", "Errored packets of the DPDK port", {"direction": "rx"}, 3),
            ("native_dpdk_errors_total", "Errored packets of the DPDK port", {"direction": "tx"}, 4),
            ("native_dpdk_rx_nombuf_total", "Receive mbuf allocation failures of the DPDK port", None, 5),
        )
        for name, help_text, labels, index in names:
            registry.counter_func(name, help_text, labels, lambda index=index: self._stat(index))  # type: ignore[misc]
        registry.counter_func("native_dpdk_too_long_total", "Received frames over the copy slot, dropped", None,
                              lambda: int(self._too_long[0]))
        registry.gauge("native_dpdk_link_up", "1 while the DPDK port's link is up", {"driver": self.driver},
                       read=lambda: float(self._lib.kv_link_up(self.port) == 1))

    def _stat(self, index: int) -> int:
        """A statistic as the driver last gave it (after close, the last reading stands)."""
        if not self._closed and self._lib.kv_port_stats(self.port, self._stats) == 0:
            self._last_stats = [int(v) for v in self._stats]
        return self._last_stats[index]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._lib.kv_port_close(self.port)

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<DpdkDevice port {self.port} ({self.driver}) fd {self._fd}>"
