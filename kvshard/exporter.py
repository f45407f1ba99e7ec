"""Prometheus metrics of the whole server, one ``shard`` label per series.

Theory of operation
-------------------
At scrape time the shard serving HTTP asks every shard for its report over the channels
(:func:`gather_reports`): the ``stats`` counters its KV service keeps and the samples of its
framework registry (channels, reactor). A shard that does not answer within the timeout has
``memcached_up{shard}`` 0 and no other series. :func:`render` turns the reports into metric
families with prometheus-client and writes the text exposition format.

Names follow memcached_exporter, so existing dashboards and alerts work per shard and, summed
over shards, for the server (each ``memcached_*`` total equals the matching ``stats`` field).
kvshard's own series are the framework registry's, prefixed ``kvshard_``. Nothing is exported
that kvshard does not count.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Final, Iterable, Iterator

from framework import Shard, ShardUnavailable

from . import __version__, core
from .service import REPORT_HANDLER
from .stats import ServerInfo

if TYPE_CHECKING:
    from prometheus_client.core import Metric

__all__ = ["REPORT_HANDLER", "Report", "gather_reports", "render", "CONTENT_TYPE"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

# (stats counters, framework samples) of one shard, or None if it did not answer
Report = tuple[dict[str, Any], list[Any]] | None

# memcached_commands_total{command, status} <- stats field
_COMMANDS: Final = (
    ("get", "hit", "get_hits"), ("get", "miss", "get_misses"), ("get", "expired", "get_expired"),
    ("set", "hit", "cmd_set"), ("flush", "hit", "cmd_flush"),
    ("touch", "hit", "touch_hits"), ("touch", "miss", "touch_misses"),
    ("delete", "hit", "delete_hits"), ("delete", "miss", "delete_misses"),
    ("incr", "hit", "incr_hits"), ("incr", "miss", "incr_misses"),
    ("decr", "hit", "decr_hits"), ("decr", "miss", "decr_misses"),
    ("cas", "hit", "cas_hits"), ("cas", "miss", "cas_misses"), ("cas", "badval", "cas_badval"),
)
# (metric, kind, help, stats field)
_PLAIN: Final = (
    ("memcached_current_items", "gauge", "Current number of items stored.", "curr_items"),
    ("memcached_items_total", "counter", "Total number of items stored.", "total_items"),
    ("memcached_current_bytes", "gauge", "Current number of bytes used to store items.", "bytes"),
    ("memcached_limit_bytes", "gauge", "Number of bytes this shard may use to store items.", "limit_bytes"),
    ("memcached_current_connections", "gauge", "Current number of open connections.", "curr_connections"),
    ("memcached_connections_total", "counter", "Total number of connections opened.", "total_connections"),
    ("memcached_connections_rejected_total", "counter", "Connections refused at the -c limit.", "rejected_connections"),
    ("memcached_items_evicted_total", "counter", "Items evicted to free memory.", "evictions"),
    ("memcached_items_reclaimed_total", "counter", "Expired items removed.", "reclaimed"),
    ("memcached_read_bytes_total", "counter", "Bytes read from clients.", "bytes_read"),
    ("memcached_written_bytes_total", "counter", "Bytes written to clients.", "bytes_written"),
    ("memcached_process_user_cpu_seconds_total", "counter", "User CPU time of the shard process.", "rusage_user"),
    ("memcached_process_system_cpu_seconds_total", "counter", "System CPU time of the shard process.", "rusage_system"),
)


async def gather_reports(shard: Shard, timeout: float) -> list[Report]:
    """Every shard's report, in shard order; None for a shard that did not answer in time."""

    async def one(target: int) -> Report:
        try:
            stats, samples = await asyncio.wait_for(shard.submit_to(target, REPORT_HANDLER), timeout)
        except (asyncio.TimeoutError, ShardUnavailable):
            return None
        return stats, samples

    return list(await asyncio.gather(*(one(s) for s in range(shard.count))))


def render(info: ServerInfo, reports: list[Report], now: float | None = None) -> bytes:
    """The text exposition of every shard's series. prometheus-client is imported here, on the
    first scrape: only the shard serving HTTP pays its ~5 MiB, and only when scraped."""
    from prometheus_client.exposition import generate_latest
    from prometheus_client.registry import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(list(_families(info, reports, time.time() if now is None else now))))  # type: ignore[arg-type]
    return generate_latest(registry)


