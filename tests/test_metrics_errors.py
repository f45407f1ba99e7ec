"""The per-shard metrics registry and exception transport, in one process."""

from __future__ import annotations

import msgpack
import pytest

from framework.errors import (
    RemoteError,
    ShardUnavailable,
    UnknownHandler,
    decode_exception,
    encode_exception,
    register_exception,
)
from framework.metrics import MetricsRegistry


def test_counter_gauge_histogram_collect() -> None:
    reg = MetricsRegistry()
    c = reg.counter("requests_total", "Requests", {"kind": "get"})
    c.inc()
    c.inc(4)
    g = reg.gauge("connections", "Open connections")
    g.inc(3)
    g.dec()
    live = reg.gauge("items", "Items", read=lambda: 42)
    h = reg.histogram("latency_seconds", "Latency", bounds=(0.001, 0.01))
    for v in (0.0005, 0.001, 0.005, 5.0):
        h.observe(v)
    samples = {s[0]: s for s in reg.collect()}
    assert samples["requests_total"][1:] == ("counter", "Requests", (("kind", "get"),), 5)
    assert samples["connections"][4] == 2
    assert samples["items"][4] == 42 and live.current() == 42
    bounds, cumulative, total, count = samples["latency_seconds"][4]
    assert bounds == (0.001, 0.01, "+Inf")
    assert cumulative == (2, 3, 4)  # 0.001 falls in the <= 0.001 bucket
    assert count == 4 and total == pytest.approx(5.0065)
    # samples cross shards as msgpack
    assert msgpack.unpackb(msgpack.packb(reg.collect()), use_list=False) is not None


def test_same_name_and_labels_returns_same_metric() -> None:
    reg = MetricsRegistry()
    assert reg.counter("x", "h", {"a": "1"}) is reg.counter("x", "h", {"a": "1"})
    assert reg.counter("x", "h", {"a": "1"}) is not reg.counter("x", "h", {"a": "2"})
    with pytest.raises(ValueError):
        reg.gauge("x", "h", {"a": "1"})


def test_histogram_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError):
        MetricsRegistry().histogram("h", "h", bounds=())


@pytest.mark.parametrize(
    "exc",
    [KeyError("k"), ValueError("bad value"), ZeroDivisionError("division by zero"), UnknownHandler("no x")],
)
def test_exceptions_round_trip_as_themselves(exc: Exception) -> None:
    back = decode_exception(*encode_exception(exc))
    assert type(back) is type(exc)
    assert str(back) == str(exc)


def test_unknown_exception_type_becomes_remote_error() -> None:
    class Private(Exception):
        pass

    back = decode_exception(*encode_exception(Private("secret")))
    assert isinstance(back, RemoteError)
    assert back.type_name.endswith("Private") and back.remote_message == "secret"
    # and it travels on unchanged
    again = decode_exception(*encode_exception(back))
    assert isinstance(again, RemoteError) and again.type_name == back.type_name


def test_registered_exception_round_trips() -> None:
    @register_exception
    class Mine(Exception):
        pass

    back = decode_exception(*encode_exception(Mine("m")))
    assert type(back) is Mine and str(back) == "m"


def test_shard_unavailable_round_trips() -> None:
    back = decode_exception(*encode_exception(ShardUnavailable(3, "gone")))
    assert isinstance(back, ShardUnavailable) and "shard 3: gone" in str(back)


def test_builtin_non_exception_names_are_not_instantiated() -> None:
    back = decode_exception("print", "x")
    assert isinstance(back, RemoteError)
