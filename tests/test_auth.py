"""Logging in with real clients: SASL PLAIN with python-binary-memcached (-S), memcached's ASCII
authentication with pymemcache (-Y: the login is a plain ``set``), requests for keys on every
shard once in; and the CLI's one-line errors for bad login settings. The replies byte for byte
against memcached are in tests/conformance/test_auth.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import bmemcached
import pytest
from bmemcached.exceptions import MemcachedException
from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheClientError

from tests.servers import answers_binary_version, answers_unauthenticated, start_server

USERS = b"bob:hunter2\nalice:pass:with:colons\n"


@pytest.fixture
def users(tmp_path: Path) -> str:
    path = tmp_path / "users"
    path.write_bytes(USERS)
    return str(path)


def _exercise(set_value, get_many) -> None:  # type: ignore[no-untyped-def]
    values = {f"auth:{i}": f"value {i}" for i in range(100)}  # keys on both shards
    for key, value in values.items():
        assert set_value(key, value)
    assert get_many(list(values)) == values


@pytest.mark.parametrize("from_environment", [False, True])
def test_sasl_plain_with_a_real_client(users: str, from_environment: bool) -> None:
    flags, env = (("-S",), {"MEMCACHED_SASL_PWDB": users}) if from_environment else (("-S", "--sasl-pwdb", users), None)
    with start_server("kvshard", *flags, ready=answers_binary_version, env=env) as server:
        address = f"{server.host}:{server.port}"
        client = bmemcached.Client((address,), "alice", "pass:with:colons")
        _exercise(client.set, lambda keys: {k: v for k, v in client.get_multi(keys).items()})
        client.disconnect_all()
        for credentials in (("bob", "nope"), ("carol", "hunter2"), ()):
            with pytest.raises(MemcachedException, match="Auth failure"):
                bmemcached.Client((address,), *credentials).set("auth:x", "y")
        stats = bmemcached.Client((address,), "bob", "hunter2").stats()[address]
        assert int(stats["auth_errors"]) >= 2 and int(stats["auth_cmds"]) >= 4


def test_ascii_login_with_a_real_client(users: str) -> None:
    with start_server("kvshard", "-Y", users, ready=answers_unauthenticated) as server:
        client = Client(server.address, connect_timeout=5, timeout=5)
        with pytest.raises(MemcacheClientError, match="unauthenticated"):
            client.get("auth:0")
        with pytest.raises(MemcacheClientError, match="authentication failure"):
            client.set("login", b"bob nope", noreply=False)
        assert client.set("login", b"bob hunter2", noreply=False)  # memcached's login: a set
        assert client.get("login") is None  # that stores nothing
        _exercise(lambda k, v: client.set(k, v.encode(), noreply=False),
                  lambda keys: {k: v.decode() for k, v in client.get_many(keys).items()})
        client.close()
        stranger = Client(server.address, connect_timeout=5, timeout=5)
        with pytest.raises(MemcacheClientError, match="unauthenticated"):
            stranger.get("auth:0")  # logins are per connection
        stranger.close()


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kvshard.cli", "--metrics-port", "0", "-p", "1", *args],
                          capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize(("content", "flags", "message"), [
    (None, ("-S",), "-S needs a password file: --sasl-pwdb FILE or MEMCACHED_SASL_PWDB=FILE"),
    (None, ("-Y", "/nonexistent/users"), "-Y: cannot read /nonexistent/users: No such file or directory"),
    (b"bob:x\nnocolon\n", ("-Y", "{file}"), "-Y: {file} line 2: not 'user:password'"),
    (b":x\n", ("-S", "--sasl-pwdb", "{file}"), "-S: {file} line 1: not 'user:password'"),
    (b"\n\n", ("-Y", "{file}"), "-Y: {file} has no 'user:password' line: nobody could log in"),
    (b"bob:two words\n", ("-Y", "{file}"), "-Y: {file} line 1: a space or NUL cannot be sent in an ASCII login"),
    (b"bob:x\ncarol:\n", ("-Y", "{file}"), "-Y: {file} line 2: an empty password cannot be sent in an ASCII login"),
    (b"bob:x\n", ("-Y", "{file}", "-S"), "-S and -Y: one login method at a time (SASL is binary only, -Y ASCII only)"),
    (b"bob:x\n", ("-Y", "{file}", "-U", "11211"), "-Y: memcached's UDP has no login; leave -U off"),
    (b"bob:x\n", ("--sasl-pwdb", "{file}"), "--sasl-pwdb needs -S (--enable-sasl)"),
])
def test_bad_login_settings_are_one_line_errors(tmp_path: Path, content: bytes | None, flags: tuple[str, ...], message: str) -> None:
    path = tmp_path / "users"
    if content is not None:
        path.write_bytes(content)
    result = _cli(*(f.replace("{file}", str(path)) for f in flags), env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 64
    assert result.stderr == f"kvshard: {message.replace('{file}', str(path))}\n"


def test_space_in_a_sasl_password_is_fine(tmp_path: Path) -> None:
    """Spaces cannot be sent in an ASCII login, but SASL PLAIN carries them."""
    path = tmp_path / "users"
    path.write_bytes(b"bob:two words\n")
    with start_server("kvshard", "-S", "--sasl-pwdb", str(path), ready=answers_binary_version) as server:
        client = bmemcached.Client((f"{server.host}:{server.port}",), "bob", "two words")
        assert client.set("k", "v") and client.get("k") == "v"
        client.disconnect_all()
