"""The per-shard context a connection works in: a typed record, no request logic.

One :class:`ShardContext` per shard process, shared by all its connections. It says who this
shard is (``shard_id`` of ``shards``), where the keys live (``service``: this shard's items;
``messenger``: the channels to the other shards; ``local``: the service's operations by name),
the server's limits and settings, and keeps the few counters every connection adds to
(``local_requests``/``forwarded_requests``). Compiled, every field is a C struct member, so the
request path reads it without a dictionary lookup (see context.pxd).
"""

from __future__ import annotations

from typing import Any, Callable

from .protocol import ascii as proto
from . import item_commands, prefix_stats
from . import stats as stats_fmt
from .verbosity import TRACE_LEVEL

__all__ = ["ShardContext"]


def _no_latency(command: str, seconds: float) -> None:
    pass


CONNS_HANDLER = "kv.conns"
_DETAIL_USAGE = b"CLIENT_ERROR usage: stats detail on|off|dump\r\n"


class ShardContext:
    """What a connection needs from its shard."""

    def __init__(
        self,
        *,
        shard_id: int,
        shards: int,
        service: Any,
        messenger: Any,
        local: dict[str, Callable[..., Any]],
        handler: Callable[[str], Callable[..., Any]],
        max_item_size: int,
        max_connections: int,
        version: str,
        info: Any,
        verbosity: list[int] | None = None,
        open_connections: Callable[[], int] | None = None,
        publish_connections: Callable[[int], None] | None = None,
        observe_latency: Callable[[str, float], None] = _no_latency,
        request_shutdown: Callable[[], None] | None = None,
        latency_sample_mask: int = -1,
        sasl: Any = None,
        ascii_login: Any = None,
        flush_enabled: bool = True,
        watch: Any = None,
        watch_enabled: bool = True,
        binding_protocol: str = "auto",
        reqs_per_event: int = 20,
    ) -> None:
        self.shard_id = shard_id
        self.shards = shards
        self.service = service
        self.messenger = messenger
        self.local = local
        self.handler = handler
        self.max_item_size = max_item_size
        self.max_connections = max_connections
        self.version = version
        self.info = info
        self.verbosity = verbosity if verbosity is not None else [0]
        # open connections of every shard (shared memory words), for the -c limit
        self.open_connections = open_connections
        self.publish_connections = publish_connections
        # keyed operations this shard's connections ran here (they own the key) or sent to the owner
        self.local_requests = 0
        self.forwarded_requests = 0
        # records a sampled read's latency under its command's name (see connection.py); the
        # mask picks the reads to time (-1: none)
        self.observe_latency = observe_latency
        self.request_shutdown = request_shutdown  # set with -A: "shutdown" stops the server
        self.latency_sample_mask = latency_sample_mask
        # open client connections by their ``stats conns`` id, and the shard's clock in whole
        # seconds (ticked every second) for their idle times
        self.connections: dict[int, Any] = {}
        self.now = 0
        # -S / -Y: every connection must log in (see kvshard.auth); None: nobody has to
        self.sasl = sasl
        self.ascii_login = ascii_login
        self.flush_enabled = flush_enabled  # False with -F: flush_all is refused
        # ``watch`` (kvshard.watchers.WatchHub, None: no watching here) and whether it is
        # allowed (-W: not); ``trace_reads``: a read must tell the hub its client, or log its
        # commands (kvshard.verbosity), so it takes the connection's slower, traced way
        self.watch = watch
        self.watch_enabled = watch_enabled
        self.trace_reads = False
        # -B: what a connection speaks, "auto" (its first byte decides), "ascii" or "binary"
        # (-S and -Y make it binary and ascii); UDP ignores it (each datagram decides)
        self.binding_protocol = binding_protocol
        # -R: the commands one read runs before the connection yields to the others
        self.reqs_per_event = reqs_per_event
        self.retrace()

    def retrace(self) -> None:
        """Work ``trace_reads`` out again (the verbosity or the watched streams changed)."""
        self.trace_reads = self.verbosity[0] >= TRACE_LEVEL or (self.watch is not None and self.watch.flags != 0)

    def stats_command(self, conn: Any, args: list[bytes]) -> None:
        """Answer ``stats [group]`` through ``conn.reply`` / ``conn.fan_out`` (a connection,
        or an adapter that converts the ASCII answer for another protocol)."""
        group = args[0] if args else None  # memcached ignores tokens after the group's name
        if group is None:
            conn.fan_out("kv.stats", (), lambda r: stats_fmt.general(self.info, stats_fmt.sum_shards(r)))
        elif group == b"settings":
            conn.reply(stats_fmt.settings(self.info, self.verbosity[0], self.service.detail_enabled,
                                          self.service.crawler, self.service.items.sizes_cas_min is not None,
                                          self.service.maintainer, self.service.mover))
        elif group == b"items":
            conn.fan_out("kv.slab_stats", (), lambda r: stats_fmt.items(stats_fmt.merge_classes(r)))
        elif group == b"slabs":
            conn.fan_out("kv.slab_stats", (), lambda r: stats_fmt.slabs(stats_fmt.merge_classes(r)))
        elif group == b"reset":
            conn.fan_out("kv.stats_reset", (), lambda r: proto.R_RESET)
        elif group == b"detail":
            _stats_detail(conn, args[1] if len(args) > 1 else b"")
        elif group in item_commands.STATS_GROUPS:
            if group == b"cachedump":
                item_commands.stats_cachedump(self, conn, args)
            else:
                item_commands.stats_sizes(self, conn, group)
        elif group == b"conns":
            asking = getattr(conn, "conn_id", -1)
            conn.fan_out(CONNS_HANDLER, (asking,), lambda r: stats_fmt.conns([c for part in r for c in part]))
        else:
            conn.reply(proto.R_ERROR)


def _stats_detail(conn: Any, mode: bytes) -> None:
    """``stats detail on|off`` switches every shard's per-prefix counting; ``dump`` merges
    their counts (kvshard.prefix_stats)."""
    if mode == b"on" or mode == b"off":
        conn.fan_out("kv.stats_detail", (mode == b"on",), lambda r: proto.R_OK)
    elif mode == b"dump":
        conn.fan_out("kv.prefix_stats", (), prefix_stats.dump)
    else:
        conn.reply(_DETAIL_USAGE)
