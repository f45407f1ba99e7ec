"""``python -m kvshard.health`` against a real kvshard: healthy when it speaks to the server as
the server wants (in the clear, -Z TLS with the server's certificates, -Y ASCII login, -S SASL
over binary, from the command line or $KVSHARD_HEALTH_ARGS), unhealthy (exit 1, one line) when
it does not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import Server, answers_binary_version, answers_unauthenticated, start_server
from tests.test_tls import _tls_ready, cert  # noqa: F401  (cert: the fixture)


def health(server: Server, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kvshard.health", server.host, str(server.port), *args],
                          capture_output=True, text=True, timeout=30, env={**os.environ, **(env or {})})


def healthy(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode == 0 and result.stderr == ""


def unhealthy(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode == 1 and result.stderr.startswith("unhealthy: ") and result.stderr.count("\n") == 1


@pytest.fixture
def users(tmp_path: Path) -> str:
    path = tmp_path / "users"
    path.write_bytes(b"bob:hunter2\nalice:other\n")
    return str(path)


def test_plain_server() -> None:
    with start_server("kvshard", threads=1) as server:
        assert healthy(health(server))
        assert unhealthy(health(server, "-S", "--user", "bob", "--password", "x"))  # no SASL there: refused


def test_tls_with_the_servers_certificate(cert: tuple[str, str]) -> None:  # noqa: F811
    cert_path, key_path = cert
    with start_server("kvshard", "-Z", "-o", f"ssl_chain_cert={cert_path},ssl_key={key_path}", threads=1,
                      ready=_tls_ready(cert_path)) as server:
        assert healthy(health(server, "-Z", "--ca-cert", cert_path))
        assert unhealthy(health(server))  # in the clear
        assert unhealthy(health(server, "-Z"))  # the self-signed certificate is not trusted


def test_tls_with_a_client_certificate(cert: tuple[str, str]) -> None:  # noqa: F811
    cert_path, key_path = cert
    options = f"ssl_chain_cert={cert_path},ssl_key={key_path},ssl_ca_cert={cert_path},ssl_verify_mode=2"
    with start_server("kvshard", "-Z", "-o", options, threads=1, ready=_tls_ready(cert_path, key_path)) as server:
        assert healthy(health(server, "-Z", "--ca-cert", cert_path, "--cert", cert_path, "--key", key_path))
        assert unhealthy(health(server, "-Z", "--ca-cert", cert_path))


def test_ascii_login(users: str) -> None:
    with start_server("kvshard", "-Y", users, threads=1, ready=answers_unauthenticated) as server:
        assert healthy(health(server, "-Y", users))
        assert healthy(health(server, "-Y", users, "--user", "alice", "--password", "other"))
        assert unhealthy(health(server))  # CLIENT_ERROR unauthenticated
        assert unhealthy(health(server, "-Y", users, "--user", "bob", "--password", "wrong"))


def test_sasl_over_binary(users: str) -> None:
    with start_server("kvshard", "-S", "--sasl-pwdb", users, threads=1, ready=answers_binary_version) as server:
        assert healthy(health(server, "-S", "--sasl-pwdb", users))
        assert healthy(health(server, "-S", env={"MEMCACHED_SASL_PWDB": users}))
        assert unhealthy(health(server))  # an ASCII version: the server speaks binary only
        assert unhealthy(health(server, "-S", "--user", "bob", "--password", "wrong"))


def test_tls_and_sasl_from_the_environment(cert: tuple[str, str], users: str) -> None:  # noqa: F811
    """The container's HEALTHCHECK takes no arguments: $KVSHARD_HEALTH_ARGS carries them."""
    from kvshard.protocol import binary as b

    cert_path, key_path = cert
    version = b.HEADER.pack(b.REQUEST_MAGIC, b.OP_VERSION, 0, 0, 0, 0, 0, 0, 0)
    ready = _tls_ready(cert_path, request=version, answer=bytes((b.RESPONSE_MAGIC, b.OP_VERSION)))
    with start_server("kvshard", "-Z", "-o", f"ssl_chain_cert={cert_path},ssl_key={key_path}", "-S", "--sasl-pwdb", users,
                      threads=1, ready=ready) as server:
        env = {"KVSHARD_HEALTH_ARGS": f"-Z --ca-cert {cert_path} -S --sasl-pwdb {users}"}
        assert healthy(health(server, env=env))
        assert unhealthy(health(server, "--user", "bob", "--password", "wrong", env=env))


def test_bad_options_are_a_usage_error() -> None:
    r = subprocess.run([sys.executable, "-m", "kvshard.health", "--no-such-option"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 64 and r.stderr.startswith("kvshard.health: ") and r.stderr.count("\n") == 1
