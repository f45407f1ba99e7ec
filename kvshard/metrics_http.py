"""The HTTP endpoint operators scrape: ``GET /metrics`` and ``GET /health``.

Theory of operation
-------------------
Shard 0 listens on ``--metrics-listen``:``--metrics-port`` (default 9150, memcached_exporter's
port; 0 turns it off). It is a small HTTP/1.1 server on the shard's own event loop, one request
per connection (answered with ``Connection: close``), so a scrape costs the shards nothing
between scrapes: every counter is a plain attribute only its shard touches, read when asked.

    /metrics  asks every shard for its report over the channels (:mod:`kvshard.exporter`);
              a shard that does not answer within :data:`SCRAPE_TIMEOUT` shows
              ``memcached_up 0``, and the scrape still answers.
    /health   asks every shard for a ping; 200 ``ok`` when all answer within
              :data:`HEALTH_TIMEOUT`, else 503 naming the shards that did not.

A malformed request line is 400, an unknown path 404; a method other than GET or HEAD is 405; a request head over 8 KiB or not
ending in a blank line within :data:`READ_TIMEOUT` closes the connection. When shard 0 itself
does not run (stopped, restarting), nothing answers on the port: Prometheus then records
``up 0`` for the target, which is the truth.
"""

from __future__ import annotations

import asyncio
from typing import Final

from framework import Shard

from . import exporter
from .service import PING_HANDLER
from .stats import ServerInfo

__all__ = ["MetricsHttp", "PING_HANDLER", "SCRAPE_TIMEOUT", "HEALTH_TIMEOUT", "READ_TIMEOUT"]

SCRAPE_TIMEOUT: Final = 2.0
HEALTH_TIMEOUT: Final = 0.5
READ_TIMEOUT: Final = 10.0
_MAX_HEAD: Final = 8192
_REASONS: Final = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class MetricsHttp(asyncio.Protocol):
    """One HTTP connection to the metrics port."""

    def __init__(self, shard: Shard, info: ServerInfo) -> None:
        self._shard = shard
        self._info = info
        self._transport: asyncio.Transport | None = None
        self._head = b""
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._timer = asyncio.get_running_loop().call_later(READ_TIMEOUT, transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._timer is not None:
            self._timer.cancel()

    def data_received(self, data: bytes) -> None:
        if self._task is not None or self._transport is None:
            return  # one request per connection
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > _MAX_HEAD:
                self._transport.close()
            return
        request_line = self._head.split(b"\r\n", 1)[0].split(b" ")
        if self._timer is not None:
            self._timer.cancel()
        self._task = asyncio.get_running_loop().create_task(self._answer(request_line))

    async def _answer(self, request_line: list[bytes]) -> None:
        if len(request_line) != 3 or not request_line[2].startswith(b"HTTP/"):
            status, body, content_type = 400, b"bad request\n", "text/plain; charset=utf-8"
        else:
            method, path = request_line[0], request_line[1].split(b"?", 1)[0]
            if method not in (b"GET", b"HEAD"):
                status, body, content_type = 405, b"only GET and HEAD\n", "text/plain; charset=utf-8"
            elif path == b"/metrics":
                reports = await exporter.gather_reports(self._shard, SCRAPE_TIMEOUT)
                status, body, content_type = 200, exporter.render(self._info, reports), exporter.CONTENT_TYPE
            elif path == b"/health":
                status, body = await self._health()
                content_type = "text/plain; charset=utf-8"
            else:
                status, body, content_type = 404, b"not found\n", "text/plain; charset=utf-8"
            if method == b"HEAD":
                self._send(status, content_type, body, with_body=False)
                return
        self._send(status, content_type, body)

    async def _health(self) -> tuple[int, bytes]:
        shard = self._shard

        async def ping(target: int) -> bool:
            try:
                await asyncio.wait_for(shard.submit_to(target, PING_HANDLER), HEALTH_TIMEOUT)
            except Exception:  # a timeout, a shard that is down, a failing handler
                return False
            return True

        answered = await asyncio.gather(*(ping(s) for s in range(shard.count)))
        silent = [s for s, ok in enumerate(answered) if not ok]
        if not silent:
            return 200, b"ok\n"
        names = ", ".join(str(s) for s in silent)
        return 503, f"shard {names} did not answer within {HEALTH_TIMEOUT} s\n".encode()

    def _send(self, status: int, content_type: str, body: bytes, with_body: bool = True) -> None:
        transport = self._transport
        if transport is None:
            return
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        transport.write(head + body if with_body else head)
        transport.close()
