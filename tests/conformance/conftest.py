"""Fixtures for the ASCII conformance suite.

The ``server`` fixture (tests/conftest.py) is shared by every test of a module, so each test
names its keys with :class:`Keys` (module, test name and parameters, a counter): no test sees
another's keys, in any order. Only ``flush_all`` touches everything, so those tests live in their
own module and therefore get their own server. A module whose servers need flags says
``server = server_with("-C")``; ``conn``, ``connect`` and ``bw`` then connect to those.
"""

from __future__ import annotations

import itertools
import re
from typing import Any, Callable, Iterator

import pytest

from tests.servers import Server, answers_version, server_kinds, start_server

from .binwire import BinWire
from .wire import Wire


class Keys:
    """Unique keys for one test: ``keys()`` -> ``b"<module>.<test>.<n>"``."""

    def __init__(self, prefix: str) -> None:
        # Keys are printable ASCII without spaces or control characters.
        self.prefix = re.sub(r"[^A-Za-z0-9_.:\[\]-]", "_", prefix)[:180].encode()
        self._counter = itertools.count(1)

    def __call__(self) -> bytes:
        return b"%s.%d" % (self.prefix, next(self._counter))

    def sized(self, length: int) -> bytes:
        """A unique key of exactly ``length`` bytes (padded with ``x``)."""
        key = self()
        assert len(key) <= length, "prefix too long for this key length"
        return key + b"x" * (length - len(key))


@pytest.fixture
def keys(request: pytest.FixtureRequest) -> Keys:
    module = request.node.module.__name__.rsplit(".", 1)[-1].removeprefix("test_ascii_")
    return Keys(f"{module}.{request.node.name}")


@pytest.fixture
def connect(server: Server) -> Iterator[Callable[[], Wire]]:
    """Open extra connections to the server; all are closed after the test."""
    opened: list[Wire] = []

    def open_one() -> Wire:
        wire = Wire.connect(server.address)
        opened.append(wire)
        return wire

    yield open_one
    for wire in opened:
        wire.close()


@pytest.fixture
def conn(connect: Callable[[], Wire]) -> Wire:
    """A fresh connection to the module's server."""
    return connect()


@pytest.fixture
def bw(server: Server) -> Iterator[BinWire]:
    """A fresh binary-protocol connection to the module's server."""
    wire = BinWire(server.address)
    yield wire
    wire.close()


def server_with(*flags: str, ready: Callable[[Server], bool] = answers_version) -> Any:
    """A ``server`` fixture for a module: each kind started with ``flags``, once per module
    (``ready``: how to tell it serves, for servers that do not answer an ASCII ``version``)."""

    @pytest.fixture(scope="module", params=server_kinds())
    def server(request: pytest.FixtureRequest) -> Iterator[Server]:
        with start_server(request.param, *flags, ready=ready) as started:
            yield started

    return server
