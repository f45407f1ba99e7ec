"""The ``kvshard`` command's flags: every flag of memcached 1.6.18, in its short and long
forms, then kvshard's own. Values are kept as text here; :mod:`kvshard.cli` reads and checks
them as memcached does (:mod:`kvshard.memcached_options`)."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from . import __version__, core
from .memcached_options import UsageError

__all__ = ["parser", "LICENSE_TEXT", "DEFAULT_IDLE_POLL_US", "DEFAULT_METRICS_PORT", "DEFAULT_LISTEN"]

# Measured under memcaslap on 2 cores shared with the client: polling for 200 us after the last
# message cost 10-25% of throughput against sleeping at once (the doorbell wake-ups are rare
# under load: one per ~35 messages).
DEFAULT_IDLE_POLL_US = 0
DEFAULT_METRICS_PORT = 9150  # memcached_exporter's
DEFAULT_LISTEN = "127.0.0.1"  # -l
LICENSE_TEXT = ("kvshard is licensed under the Apache License, Version 2.0: "
                "http://www.apache.org/licenses/LICENSE-2.0")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


class _Version(argparse.Action):
    """``-V``: ``kvshard <version>`` and, on a second line, ``core: compiled|interpreted``."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"kvshard {__version__}\ncore: {core.mode()}")
        parser.exit()


class _License(argparse.Action):
    """``-i``: the licence, then exit 0 (memcached prints its own and libevent's)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(LICENSE_TEXT)
        parser.exit()


def _memcached_network(p: argparse.ArgumentParser) -> None:
    p.add_argument("-p", "--port", default=None, help="TCP port (11211; with only -U given, the UDP port)")
    p.add_argument("-U", "--udp-port", default="0", help="UDP port (0 = off)")
    p.add_argument("-s", "--unix-socket", default=None, metavar="FILE",
                   help="listen on this UNIX socket instead of TCP and UDP")
    p.add_argument("-a", "--unix-mask", default="700", metavar="MASK", help="-s: the socket file's mode, octal (700)")
    p.add_argument("-l", "--listen", action="append", default=None, metavar="LIST",
                   help="where to listen (127.0.0.1; see --listen-default): elements [notls:][proto[ascii|binary|negotiating]:][tag[NAME]:]"
                   "HOST[:PORT] (IPv6 as [ADDR]; * for every address) separated by , or ;; repeatable")
    p.add_argument("-b", "--listen-backlog", default="1024", help="the listening sockets' backlog (1024)")
    p.add_argument("-B", "--protocol", default=None, help="auto, ascii or binary (auto: from each connection's first byte)")
    p.add_argument("-c", "--conn-limit", default="1024", help="max simultaneous connections, all shards together (1024)")
    p.add_argument("-R", "--max-reqs-per-event", default="20", help="requests a connection may run before others get a turn (20)")
    p.add_argument("-N", "--napi-ids", default=None, help="accepted, ignored: the kernel's SO_REUSEPORT hash picks the shard")


def _memcached_memory(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--memory-limit", default="64", help="item memory in megabytes (64)")
    p.add_argument("-M", "--disable-evictions", action="store_true", help="answer an error when memory is full instead of evicting")
    p.add_argument("-I", "--max-item-size", default="1m", help="max item size, k/m suffix allowed (1m)")
    p.add_argument("-f", "--slab-growth-factor", default="1.25", help="chunk size growth factor (1.25)")
    p.add_argument("-n", "--slab-min-size", default="48", help="min space for key+value+flags (48)")
    p.add_argument("-L", "--enable-largepages", action="store_true", help="accepted, ignored (see the README)")
    p.add_argument("-k", "--lock-memory", action="store_true", help="accepted, ignored (see the README)")
    p.add_argument("-e", "--memory-file", default=None, help="accepted, ignored: no restartable cache file (see the README)")


def _memcached_behaviour(p: argparse.ArgumentParser) -> None:
    p.add_argument("-t", "--threads", default=None, help="number of shards (default: CPUs)")
    p.add_argument("-C", "--disable-cas", action="store_true", help="no CAS values (gets shows 0, cas never matches)")
    p.add_argument("-F", "--disable-flush-all", action="store_true", help="refuse flush_all")
    p.add_argument("-X", "--disable-dumping", action="store_true", help="refuse stats cachedump and lru_crawler metadump")
    p.add_argument("-W", "--disable-watch", action="store_true", help="refuse watch")
    p.add_argument("-D", dest="delimiter", default=None, metavar="CHAR",
                   help="key prefix delimiter for per-prefix stats (:); turns them on")
    p.add_argument("-A", "--enable-shutdown", action="store_true", help="allow the \"shutdown\" command (it stops the server)")
    p.add_argument("-o", "--extended", action="append", default=[], metavar="OPT[=VALUE],...",
                   help="memcached's extended options (all accepted; the README says which take effect)")


def _memcached_process(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    p.add_argument("-V", "--version", action=_Version, nargs=0, help="print the version and which core runs, then exit")
    p.add_argument("-i", "--license", action=_License, nargs=0, help="print the licence, then exit")
    p.add_argument("-d", "--daemon", action="store_true", help="run in the background (the command returns at once)")
    p.add_argument("-u", "--user", default=None, help="as root: switch to this user before listening")
    p.add_argument("-P", "--pidfile", default=None, help="write the server's process id to this file (removed at exit)")
    p.add_argument("-r", "--enable-coredumps", action="store_true", help="raise the core file size limit")


def _memcached_security(p: argparse.ArgumentParser) -> None:
    p.add_argument("-Z", "--enable-ssl", action="store_true", help="TLS on every TCP connection (needs -o ssl_chain_cert=,ssl_key=)")
    p.add_argument("-S", "--enable-sasl", action="store_true",
                   help="clients must log in with SASL PLAIN over the binary protocol (binary only); users from "
                   "--sasl-pwdb or $MEMCACHED_SASL_PWDB (user:password lines)")
    p.add_argument("-Y", "--auth-file", default=None, metavar="FILE",
                   help="clients must log in with memcached's ASCII authentication (ASCII only); FILE holds user:password lines")


def _kvshard_own(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sasl-pwdb", default=None, metavar="FILE", help="-S: the password file (default: $MEMCACHED_SASL_PWDB)")
    p.add_argument("--metrics-port", default=None,
                   help=f"HTTP port for Prometheus /metrics and /health (0: off). Not given: {DEFAULT_METRICS_PORT} "
                   "if it is free, else none (another server holds it; one warning line)")
    p.add_argument("--metrics-listen", default=None, help="address(es) for the metrics port (default: -l's hosts)")
    p.add_argument("--listen-default", default=DEFAULT_LISTEN, metavar="LIST",
                   help=f"the -l list when no -l is given ({DEFAULT_LISTEN}; memcached's is every address). The "
                   "container image sets 0.0.0.0 here, so that an -l given to it replaces it (-l's add up, as memcached's)")
    p.add_argument("--log-file", default=None, help="log to this file instead of stderr (SIGHUP reopens it, for logrotate)")
    p.add_argument("--idle-poll-us", default=str(DEFAULT_IDLE_POLL_US),
                   help="how long an idle shard keeps polling its channels before it sleeps, in microseconds "
                   f"({DEFAULT_IDLE_POLL_US}: sleep at once; polling pays off only on cores the server does not "
                   "share, e.g. with the load generator)")


def _native_stack(p: argparse.ArgumentParser, stacks: tuple[str, ...]) -> None:
    p.add_argument("--network-stack", choices=stacks, default="posix", help="network stack (posix)")
    p.add_argument("--tap-device", default="", help="native stack: the TAP device, one queue per shard (made if missing)")
    p.add_argument("--host-ipv4-addr", default="", help="native stack: our IPv4 address")
    p.add_argument("--netmask-ipv4-addr", default="255.255.255.0", help="native stack: the netmask (255.255.255.0)")
    p.add_argument("--gw-ipv4-addr", default=None, help="native stack: the gateway, if any")
    p.add_argument(
        "--dpdk-pmd", action="store_true",
        help="native stack: run over a DPDK port (each shard its own EAL); --tap-device NAME then means "
        "DPDK's net_tap driver on the kernel tap NAME",
    )
    p.add_argument(
        "--dpdk-args", default="",
        help="native stack with --dpdk-pmd: EAL arguments instead of the defaults (--no-huge --no-pci "
        "--no-shconf -m 256 --vdev=net_tap0,iface=NAME ...), e.g. for a real NIC; write it with '=' "
        "(--dpdk-args='-a 0000:3b:00.0 ...'), as the value starts with a dash",
    )


def parser(stacks: tuple[str, ...]) -> argparse.ArgumentParser:
    p = _Parser(prog="kvshard", description="memcached-compatible key-value server, one shard per core")
    for add in (_memcached_network, _memcached_memory, _memcached_behaviour, _memcached_process,
                _memcached_security, _kvshard_own):
        add(p)
    _native_stack(p, stacks)
    return p
