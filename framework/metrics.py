"""Per-shard metrics: plain counters, gauges and histograms.

Each shard owns one :class:`MetricsRegistry`. Updating a metric is an attribute increment on a
Python object that only this shard's thread touches, so there are no locks and no files; the
values are read only when somebody asks (a scrape, ``stats``), by :meth:`MetricsRegistry.collect`
on every shard at once through ``map_reduce`` (see :func:`framework.shard.gather_metrics`).

A collected sample is a msgpack-friendly tuple so it can cross shards::

    (name, kind, help, labels, value)

where ``labels`` is a tuple of (key, value) pairs, ``kind`` is "counter", "gauge" or
"histogram", and a histogram's value is ``(bounds, cumulative_counts, sum, count)`` with the
last bound ``inf`` written as the string "+Inf".
"""

from __future__ import annotations

import bisect
import math
from typing import Callable, Iterable, Union

__all__ = [
    "Counter",
    "CounterFunc",
    "Gauge",
    "Histogram",
    "MetricsRegistry",
    "Sample",
    "DEFAULT_LATENCY_BOUNDS",
]

Labels = tuple[tuple[str, str], ...]
HistogramValue = tuple[tuple[Union[float, str], ...], tuple[int, ...], float, int]
Sample = tuple[str, str, str, Labels, Union[int, float, HistogramValue]]

DEFAULT_LATENCY_BOUNDS: tuple[float, ...] = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)


class Counter:
    """A value that only goes up. ``inc`` is the hot path: one attribute add."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class CounterFunc(Counter):
    """A counter kept elsewhere (a driver's statistics), read from a function at collect time."""

    __slots__ = ("read",)

    def __init__(self, read: Callable[[], int]) -> None:
        super().__init__()
        self.read = read


class Gauge:
    """A value that goes up and down, or is read from a function at collect time."""

    __slots__ = ("value", "_read")

    def __init__(self, read: Callable[[], float] | None = None) -> None:
        self.value: float = 0
        self._read = read

    def set(self, value: float) -> None:
        self.value = value

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def dec(self, amount: float = 1) -> None:
        self.value -= amount

    def current(self) -> float:
        return self._read() if self._read is not None else self.value


class Histogram:
    """Counts of observations per bucket (upper bounds, plus +Inf), with sum and count."""

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: Iterable[float] = DEFAULT_LATENCY_BOUNDS) -> None:
        self.bounds = tuple(sorted(bounds))
        if not self.bounds or any(math.isinf(b) or math.isnan(b) for b in self.bounds):
            raise ValueError("histogram bounds must be finite and non-empty")
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def snapshot(self) -> HistogramValue:
        cumulative = []
        running = 0
        for c in self.counts:
            running += c
            cumulative.append(running)
        return (*self.bounds, "+Inf"), tuple(cumulative), self.sum, self.count


Metric = Union[Counter, Gauge, Histogram]
_KINDS = {Counter: "counter", CounterFunc: "counter", Gauge: "gauge", Histogram: "histogram"}


class MetricsRegistry:
    """The metrics of one shard, keyed by (name, labels)."""

    def __init__(self) -> None:
        self._metrics: dict[tuple[str, Labels], tuple[Metric, str]] = {}

    def _add(self, name: str, help_text: str, labels: dict[str, str] | None, metric: Metric) -> Metric:
        key = (name, tuple(sorted((labels or {}).items())))
        existing = self._metrics.get(key)
        if existing is not None:
            if type(existing[0]) is not type(metric):
                raise ValueError(f"metric {name} already registered as another kind")
            return existing[0]
        self._metrics[key] = (metric, help_text)
        return metric

    def counter(self, name: str, help_text: str, labels: dict[str, str] | None = None) -> Counter:
        return self._add(name, help_text, labels, Counter())  # type: ignore[return-value]

    def counter_func(self, name: str, help_text: str, labels: dict[str, str] | None, read: Callable[[], int]) -> CounterFunc:
        """A counter whose value ``read()`` gives at collect time."""
        return self._add(name, help_text, labels, CounterFunc(read))  # type: ignore[return-value]

    def gauge(
        self,
        name: str,
        help_text: str,
        labels: dict[str, str] | None = None,
        read: Callable[[], float] | None = None,
    ) -> Gauge:
        return self._add(name, help_text, labels, Gauge(read))  # type: ignore[return-value]

    def histogram(
        self,
        name: str,
        help_text: str,
        labels: dict[str, str] | None = None,
        bounds: Iterable[float] = DEFAULT_LATENCY_BOUNDS,
    ) -> Histogram:
        return self._add(name, help_text, labels, Histogram(bounds))  # type: ignore[return-value]

    def collect(self) -> list[Sample]:
        samples: list[Sample] = []
        for (name, labels), (metric, help_text) in self._metrics.items():
            kind = _KINDS[type(metric)]
            if isinstance(metric, CounterFunc):
                value: int | float | HistogramValue = metric.read()
            elif isinstance(metric, Counter):
                value = metric.value
            elif isinstance(metric, Gauge):
                value = metric.current()
            else:
                value = metric.snapshot()
            samples.append((name, kind, help_text, labels, value))
        return samples
