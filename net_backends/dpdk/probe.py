"""Check, before any shard starts, that DPDK starts here with the given EAL arguments:
``python -m net_backends.dpdk.probe EAL-ARGS...`` builds (or finds) the glue, starts EAL and the
port in this throwaway process, and exits 0; or prints one line saying what is wrong and exits
1. kvshard's CLI runs it so that a missing DPDK or a bad ``--dpdk-args`` is one clear message
instead of shards failing one after another."""

from __future__ import annotations

import sys

from .device import DpdkDevice, start_eal
from .glue import DpdkUnavailable

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        start_eal(args)
        device = DpdkDevice(b"\x02\x00\x00\x00\x00\x01", rx_interrupts=False)
        device.close()
    except DpdkUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