class _Snapshot:
    """A collector that yields families built beforehand (prometheus-client's interface)."""

    def __init__(self, families: list["Metric"]) -> None:
        self._families = families

    def collect(self) -> Iterator["Metric"]:
        return iter(self._families)


def _family(kind: str, name: str, help_text: str, labels: list[str]) -> "Metric":
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    if kind == "counter":
        return CounterMetricFamily(name, help_text, labels=labels)
    if kind == "histogram":
        return HistogramMetricFamily(name, help_text, labels=labels)
    return GaugeMetricFamily(name, help_text, labels=labels)


def _families(info: ServerInfo, reports: list[Report], now: float) -> Iterable["Metric"]:
    shards = [(str(i), r) for i, r in enumerate(reports)]
    answered = [(label, r) for label, r in shards if r is not None]

    build = _family("gauge", "kvshard_build_info", "Always 1: kvshard's version and which core runs.", ["version", "core"])
    build.add_metric([__version__, core.mode()], 1)
    yield build
    up = _family("gauge", "memcached_up", "Whether the shard answered this scrape.", ["shard"])
    for label, report in shards:
        up.add_metric([label], 0 if report is None else 1)
    yield up
    uptime = _family("gauge", "memcached_uptime_seconds", "Seconds since the server started.", ["shard"])
    clock = _family("gauge", "memcached_time_seconds", "The server's current Unix time.", ["shard"])
    for label, _ in answered:
        uptime.add_metric([label], int(now - info.started))
        clock.add_metric([label], int(now))
    yield uptime
    yield clock
    commands = _family("counter", "memcached_commands", "Commands served, by command and outcome.", ["shard", "command", "status"])
    for label, report in answered:
        stats = report[0]  # type: ignore[index]
        for command, status, field in _COMMANDS:
            commands.add_metric([label, command, status], stats.get(field, 0))
    yield commands
    for name, kind, help_text, field in _PLAIN:
        family = _family(kind, name, help_text, ["shard"])
        for label, report in answered:
            family.add_metric([label], report[0].get(field, 0))  # type: ignore[index, attr-defined]
        yield family
    requests = _family(
        "counter", "kvshard_requests",
        "Keyed operations of this shard's clients, served here or forwarded to the key's owner.", ["shard", "served"],
    )
    for label, report in answered:
        requests.add_metric([label, "local"], report[0].get("local_requests", 0))  # type: ignore[index]
        requests.add_metric([label, "forwarded"], report[0].get("forwarded_requests", 0))  # type: ignore[index]
    yield requests
    if any("udp_dropped" in report[0] for _, report in answered):  # type: ignore[index]
        dropped = _family(
            "counter", "kvshard_udp_dropped_datagrams",
            "UDP datagrams dropped unanswered: 8 bytes or less, or a multi-datagram request.", ["shard"],
        )
        for label, report in answered:
            dropped.add_metric([label], report[0].get("udp_dropped", 0))  # type: ignore[index]
        yield dropped
    yield from _framework_families(answered)


def _framework_families(answered: list[tuple[str, Report]]) -> Iterable["Metric"]:
    """The framework registries' samples, as ``kvshard_<name>{shard, ...}``."""
    families: dict[str, "Metric"] = {}
    for label, report in answered:
        for name, kind, help_text, labels, value in report[1]:  # type: ignore[index]
            label_names = ["shard", *(k for k, _ in labels)]
            label_values = [label, *(v for _, v in labels)]
            full = "kvshard_" + name
            family = families.get(full)
            if family is None:
                family = families[full] = _family(kind, full, help_text, label_names)
            if kind == "histogram":
                bounds, cumulative, total, _count = value
                buckets = [(_bound(b), c) for b, c in zip(bounds, cumulative)]
                family.add_metric(label_values, buckets, total)  # type: ignore[call-arg]
            else:
                family.add_metric(label_values, value)
    return families.values()


def _bound(bound: float | str) -> str:
    return "+Inf" if bound == "+Inf" else repr(float(bound))
