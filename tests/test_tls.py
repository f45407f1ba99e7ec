"""TLS as memcached offers it (-Z with -o ssl_chain_cert=,ssl_key=[,ssl_ca_cert=,ssl_verify_mode=]):
a TLS client (pymemcache) is served, a plain one is not, client certificates are required when
asked, and bad settings are one-line usage errors."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheClientError, MemcacheUnexpectedCloseError

from tests.servers import Server, free_port, require_tool, server_kinds, start_server


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA), and its key."""
    openssl = require_tool("openssl")
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key_path), "-out", str(cert_path),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return str(cert_path), str(key_path)


def _client_context(cert_path: str, key_path: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cert_path)
    if key_path:
        context.load_cert_chain(cert_path, key_path)
    return context


def _tls_ready(
    cert_path: str, key_path: str | None = None, request: bytes = b"version\r\n", answer: bytes = b"VERSION ",
) -> Callable[[Server], bool]:
    """A readiness check over TLS: the server's answer to ``request`` starts with ``answer``."""
    def ready(server: Server) -> bool:
        with socket.create_connection(server.address, timeout=1) as raw:
            with _client_context(cert_path, key_path).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(request)
                return tls.recv(100).startswith(answer)
    return ready


def _plain_version(address: tuple[str, int]) -> bytes:
    """What a client in the clear gets for ``version`` (b"" if the server hangs up)."""
    with socket.create_connection(address, timeout=5) as plain:
        plain.sendall(b"version\r\n")
        try:
            return plain.recv(100)
        except ConnectionResetError:
            return b""


def test_tls_client_served_plain_client_not(cert: tuple[str, str]) -> None:
    cert_path, key_path = cert
    with start_server("kvshard", "-Z", "-o", f"ssl_chain_cert={cert_path},ssl_key={key_path}",
                      ready=_tls_ready(cert_path)) as server:
        client = Client(server.address, tls_context=_client_context(cert_path), connect_timeout=5, timeout=5)
        values = {f"tls:{i}": bytes([i]) * (i * 1000 + 1) for i in range(20)}
        assert client.set_many(values, noreply=False) == []
        assert client.get_many(list(values)) == values
        assert client.incr("tls:n", 1) is None and client.set("tls:n", b"5", noreply=False) and client.incr("tls:n", 2) == 7
        client.close()
        assert not _plain_version(server.address).startswith(b"VERSION")


def test_client_certificate_required_when_asked(cert: tuple[str, str]) -> None:
    cert_path, key_path = cert
    options = f"ssl_chain_cert={cert_path},ssl_key={key_path},ssl_ca_cert={cert_path},ssl_verify_mode=2"
    with start_server("kvshard", "-Z", "-o", options, ready=_tls_ready(cert_path, key_path)) as server:
        with_cert = Client(server.address, tls_context=_client_context(cert_path, key_path), connect_timeout=5, timeout=5)
        assert with_cert.set("k", b"v", noreply=False) and with_cert.get("k") == b"v"
        with_cert.close()
        without = Client(server.address, tls_context=_client_context(cert_path), connect_timeout=5, timeout=5)
        with pytest.raises((ssl.SSLError, OSError, MemcacheUnexpectedCloseError)):
            without.get("k")  # refused: the handshake fails, or (TLS 1.3) the server closes at once
        without.close()


def test_login_over_tls(cert: tuple[str, str], tmp_path: Path) -> None:
    """-Z with -Y: the ASCII login runs inside TLS like any other command."""
    cert_path, key_path = cert
    users = tmp_path / "users"
    users.write_bytes(b"bob:hunter2\n")
    locked = _tls_ready(cert_path, answer=b"CLIENT_ERROR unauthenticated\r\n")
    with start_server("kvshard", "-Z", "-o", f"ssl_chain_cert={cert_path},ssl_key={key_path}", "-Y", str(users),
                      ready=locked) as server:
        client = Client(server.address, tls_context=_client_context(cert_path), connect_timeout=5, timeout=5)
        with pytest.raises(MemcacheClientError, match="unauthenticated"):
            client.get("k")
        assert client.set("login", b"bob hunter2", noreply=False)
        assert client.set("k", b"v", noreply=False) and client.get("k") == b"v"
        client.close()


def test_sasl_over_tls(cert: tuple[str, str], tmp_path: Path) -> None:
    """-Z with -S: SASL PLAIN inside TLS, with python-binary-memcached's TLS client."""
    import bmemcached
    from bmemcached.exceptions import MemcachedException

    from kvshard.protocol import binary as b

    cert_path, key_path = cert
    users = tmp_path / "users"
    users.write_bytes(b"bob:hunter2\n")
    version = b.HEADER.pack(b.REQUEST_MAGIC, b.OP_VERSION, 0, 0, 0, 0, 0, 0, 0)
    answers = _tls_ready(cert_path, request=version, answer=bytes((b.RESPONSE_MAGIC, b.OP_VERSION)))
    with start_server("kvshard", "-Z", "-o", f"ssl_chain_cert={cert_path},ssl_key={key_path}",
                      "-S", "--sasl-pwdb", str(users), ready=answers) as server:
        address = f"{server.host}:{server.port}"
        client = bmemcached.Client((address,), "bob", "hunter2", tls_context=_client_context(cert_path))
        assert client.set("k", "v") and client.get("k") == "v"
        client.disconnect_all()
        with pytest.raises(MemcachedException, match="Auth failure"):
            bmemcached.Client((address,), "bob", "nope", tls_context=_client_context(cert_path)).get("k")


@pytest.mark.parametrize("kind", server_kinds())
def test_a_notls_listener_is_plain_tcp(cert: tuple[str, str], kind: str) -> None:
    """-Z with -l notls:ADDR:PORT: that listener serves plain TCP, the others TLS only, as in
    memcached 1.6.18 (run against both)."""
    cert_path, key_path = cert
    plain_port = free_port()
    with start_server(kind, "-Z", "-o", f"ssl_chain_cert={cert_path},ssl_key={key_path}",
                      "-l", f"notls:127.0.0.1:{plain_port}", ready=_tls_ready(cert_path)) as server:
        assert _plain_version(("127.0.0.1", plain_port)).startswith(b"VERSION ")
        assert _tls_ready(cert_path)(server)
        assert not _plain_version(server.address).startswith(b"VERSION")


@pytest.mark.parametrize(("flags", "message"), [
    (["-Z"], "-Z needs -o ssl_chain_cert=PATH,ssl_key=PATH"),
    (["-Z", "-o", "ssl_chain_cert=/nonexistent.pem,ssl_key=/nonexistent.key"], "-Z: cannot use the certificate or key"),
    (["-o", "ssl_key=/x.pem"], "TLS options need -Z"),
    (["-Z", "-U", "11211", "-o", "ssl_chain_cert=/a,ssl_key=/b"], "memcached's UDP has no TLS"),
    (["-o", "ssl_verify_mode=x"], "is not a number"),
])
def test_bad_tls_settings(flags: list[str], message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "kvshard.cli", *flags], capture_output=True, text=True, timeout=30)
    assert result.returncode == 64 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr
