"""A memcached user for locust: load a memcached-compatible server with scenarios in Python.

    locust -f loadtest/locustfile.py --headless -u 50 -r 10 -t 30s --host 127.0.0.1:11211

(``--host memcached://127.0.0.1:11211`` works too; without ``--headless`` the web UI shows
these options under "Custom parameters".) Each simulated user keeps one connection of its own
(:mod:`loadtest.mcclient`, pure Python, so gevent can run hundreds of users in one process; a C
client would block locust's worker) and runs operations back to back, each reported to locust
under its command's name (``get``, ``set``, ``multiget``, ``delete``, ``incr``) with its
response time and size. A failure is an error reply, a timeout, or a wrong value: every value
carries its key and a CRC-32, so a get that returns another key's value, a truncated or a
corrupted one fails. A miss is not a failure (keys expire and get evicted); it is counted in
the ``get``/``multiget`` requests' sizes (0 bytes).

Options (also from the environment, e.g. ``MC_KEYS=100000``):

  --mc-keys N            key space size (10000): keys ``key:<n>``, 16-20 bytes
  --mc-value-size S      value size in bytes: ``N`` or ``MIN-MAX`` (uniform); default 100
  --mc-get-ratio R       gets among gets and sets (0.9)
  --mc-multiget P        percent of operations that are multi-gets (5), of --mc-multiget-keys keys (10)
  --mc-delete P          percent deletes (2)
  --mc-incr P            percent incr of counters ``ctr:<n>`` (2)
  --mc-zipf S            Zipf exponent of key popularity (0: uniform; 1.0: a few hot keys)
  --mc-timeout SECONDS   per operation (2.0)
"""

from __future__ import annotations

import bisect
import itertools
import random
import time
from typing import Any, Callable

from locust import User, constant, events, task

from loadtest.mcclient import MemcacheClient, MemcacheError, check_value, make_value, parse_host

__all__ = ["MemcachedUser", "KeyChooser", "value_sizes"]


# (flag, type, default, help): also settable from the environment (MC_KEYS=...) and the web UI
OPTIONS = (
    ("--mc-keys", int, 10000, "key space size"),
    ("--mc-value-size", str, "100", "value size: N or MIN-MAX"),
    ("--mc-get-ratio", float, 0.9, "gets among gets and sets"),
    ("--mc-multiget", float, 5.0, "percent multi-gets"),
    ("--mc-multiget-keys", int, 10, "keys per multi-get"),
    ("--mc-delete", float, 2.0, "percent deletes"),
    ("--mc-incr", float, 2.0, "percent incr"),
    ("--mc-zipf", float, 0.0, "Zipf exponent of key popularity (0 = uniform)"),
    ("--mc-timeout", float, 2.0, "seconds per operation"),
)


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    for flag, kind, default, help_text in OPTIONS:
        parser.add_argument(flag, type=kind, default=default, env_var=flag[2:].upper().replace("-", "_"),
                            include_in_web_ui=True, help=help_text)


def value_sizes(spec: str) -> Callable[[random.Random], int]:
    """``N`` or ``MIN-MAX`` as a function drawing a size."""
    low, sep, high = spec.partition("-")
    if not sep:
        size = int(spec)
        return lambda rng: size
    lo, hi = int(low), int(high)
    if lo > hi:
        raise ValueError(f"--mc-value-size {spec}: the minimum is above the maximum")
    return lambda rng: rng.randint(lo, hi)


