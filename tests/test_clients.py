"""Real memcached clients against the server: pymemcache, pylibmc (ASCII) and aiomcache.

Every scenario runs for each client against each server kind (``server`` fixture), through a
small adapter that gives the three clients one interface. The adapters pass the clients'
answers through unchanged (``cas`` is True when stored and False on an EXISTS conflict in all
three), except that NOT_FOUND becomes None where a client raises for it instead (pylibmc's
``cas`` and ``incr``, aiomcache's ``incr``).

Keys are unique per test (prefix + random token): the server is shared by the module.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Callable, Iterator, Protocol

import pytest

from tests.servers import Server

__all__ = ["CLIENTS", "KV", "PymemcacheKV", "PylibmcKV", "AiomcacheKV"]

CLIENTS = ["pymemcache", "pylibmc", "aiomcache"]
MULTI_GET_KEYS = 50  # with 2 shards, all on one shard would have probability 2**-49
TIMEOUT_S = 5.0


class KV(Protocol):
    """What the scenarios need of a client; keys are str, values bytes."""

    def set(self, key: str, value: bytes) -> bool: ...
    def get(self, key: str) -> bytes | None: ...
    def gets(self, key: str) -> tuple[bytes | None, Any]: ...
    def cas(self, key: str, value: bytes, token: Any) -> bool | None: ...
    def incr(self, key: str, by: int) -> int | None: ...
    def delete(self, key: str) -> bool: ...
    def get_many(self, keys: list[str]) -> dict[str, bytes]: ...
    def close(self) -> None: ...


class PymemcacheKV:
    """pymemcache's sync ``Client``; noreply=False everywhere so every reply is checked."""

    def __init__(self, server: Server) -> None:
        from pymemcache.client.base import Client

        self.c = Client(server.address, connect_timeout=TIMEOUT_S, timeout=TIMEOUT_S)

    def set(self, key: str, value: bytes) -> bool:
        return bool(self.c.set(key, value, noreply=False))

    def get(self, key: str) -> bytes | None:
        return self.c.get(key)

    def gets(self, key: str) -> tuple[bytes | None, Any]:
        return self.c.gets(key)

    def cas(self, key: str, value: bytes, token: Any) -> bool | None:
        return self.c.cas(key, value, token, noreply=False)  # True, False (EXISTS), None (NOT_FOUND)

    def incr(self, key: str, by: int) -> int | None:
        return self.c.incr(key, by, noreply=False)

    def delete(self, key: str) -> bool:
        return bool(self.c.delete(key, noreply=False))

    def get_many(self, keys: list[str]) -> dict[str, bytes]:
        return self.c.get_many(keys)

    def close(self) -> None:
        self.c.close()


class PylibmcKV:
    """pylibmc (libmemcached) in ASCII mode (``binary=False``) with CAS enabled."""

    def __init__(self, server: Server) -> None:
        import pylibmc

        self.mod = pylibmc
        ms = int(TIMEOUT_S * 1000)
        self.c = pylibmc.Client(
            [f"{server.host}:{server.port}"], binary=False,
            behaviors={"cas": True, "connect_timeout": ms, "send_timeout": ms * 1000, "receive_timeout": ms * 1000},
        )

    def set(self, key: str, value: bytes) -> bool:
        return bool(self.c.set(key, value))

    def get(self, key: str) -> bytes | None:
        return self.c.get(key)

    def gets(self, key: str) -> tuple[bytes | None, Any]:
        return self.c.gets(key)

    def cas(self, key: str, value: bytes, token: Any) -> bool | None:
        try:
            return self.c.cas(key, value, token)  # True, or False on EXISTS
        except self.mod.NotFound:
            return None

    def incr(self, key: str, by: int) -> int | None:
        try:
            return self.c.incr(key, by)
        except self.mod.NotFound:
            return None

    def delete(self, key: str) -> bool:
        return bool(self.c.delete(key))

    def get_many(self, keys: list[str]) -> dict[str, bytes]:
        return self.c.get_multi(keys)

    def close(self) -> None:
        self.c.disconnect_all()


class AiomcacheKV:
    """aiomcache (asyncio) driven on a private event loop, one coroutine per call."""

    def __init__(self, server: Server) -> None:
        import aiomcache

        self.mod = aiomcache
        self.loop = asyncio.new_event_loop()
        self.c = aiomcache.Client(server.host, server.port, pool_size=4)

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, TIMEOUT_S))

    def set(self, key: str, value: bytes) -> bool:
        return self.run(self.c.set(key.encode(), value))

    def get(self, key: str) -> bytes | None:
        return self.run(self.c.get(key.encode()))

    def gets(self, key: str) -> tuple[bytes | None, Any]:
        return self.run(self.c.gets(key.encode()))

    def cas(self, key: str, value: bytes, token: Any) -> bool | None:
        return self.run(self.c.cas(key.encode(), value, token))

    def incr(self, key: str, by: int) -> int | None:
        try:
            return self.run(self.c.incr(key.encode(), by))
        except self.mod.ClientException as exc:  # aiomcache 0.8 raises on NOT_FOUND
            if "NOT_FOUND" in str(exc):
                return None
            raise

    def delete(self, key: str) -> bool:
        return self.run(self.c.delete(key.encode()))

    def get_many(self, keys: list[str]) -> dict[str, bytes]:
        values = self.run(self.c.multi_get(*(k.encode() for k in keys)))
        return {k: v for k, v in zip(keys, values, strict=True) if v is not None}

    def close(self) -> None:
        try:
            self.run(self.c.close())
        finally:
            self.loop.close()


