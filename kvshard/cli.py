"""The ``kvshard`` command.

Today it starts the shard runtime (one pinned process per CPU, shared-memory channels,
supervised, clean stop on SIGTERM/SIGINT). The memcached protocol and memcached's full flag set
come with the ASCII server (issue 3).
"""

from __future__ import annotations

import argparse
import logging
import sys

from framework import ShardApp, run

from . import __version__

__all__ = ["main"]

EX_USAGE = 64


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="kvshard", description="memcached-compatible key-value server, one shard per core")
    p.add_argument("-t", "--threads", type=int, default=None, help="number of shards (default: CPUs)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    p.add_argument("-V", "--version", action="version", version=f"kvshard {__version__}")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        if args.threads is not None and args.threads < 1:
            raise _UsageError("-t/--threads must be at least 1")
    except _UsageError as exc:
        print(f"kvshard: {exc}", file=sys.stderr)
        return EX_USAGE
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return run(ShardApp(), args.threads)


if __name__ == "__main__":
    sys.exit(main())
