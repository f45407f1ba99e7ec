"""The meta-memcache client (PyPI ``meta-memcache``), which speaks only the meta commands,
against kvshard and (where installed) memcached: set, get, delete, touch, CAS, stale-while-
revalidate, recache, leases, counters, multi-get, long and binary keys.

Keys are unique per test (a random prefix): the server is shared by the module.
"""

from __future__ import annotations

import re
import socket
import uuid
from typing import Iterator

import pytest

from tests.servers import Server

meta_memcache = pytest.importorskip("meta_memcache", reason="meta-memcache is a test dependency")
from meta_memcache import (  # noqa: E402
    CacheClient,
    Key,
    LeasePolicy,
    RecachePolicy,
    ServerAddress,
    StalePolicy,
    connection_pool_factory_builder,
)


@pytest.fixture
def client(server: Server) -> Iterator[object]:
    yield CacheClient.cache_client_from_servers(
        servers=[ServerAddress(server.host, server.port)],
        connection_pool_factory_fn=connection_pool_factory_builder(connection_timeout=5, recv_timeout=5),
    )


@pytest.fixture
def key() -> Iterator[object]:
    prefix = uuid.uuid4().hex[:12]
    yield lambda name: f"{prefix}-{name}"


def raw_line(server: Server, request: bytes) -> bytes:
    with socket.create_connection(server.address, timeout=5) as s:
        s.sendall(request)
        out = b""
        while not out.endswith(b"\r\n"):
            chunk = s.recv(4096)
            assert chunk, out
            out += chunk
        return out


def test_set_get_delete(client, key) -> None:  # type: ignore[no-untyped-def]
    k = key("a")
    assert client.get(k) is None
    assert client.set(k, b"hello", ttl=60) is True
    assert client.get(k) == b"hello"
    assert client.set(k, "unicode ü", ttl=60) is True
    assert client.get(k) == "unicode ü"
    assert client.set(k, {"x": [1, 2]}, ttl=60) is True  # serialised, client flags say how
    assert client.get(k) == {"x": [1, 2]}
    assert client.delete(k) is True
    assert client.delete(k) is False
    assert client.get(k) is None
    assert client.invalidate(k) is True


def test_touch(client, key, server: Server) -> None:  # type: ignore[no-untyped-def]
    k = key("t")
    assert client.set(k, b"v", ttl=100) is True
    assert client.touch(k, ttl=500) is True
    assert client.touch(key("missing"), ttl=5) is False
    ttl = int(re.fullmatch(rb"HD t(\d+)\r\n", raw_line(server, b"mg %s t\r\n" % k.encode())).group(1))  # type: ignore[union-attr]
    assert 499 <= ttl <= 500
    assert client.get(k, touch_ttl=50) == b"v"
    ttl = int(re.fullmatch(rb"HD t(\d+)\r\n", raw_line(server, b"mg %s t\r\n" % k.encode())).group(1))  # type: ignore[union-attr]
    assert 49 <= ttl <= 50


def test_cas(client, key) -> None:  # type: ignore[no-untyped-def]
    k = key("c")
    token = client.set_cas(k, b"v1", ttl=60)
    assert isinstance(token, int)
    assert client.get_cas(k) == (b"v1", token)
    assert client.set(k, b"v2", ttl=60, cas_token=token) is True
    assert client.set(k, b"v3", ttl=60, cas_token=token) is False  # token is stale now
    value, new_token = client.get_cas(k)
    assert value == b"v2" and new_token != token
    assert client.delete(k, cas_token=token) is False
    assert client.delete(k, cas_token=new_token) is True


def test_stale_while_revalidate(client, key) -> None:  # type: ignore[no-untyped-def]
    """A delete with a stale policy marks the item stale: one reader wins the right to
    recache (and sees a miss), the others keep getting the stale value until it is set."""
    k = key("s")
    policy = StalePolicy(mark_stale_on_deletion_ttl=30)
    assert client.set(k, b"old", ttl=60) is True
    assert client.delete(k, stale_policy=policy) is True
    assert client.get(k) is None  # the winner
    assert client.get(k) == b"old"  # everyone else: stale data
    assert client.get(k) == b"old"
    assert client.set(k, b"new", ttl=60) is True
    assert client.get(k) == b"new"


def test_stale_on_cas_mismatch(client, key) -> None:  # type: ignore[no-untyped-def]
    """With mark_stale_on_cas_mismatch, a write with an older CAS is kept, as stale."""
    k = key("m")
    policy = StalePolicy(mark_stale_on_cas_mismatch=True)
    token = client.set_cas(k, b"v1", ttl=60)
    assert client.set(k, b"v2", ttl=60) is True  # someone else wrote
    assert client.set(k, b"v-late", ttl=60, cas_token=token, stale_policy=policy) is True
    assert client.get(k) is None  # stale: this reader wins the recache
    assert client.get(k) == b"v-late"


def test_recache(client, key) -> None:  # type: ignore[no-untyped-def]
    """When the TTL left is under the recache policy's, one reader wins (a miss)."""
    k = key("r")
    assert client.set(k, b"val", ttl=20) is True
    assert client.get(k, recache_policy=RecachePolicy(ttl=10)) == b"val"  # 20 s left: fine
    assert client.get(k, recache_policy=RecachePolicy(ttl=30)) is None  # winner
    assert client.get(k, recache_policy=RecachePolicy(ttl=30)) == b"val"


def test_lease(client, key) -> None:  # type: ignore[no-untyped-def]
    """get_or_lease: the first caller wins the lease (a miss), a later one waits for the value
    and gets a miss when it does not come; once set, everyone reads it."""
    k = key("l")
    policy = LeasePolicy(ttl=30, miss_retries=2, miss_retry_wait=0.01, wait_backoff_factor=1, miss_max_retry_wait=0.01)
    assert client.get_or_lease(k, lease_policy=policy) is None
    assert client.get_or_lease(k, lease_policy=policy) is None
    assert client.set(k, b"filled", ttl=60) is True
    assert client.get_or_lease(k, lease_policy=policy) == b"filled"


def test_counters(client, key) -> None:  # type: ignore[no-untyped-def]
    k = key("n")
    assert client.delta(k, 1) is False
    assert client.delta_initialize_and_get(k, 5, initial_value=10, initial_ttl=60) == 10
    assert client.delta_and_get(k, 3) == 13
    assert client.delta(k, -2) is True
    assert client.get(k) == "11"  # a counter has no client flags: read back as text
    assert client.delta_initialize(k, 1, initial_value=0, initial_ttl=60) is True
    assert client.delta_and_get(k, -100) == 0


def test_multi_get_spans_shards(client, key) -> None:  # type: ignore[no-untyped-def]
    names = [key(f"mg{i}") for i in range(40)]
    for i, name in enumerate(names[::2]):
        assert client.set(name, b"%d" % i, ttl=60) is True
    got = client.multi_get(names)
    assert {k.key: v for k, v in got.items()} == {
        name: (b"%d" % (i // 2) if i % 2 == 0 else None) for i, name in enumerate(names)
    }


def test_long_and_binary_keys(client, key) -> None:  # type: ignore[no-untyped-def]
    """Keys over 250 bytes or with spaces and NULs travel base64-encoded (the b flag)."""
    long_key = key("k" * 300)
    assert client.set(long_key, b"long", ttl=60) is True
    assert client.get(long_key) == b"long"
    binary = Key(key("bin\x00 key"))
    assert client.set(binary, b"bin", ttl=60) is True
    assert client.get(binary) == b"bin"
    assert client.delete(binary) is True
    assert client.get(binary) is None