class KeyChooser:
    """Key numbers 0..n-1: uniform, or Zipf with exponent ``s`` (rank r has weight 1/r**s; key
    numbers are the ranks shuffled once, so hot keys are spread over the shards)."""

    _cache: dict[tuple[int, float], "KeyChooser"] = {}

    def __init__(self, n: int, s: float) -> None:
        self.n = n
        self.s = s
        self._cumulative: list[float] = []
        self._keys: list[int] = []
        if s > 0:
            self._cumulative = list(itertools.accumulate(1.0 / (rank ** s) for rank in range(1, n + 1)))
            self._keys = list(range(n))
            random.Random(n).shuffle(self._keys)

    @classmethod
    def shared(cls, n: int, s: float) -> "KeyChooser":
        """One chooser per (n, s) in the process (the Zipf table is built once)."""
        key = (n, s)
        if key not in cls._cache:
            cls._cache[key] = cls(n, s)
        return cls._cache[key]

    def __call__(self, rng: random.Random) -> int:
        if self.s <= 0:
            return rng.randrange(self.n)
        point = rng.random() * self._cumulative[-1]
        return self._keys[min(bisect.bisect_left(self._cumulative, point), self.n - 1)]


class MemcachedUser(User):
    """One connection, operations back to back in the configured mix."""

    wait_time = constant(0)
    host = "127.0.0.1:11211"

    def on_start(self) -> None:
        options = self.environment.parsed_options
        address = parse_host(self.host or "127.0.0.1:11211")
        self.client = MemcacheClient(*address, timeout=getattr(options, "mc_timeout", 2.0))
        self.rng = random.Random()
        self.keys = KeyChooser.shared(getattr(options, "mc_keys", 10000), getattr(options, "mc_zipf", 0.0))
        self.value_size = value_sizes(getattr(options, "mc_value_size", "100"))
        self.multiget_keys = getattr(options, "mc_multiget_keys", 10)
        multiget = getattr(options, "mc_multiget", 5.0)
        delete = getattr(options, "mc_delete", 2.0)
        incr = getattr(options, "mc_incr", 2.0)
        rest = max(0.0, 100.0 - multiget - delete - incr)
        get_ratio = getattr(options, "mc_get_ratio", 0.9)
        self.operations = [self.get, self.set, self.multiget, self.delete, self.incr]
        self.weights = list(itertools.accumulate([rest * get_ratio, rest * (1 - get_ratio), multiget, delete, incr]))

    def on_stop(self) -> None:
        self.client.close()

    @task
    def one_operation(self) -> None:
        pick = self.rng.random() * self.weights[-1]
        self.operations[bisect.bisect_right(self.weights, pick)]()

    def _key(self) -> bytes:
        return b"key:%d" % self.keys(self.rng)

    def _report(self, name: str, run: Callable[[], int]) -> None:
        start = time.perf_counter()
        size, error = 0, None
        try:
            size = run()
        except Exception as exc:  # noqa: BLE001 - every failure is reported to locust
            error = exc
        self.environment.events.request.fire(
            request_type="memcached", name=name, response_time=(time.perf_counter() - start) * 1000,
            response_length=size, exception=error, context={},
        )

    # ----- the operations (each returns the bytes it moved) ---------------------------------

    def get(self) -> None:
        def run() -> int:
            key = self._key()
            value = self.client.get(key)
            if value is None:
                return 0
            check_value(key, value)
            return len(value)

        self._report("get", run)

    def set(self) -> None:
        def run() -> int:
            key = self._key()
            # the whole value is the configured size (when it has room for the key and the CRC)
            length = max(1, self.value_size(self.rng) - len(key) - 10)
            value = make_value(key, self.rng.randbytes((length + 1) // 2).hex().encode()[:length])
            self.client.set(key, value)
            return len(value)

        self._report("set", run)

    def multiget(self) -> None:
        def run() -> int:
            keys = list({self._key() for _ in range(self.multiget_keys)})
            found = self.client.get_multi(keys)
            for key, value in found.items():
                check_value(key, value)
            return sum(len(v) for v in found.values())

        self._report("multiget", run)

    def delete(self) -> None:
        self._report("delete", lambda: int(self.client.delete(self._key())))

    def incr(self) -> None:
        def run() -> int:
            key = b"ctr:%d" % (self.keys(self.rng) % 100)
            if self.client.incr(key) is None:  # a new (or evicted) counter starts at 0
                self.client.set(key, b"0")
                if self.client.incr(key) is None:
                    raise MemcacheError(f"{key.decode()} is missing right after it was set")
            return 8

        self._report("incr", run)
