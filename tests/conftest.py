"""Shared fixtures: ``server`` runs a test against kvshard and, where installed, memcached."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.servers import Server, server_kinds, start_server


@pytest.fixture(scope="module", params=server_kinds())
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with start_server(request.param) as srv:
        yield srv