ADAPTERS: dict[str, Callable[[Server], KV]] = {"pymemcache": PymemcacheKV, "pylibmc": PylibmcKV, "aiomcache": AiomcacheKV}


@pytest.fixture(params=CLIENTS)
def kv(request: pytest.FixtureRequest, server: Server) -> Iterator[KV]:
    client = ADAPTERS[request.param](server)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix unique to this test (the server is shared by the whole module)."""
    return f"t:{request.node.originalname}:{uuid.uuid4().hex[:10]}"


def test_set_get(kv: KV, prefix: str) -> None:
    key = f"{prefix}:k"
    assert kv.get(key) is None
    assert kv.set(key, b"hello") is True
    assert kv.get(key) == b"hello"
    assert kv.set(key, b"") is True  # empty values are values
    assert kv.get(key) == b""
    big = bytes(range(256)) * 400  # 100 KiB of every byte value, \r\n included
    assert kv.set(key, big) is True
    assert kv.get(key) == big


def test_gets_and_cas(kv: KV, prefix: str) -> None:
    key = f"{prefix}:k"
    assert kv.set(key, b"v1") is True
    value, token = kv.gets(key)
    assert value == b"v1" and token is not None

    assert kv.cas(key, b"v2", token) is True
    assert kv.get(key) == b"v2"
    value, token2 = kv.gets(key)
    assert value == b"v2" and token2 != token, "a successful cas must change the cas unique"

    # EXISTS: another writer changed the item after our gets; our stale cas must not store
    assert kv.set(key, b"theirs") is True
    assert kv.cas(key, b"mine", token2) is False
    assert kv.get(key) == b"theirs"
    # and the old token from the first gets is stale too
    assert kv.cas(key, b"mine", token) is False
    # a fresh gets makes it work again
    value, token3 = kv.gets(key)
    assert value == b"theirs"
    assert kv.cas(key, b"mine", token3) is True
    assert kv.get(key) == b"mine"


def test_cas_on_missing_key_does_not_store(kv: KV, prefix: str) -> None:
    key = f"{prefix}:k"
    assert kv.set(key, b"v") is True
    _, token = kv.gets(key)
    assert kv.delete(key) is True
    assert not kv.cas(key, b"v2", token)  # NOT_FOUND: pymemcache says None, the others False
    assert kv.get(key) is None


def test_incr(kv: KV, prefix: str) -> None:
    key = f"{prefix}:n"
    assert kv.set(key, b"10") is True
    assert kv.incr(key, 5) == 15
    assert kv.incr(key, 1) == 16
    assert kv.get(key) == b"16"
    assert kv.set(key, b"18446744073709551615") is True  # 2**64 - 1 wraps to 0
    assert kv.incr(key, 1) == 0
    assert kv.incr(f"{prefix}:missing", 1) is None


def test_delete(kv: KV, prefix: str) -> None:
    key = f"{prefix}:k"
    assert kv.set(key, b"v") is True
    assert kv.delete(key) is True
    assert kv.get(key) is None
    assert kv.delete(key) is False


def test_multi_get_hits_and_misses(kv: KV, prefix: str) -> None:
    keys = [f"{prefix}:{i}" for i in range(MULTI_GET_KEYS)]
    stored = {k: f"value-{i}".encode() * (1 + i % 7) for i, k in enumerate(keys) if i % 3 != 0}
    for k, v in stored.items():
        assert kv.set(k, v) is True
    got = kv.get_many(keys)
    assert got == stored
    assert len(stored) == 33 and len(keys) - len(stored) == 17
    # the same keys in another order: the replies are matched by key, not position
    assert kv.get_many(list(reversed(keys))) == stored


def test_aiomcache_concurrent_requests(server: Server, prefix: str) -> None:
    """Many coroutines at once over aiomcache's pool: replies must reach the right requester."""
    import aiomcache

    concurrency = 64

    async def scenario() -> None:
        client = aiomcache.Client(server.host, server.port, pool_size=8)
        try:
            async def one(i: int) -> None:
                key = f"{prefix}:{i}".encode()
                value = f"v{i}".encode() * (i % 50 + 1)
                assert await client.set(key, value)
                assert await client.get(key) == value
                assert await client.incr(f"{prefix}:counter".encode(), 1) is not None

            assert await client.set(f"{prefix}:counter".encode(), b"0")
            await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(concurrency))), 20)
            assert await client.get(f"{prefix}:counter".encode()) == str(concurrency).encode()
            keys = [f"{prefix}:{i}".encode() for i in range(concurrency)]
            values = await client.multi_get(*keys)
            assert values == tuple(f"v{i}".encode() * (i % 50 + 1) for i in range(concurrency))
        finally:
            await client.close()

    asyncio.run(scenario())
