"""The memcached server as a shard application: what every shard runs.

``setup``: make this shard's cache (its share of ``-m``) and register the ``kv.*`` handlers.
``start``: open this shard's listeners on the chosen network stack and start the expiry reclaim.
``stop``: close the listeners (open connections are closed when the process exits).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from framework import Shard, ShardApp
from framework.metrics import Histogram, MetricsRegistry
from net_backends.posix import PosixStack

from . import stats as stats_fmt
from .auth import Credentials
from .cache import Cache
from .context import CONNS_HANDLER, ShardContext
from .crawler import LruCrawler
from .slab_mover import SlabMover, settings_from_options
from .item_commands import ItemCommands
from .lru_maintainer import LruMaintainer
from .lru_maintainer import settings_from_options as lru_settings
from .listen_spec import Listener, listener_hosts
from .memcached_options import c_integer, index_slots
from .connection import SAMPLE_MASK, ClientConnection, native_number, socket_address
from .service import PING_HANDLER, REPORT_HANDLER, KVService
from .verbosity import TRACE_LEVEL, VERBOSITY_HANDLER, set_verbosity, trace_log
from .watchers import WatchHub

__all__ = ["ServerConfig", "KVServerApp", "PROTOCOL_VERSION", "FIXED_OVERHEAD_PER_SHARD_MB"]

log = logging.getLogger("kvshard.server")

# The memcached release whose protocol we answer like; clients parse the version as x.y.z.
PROTOCOL_VERSION = "1.6.18"

# Memory the server needs beyond ``-m``, per shard: the interpreter, uvloop and our modules
# (~21 MiB resident per process, the supervisor included), two 1 MiB rings per peer, socket
# and parser buffers, and allocator slack. Total RSS of all kvshard processes stays under
# ``-m`` + shards * this (tests/test_eviction.py measures it).
FIXED_OVERHEAD_PER_SHARD_MB = 48
CRAWLER_SLEEP_US = 100  # memcached's default lru_crawler_sleep

# our use of the runtime's per-shard shared words
WORD_OPEN_CONNECTIONS = 0
WORD_DRAINING = 1  # 1 while a stopping shard still has client connections to finish
DRAIN_SECONDS = 3.0  # the most a stop waits for replies in flight (the runtime allows 5 s)
DRAIN_GRACE = 0.1  # ... and for shards that got the stop a moment later to say they drain


@dataclass(frozen=True)
class ServerConfig:
    port: int = 11211
    listen: tuple[Listener, ...] = (Listener("127.0.0.1"),)  # -l's elements (kvshard.listen_spec)
    listen_text: str = "127.0.0.1"  # -l as given (memcached's "inter")
    memory_bytes: int = 64 << 20
    max_connections: int = 1024
    max_item_size: int = 1 << 20
    udp_port: int = 0
    verbosity: int = 0
    network_stack: str = "posix"
    version: str = PROTOCOL_VERSION
    started: float = 0.0
    pid: int = 0
    metrics_port: int = 0  # 0: no HTTP endpoint (the CLI's default: 9150 when free)
    metrics_listen: tuple[str, ...] = ()  # empty: the same addresses as ``listen``
    # --network-stack native: the TAP device and the stack's IPv4 configuration
    tap_device: str = ""
    host_ipv4: str = ""
    netmask_ipv4: str = "255.255.255.0"
    gateway_ipv4: str | None = None
    dpdk_pmd: bool = False  # the native stack over a DPDK port instead of a TAP queue
    dpdk_args: str = ""  # EAL arguments instead of the defaults (net_backends/dpdk/device.py)
    shutdown_enabled: bool = False  # -A: the "shutdown" command is allowed
    idle_timeout: int = 0  # -o idle_timeout=N: close client connections idle for N seconds (0: never)
    tls: Any = None  # -Z: kvshard.tls.TlsSettings (every TCP connection is TLS)
    # who may log in: "sasl" (-S: binary protocol only, SASL PLAIN) or "ascii" (-Y: ASCII only,
    # memcached's set-based login), with the (user, password) pairs of the password file
    auth: str = ""
    auth_file: str = ""
    credentials: tuple[tuple[bytes, bytes], ...] = ()
    # memcached's flags for the request path and stats (see the README's flag table)
    protocol: str = "auto"  # -B: "auto" (from the first byte), "ascii" or "binary"
    cas_enabled: bool = True  # -C: False
    flush_enabled: bool = True  # -F: False
    dump_enabled: bool = True  # -X: False
    watch_enabled: bool = True  # -W: False
    evictions: bool = True  # -M: False (a full cache refuses a store instead of evicting)
    growth_factor: float = 1.25  # -f: each slab class's chunks this much larger than the last
    min_chunk: int = 48  # -n: the smallest chunk's room for key + value beyond the item header
    reqs_per_event: int = 20  # -R
    backlog: int = 1024  # -b: the listening sockets' backlog
    prefix_delimiter: str = ":"  # -D
    detail_enabled: bool = False  # -D given: per-prefix stats on from the start
    unix_socket: str = ""  # -s: serve this UNIX socket instead of TCP and UDP
    unix_mask: int = 0o700  # -a
    extended_options: tuple[tuple[str, str | None], ...] = ()  # every -o option as given (None: no value)
    # listening sockets the supervisor opened before forking the shards (kvshard.startup):
    # -s's (every shard serves it) and the metrics port's (shard 0 serves them)
    unix_listener: Any = None
    metrics_sockets: tuple[Any, ...] = ()


def _latency_recorder(metrics: MetricsRegistry) -> Callable[[str, float], None]:
    """``observe(command, seconds)`` into one histogram per command name (a bounded set)."""
    histograms: dict[str, Histogram] = {}

    def observe(command: str, seconds: float) -> None:
        histogram = histograms.get(command)
        if histogram is None:
            histogram = histograms[command] = metrics.histogram(
                "request_latency_seconds",
                "Sampled server-side latency: from a client's read to its last reply written",
                {"command": command},
            )
        histogram.observe(seconds)

    return observe


class KVServerApp(ShardApp):
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._servers: list[Any] = []  # listeners, UDP sockets, backends: anything with close()
        self._service: KVService | None = None
        self._ctx: ShardContext | None = None
        self._shard: Shard | None = None
        self._listeners: list[tuple[int, str, str]] = []  # (stats conns id, addr, state)
        self._udp_endpoints: list[Any] = []  # kvshard.udp.UdpEndpoint
        self._listening_since = 0
        self._tick: asyncio.TimerHandle | None = None

    async def setup(self, shard: Shard) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        self._shard = shard
        options = dict(cfg.extended_options)
        cache = Cache(cfg.memory_bytes // shard.count, shard.id, shard.count, cas_enabled=cfg.cas_enabled,
                      evict=cfg.evictions, min_chunk=cfg.min_chunk, growth_factor=cfg.growth_factor,
                      index_slots=index_slots(options, shard.count))
        # the supervisor starts a shard again when it dies; each start is one incarnation
        shard.metrics.counter_func("shard_restarts_total", "Times this shard was started again after it died",
                                   None, lambda: shard.incarnation - 1)
        delimiter = os.fsencode(cfg.prefix_delimiter)[:1]  # -D: its first byte, as memcached
        service = KVService(cache, loop, prefix_delimiter=delimiter, detail_enabled=cfg.detail_enabled)
        service.register(shard)
        service.crawler = LruCrawler(
            cache, loop, enabled="no_lru_crawler" not in options,
            sleep_us=c_integer(options.get("lru_crawler_sleep") or str(CRAWLER_SLEEP_US))[0],
            tocrawl=c_integer(options.get("lru_crawler_tocrawl") or "0")[0],
        )
        service.maintainer = LruMaintainer(cache, loop, **lru_settings(options))
        service.items = ItemCommands(cache, service.crawler, shards=shard.count, item_size_max=cfg.max_item_size,
                                     track_sizes="track_sizes" in options, maintainer=service.maintainer)
        service.items.register(shard)
        mover_settings = settings_from_options(cfg.extended_options)
        service.mover = SlabMover(cache, loop, mover_settings)
        service.mover.register(shard)
        self._service = service
        info = stats_fmt.ServerInfo(
            pid=cfg.pid or os.getppid(), started=cfg.started, version=cfg.version,
            shards=shard.count, max_connections=cfg.max_connections,
            memory_bytes=cfg.memory_bytes, max_item_size=cfg.max_item_size, port=cfg.port,
            udp_port=cfg.udp_port, listen=cfg.listen_text, idle_timeout=cfg.idle_timeout,
            shutdown_enabled=cfg.shutdown_enabled, auth_sasl=cfg.auth == "sasl",
            auth_file=cfg.auth_file if cfg.auth == "ascii" else "",
            tcp_backlog=cfg.backlog, flush_enabled=cfg.flush_enabled, dump_enabled=cfg.dump_enabled,
            cas_enabled=cfg.cas_enabled,
            evictions=cfg.evictions, growth_factor=cfg.growth_factor, min_chunk=cfg.min_chunk, unix_socket=cfg.unix_socket, unix_mask=cfg.unix_mask, prefix_delimiter=delimiter, tls=cfg.tls,
            protocol=cfg.protocol, reqs_per_event=cfg.reqs_per_event, slab_reassign=mover_settings.reassign,
        )
        credentials = Credentials(cfg.credentials) if cfg.auth else None
        shard.register(REPORT_HANDLER, self._report)
        shard.register(PING_HANDLER, lambda: shard.id)
        shard.register(CONNS_HANDLER, self._conns)
        messenger = shard.messenger
        watch = WatchHub(shard.id, shard.count, messenger, loop)
        watch.register(shard)
        cache.watch_log = watch
        self._ctx = ShardContext(
            shard_id=shard.id,
            shards=shard.count,
            service=service,
            messenger=messenger,
            local=service.handlers(),
            handler=messenger.local_handler,
            max_item_size=cfg.max_item_size,
            max_connections=cfg.max_connections,  # for the whole server, all shards together
            version=cfg.version,
            info=info,
            verbosity=[cfg.verbosity],
            open_connections=lambda: shard.word_sum(WORD_OPEN_CONNECTIONS),
            publish_connections=lambda n: shard.set_own_word(WORD_OPEN_CONNECTIONS, n),
            observe_latency=_latency_recorder(shard.metrics),
            latency_sample_mask=SAMPLE_MASK if cfg.metrics_port else -1,
            request_shutdown=(lambda: shard.request_shutdown(0)) if cfg.shutdown_enabled else None,
            sasl=credentials if cfg.auth == "sasl" else None,
            ascii_login=credentials if cfg.auth == "ascii" else None,
            flush_enabled=cfg.flush_enabled,
            watch=watch,
            watch_enabled=cfg.watch_enabled,
            binding_protocol=cfg.protocol,
            reqs_per_event=cfg.reqs_per_event,
        )
        ctx = self._ctx
        service.items.ctx = ctx
        shard.register(VERBOSITY_HANDLER, lambda level: set_verbosity(ctx, level))
        watch.listeners.append(lambda flags: self._watched(cache, ctx, flags))

    @staticmethod
    def _watched(cache: Cache, ctx: ShardContext, flags: int) -> None:
        """The streams watched here changed: the cache and the connections learn it."""
        cache.watch_flags = flags
        ctx.retrace()

    def _report(self) -> tuple[dict[str, Any], list[Any]]:
        """This shard's part of a scrape (:mod:`kvshard.exporter`)."""
        assert self._service is not None and self._ctx is not None and self._shard is not None
        stats = self._service.stats()
        stats["local_requests"] = self._ctx.local_requests
        stats["forwarded_requests"] = self._ctx.forwarded_requests
        if self.config.udp_port:
            stats["udp_dropped"] = sum(endpoint.dropped for endpoint in self._udp_endpoints)
        return stats, self._shard.metrics.collect()

    def _conns(self, asking: int) -> list[tuple[int, str, str, str, int]]:
        """This shard's part of ``stats conns``: its listening sockets and its clients."""
        assert self._ctx is not None
        ctx = self._ctx
        out = [(cid, addr, "", state, ctx.now - self._listening_since) for cid, addr, state in self._listeners]
        out.extend(conn.describe(asking) for conn in ctx.connections.values())
        return out

    def _tick_clock(self) -> None:
        assert self._ctx is not None
        loop = asyncio.get_running_loop()
        self._ctx.now = int(loop.time())
        if self.config.idle_timeout:
            for conn in list(self._ctx.connections.values()):
                conn.kick_if_idle(self._ctx.now - self.config.idle_timeout)
        self._tick = loop.call_later(1.0, self._tick_clock)

    async def start(self, shard: Shard) -> None:
        assert self._ctx is not None and self._service is not None
        ctx = self._ctx
        self._tick_clock()
        self._listening_since = ctx.now
        if self.config.network_stack == "native":
            await self._start_native(shard)
        else:
            await self._start_posix(shard)
        await self._start_metrics(shard)
        self._service.start()
        cfg = self.config
        where = f"UNIX socket {cfg.unix_socket}" if cfg.unix_socket else ", ".join(
            listener.describe(cfg.port) for listener in cfg.listen)
        own_ports = " (a listener's own port where it has one)" if any(listener.port for listener in cfg.listen) else ""
        log.info("shard %d listening on %s%s (%s stack)", shard.id, where,
                 f", UDP port {cfg.udp_port}{own_ports}" if cfg.udp_port else "", cfg.network_stack)

    async def _start_native(self, shard: Shard) -> None:
        # imported here: a server on the kernel's stack never loads ours (memory per process)
        from net_backends.native.backend import NativeBackend
        from net_backends.native.stack import StackAddress
        from net_backends.native.tap import TapDevice, mac_for_ipv4

        assert self._ctx is not None
        ctx, cfg = self._ctx, self.config
        address = StackAddress(cfg.host_ipv4, cfg.netmask_ipv4, cfg.gateway_ipv4)
        if cfg.dpdk_pmd:
            from net_backends.dpdk.device import DpdkDevice, eal_args, start_eal

            start_eal(eal_args(cfg.tap_device, f"{cfg.pid}-{shard.id}-{os.getpid()}", extra=cfg.dpdk_args))
            device: Any = DpdkDevice(mac_for_ipv4(address.ip))
            device.register_metrics(shard.metrics)
        else:
            device = TapDevice(cfg.tap_device, mac_for_ipv4(address.ip))
        backend = NativeBackend(asyncio.get_running_loop(), shard.reactor, shard.metrics, device, address)
        self._servers.append(backend)
        self._servers.append(await backend.listen_tcp(lambda: ClientConnection(ctx), cfg.host_ipv4, cfg.port))
        self._add_listener(shard, native_number(), f"tcp:{cfg.host_ipv4}:{cfg.port}", cfg.protocol)
        if cfg.udp_port:
            endpoint = self._udp_endpoint()
            self._servers.append(await backend.listen_udp(lambda: endpoint, cfg.host_ipv4, cfg.udp_port))
            self._add_listener(shard, native_number(), f"udp:{cfg.host_ipv4}:{cfg.udp_port}", "")

    def _udp_endpoint(self) -> Any:
        from .udp import UdpEndpoint  # only servers with -U load it (memory per process)

        assert self._ctx is not None
        endpoint = UdpEndpoint(self._ctx)
        self._udp_endpoints.append(endpoint)
        return endpoint

    async def _start_posix(self, shard: Shard) -> None:
        assert self._ctx is not None
        ctx = self._ctx
        stack = PosixStack(asyncio.get_running_loop(), backlog=self.config.backlog)
        tls_context = None
        if self.config.tls is not None:
            from .tls import server_context  # only servers with -Z load it

            tls_context = server_context(self.config.tls)
        if self.config.unix_listener is not None:
            await self._serve_unix_socket(stack, shard, tls_context)
            return
        cfg = self.config
        for listener in cfg.listen:
            server = await stack.listen_tcp(self._connection_factory(ctx, listener.protocol), listener.host,
                                            listener.port_or(cfg.port), tls=None if listener.notls else tls_context)
            self._servers.append(server)
            for sock in server.sockets:
                self._add_listener(shard, sock.fileno(), socket_address("tcp", sock.getsockname()),
                                   listener.protocol or cfg.protocol)
            if cfg.udp_port:
                for udp in await stack.listen_udp_all(self._udp_endpoint, listener.host, listener.port_or(cfg.udp_port)):
                    self._servers.append(udp)
                    sock = udp.get_extra_info("socket")
                    self._add_listener(shard, sock.fileno(), socket_address("udp", sock.getsockname()), "")

    def _add_listener(self, shard: Shard, number: int, address: str, protocol: str) -> None:
        """A listening socket (``protocol``: its connections'; "" for UDP) for ``stats conns``
        (UDP sockets are ``conn_read`` there, as memcached's) and, at -vv, memcached's line."""
        self._listeners.append((number * shard.count + shard.id, address, "conn_listening" if protocol else "conn_read"))
        if self.config.verbosity >= TRACE_LEVEL:
            trace_log.debug("<%d server listening (%s)", number, stats_fmt.PROTOCOL_NAMES[protocol] if protocol else "udp")

    @staticmethod
    def _connection_factory(ctx: ShardContext, protocol: str) -> Callable[[], ClientConnection]:
        """A listener's connections: in its own protocol (``-l proto[...]:``), else -B's."""
        chosen = protocol or None
        return lambda: ClientConnection(ctx, chosen)

    async def _serve_unix_socket(self, stack: PosixStack, shard: Shard, tls_context: Any) -> None:
        """-s: accept on the supervisor's UNIX socket (each shard has its copy; the kernel
        gives each connection to one of them)."""
        assert self._ctx is not None
        ctx, sock = self._ctx, self.config.unix_listener
        server = await stack.serve_socket(lambda: ClientConnection(ctx), sock, tls=tls_context)
        self._servers.append(server)
        self._add_listener(shard, sock.fileno(), f"unix:{self.config.unix_socket}", self.config.protocol)

    async def _start_metrics(self, shard: Shard) -> None:
        """Shard 0 serves the metrics port, on the kernel's sockets whatever the stack."""
        assert self._ctx is not None
        if shard.id == 0 and self.config.metrics_port:
            from .metrics_http import MetricsHttp  # only the shard that serves it loads it

            info = self._ctx.info
            loop = asyncio.get_running_loop()
            for sock in self.config.metrics_sockets:  # opened by the supervisor (kvshard.startup)
                self._servers.append(await loop.create_server(lambda: MetricsHttp(shard, info), sock=sock))
            for host in () if self.config.metrics_sockets else self.config.metrics_listen or listener_hosts(self.config.listen):
                self._servers.append(await loop.create_server(
                    lambda: MetricsHttp(shard, info), host, self.config.metrics_port, reuse_address=True,
                ))
            log.info("shard 0 serving /metrics and /health on port %d", self.config.metrics_port)

    async def stop(self, shard: Shard) -> None:
        """A graceful stop: no new connections; every connection reads nothing more, gets the
        replies to what it had sent and is closed; the shard goes on serving the other shards'
        calls until every shard has drained its connections (or :data:`DRAIN_SECONDS` pass), so
        a request forwarded here from another shard is answered too."""
        if self._tick is not None:
            self._tick.cancel()
        for server in self._servers:
            server.close()
        self._servers.clear()
        self._listeners.clear()
        self._udp_endpoints.clear()
        if self._ctx is not None:
            shard.set_own_word(WORD_DRAINING, 1)
            for conn in list(self._ctx.connections.values()):
                conn.drain()
            deadline = time.monotonic() + DRAIN_SECONDS
            while self._ctx.connections and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            shard.set_own_word(WORD_DRAINING, 0)
            await asyncio.sleep(DRAIN_GRACE)
            while shard.word_sum(WORD_DRAINING) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        if self._service is not None:
            self._service.stop()
