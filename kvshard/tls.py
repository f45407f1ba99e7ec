"""TLS as memcached offers it: ``-Z`` (``--enable-ssl``) makes every TCP connection TLS, with
``-o ssl_chain_cert=PATH,ssl_key=PATH`` (and optionally ``ssl_ca_cert=PATH`` and
``ssl_verify_mode=N``: 0 none, 1 request a client certificate, 2 require one, 3 require one
once; ``ssl_min_version=N``: 0 TLS 1.0 ... 3 TLS 1.3, default 2; ``ssl_ciphers=LIST``: OpenSSL's
cipher list; as in memcached). UDP stays plain, as memcached's. The context is built in the CLI first
(so a bad certificate or key is one clear error before any shard starts) and again in each
shard from the same settings."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

__all__ = ["TlsSettings", "server_context", "VERIFY_MODES", "MIN_VERSIONS"]

VERIFY_MODES = {0: ssl.CERT_NONE, 1: ssl.CERT_OPTIONAL, 2: ssl.CERT_REQUIRED, 3: ssl.CERT_REQUIRED}
MIN_VERSIONS = {0: ssl.TLSVersion.TLSv1, 1: ssl.TLSVersion.TLSv1_1, 2: ssl.TLSVersion.TLSv1_2, 3: ssl.TLSVersion.TLSv1_3}


@dataclass(frozen=True)
class TlsSettings:
    chain_cert: str
    key: str
    ca_cert: str = ""
    verify_mode: int = 0
    min_version: int = 2
    ciphers: str = ""


def server_context(settings: TlsSettings) -> ssl.SSLContext:
    """The server's context; raises ssl.SSLError or OSError when a file is wrong."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MIN_VERSIONS[settings.min_version]
    if settings.ciphers:
        context.set_ciphers(settings.ciphers)
    context.load_cert_chain(settings.chain_cert, settings.key)
    if settings.ca_cert:
        context.load_verify_locations(settings.ca_cert)
    context.verify_mode = VERIFY_MODES[settings.verify_mode]
    return context
