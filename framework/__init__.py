"""A Seastar-like runtime: one process per shard, shared-memory channels, pollers, metrics.

Typical use::

    from framework import ShardApp, run

    class App(ShardApp):
        async def setup(self, shard):
            shard.register("echo", lambda x: x)

        async def start(self, shard):
            print(await shard.submit_to((shard.id + 1) % shard.count, "echo", shard.id))

    raise SystemExit(run(App(), shards=2))

This package imports nothing from ``kvshard`` or ``net_backends``.
"""

from . import extensions  # noqa: F401 - first: decides compiled or interpreted modules (see there)
from .errors import RemoteError, ShardUnavailable, UnknownHandler, register_exception
from .metrics import Counter, Gauge, Histogram, MetricsRegistry
from .reactor import Poller, Reactor
from .shard import Shard, ShardApp, ShardSettings, gather_metrics
from .smp import default_cpus, run

__all__ = [
    "Counter",
    "Gauge",
    "Histogram",
    "MetricsRegistry",
    "Poller",
    "Reactor",
    "RemoteError",
    "Shard",
    "ShardApp",
    "ShardSettings",
    "ShardUnavailable",
    "UnknownHandler",
    "default_cpus",
    "gather_metrics",
    "register_exception",
    "run",
]
