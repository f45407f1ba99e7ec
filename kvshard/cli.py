"""The ``kvshard`` command: memcached's flags, one shard per CPU.

    kvshard [-p PORT | -s FILE [-a MASK]] [-l [proto[..]:]ADDR[:PORT][,...]] [-m MB] [-c CONNS] [-t SHARDS] [-I SIZE]
            [-U PORT] [-S [--sasl-pwdb FILE] | -Y FILE] [-Z -o ssl_chain_cert=...,ssl_key=...]
            [-u USER] [-d] [-P FILE] [-v|-vv] [--metrics-port PORT] [--network-stack posix|native ...]

Every flag and ``-o`` option of memcached 1.6.18 is accepted (the README's table says what each
does here). A value memcached refuses gets memcached's message and exit status; other bad or
unknown flags print one line and exit 64 (EX_USAGE); an address that cannot be listened on
exits 71 (EX_OSERR), as memcached does; ``--dpdk-pmd`` where DPDK is missing or will not start
prints one line naming what is missing and exits 69 (EX_UNAVAILABLE). Options accepted but
without effect here are named, with the reason, in one warning line at start.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import logging
import os
import socket
import sys

from framework import ShardSettings, run
from framework.logs import install_labels
from net_backends import STACKS
from net_backends.posix import check_can_listen, overlaps, resolve_passive

from . import __version__, core, startup
from .cli_config import Startup, startup_from
from .cli_flags import parser
from .listen_spec import MemcachedRefusal
from .memcached_options import EX_OSERR, EX_USAGE, UsageError
from .server import KVServerApp, ServerConfig
from .verbosity import log_level

__all__ = ["main", "EX_USAGE", "EX_OSERR", "EX_UNAVAILABLE"]

log = logging.getLogger("kvshard")

EX_UNAVAILABLE = 69


def _check_ports(config: ServerConfig) -> None:
    """The TCP and UDP ports on the kernel's stack are free (the shards bind them each with
    SO_REUSEPORT once forked; a server already there is an error, as in memcached), and no two
    of -l's listeners want the same address and port (memcached's second bind fails)."""
    if config.network_stack != "posix" or config.unix_socket:
        return
    for kind, default_port in (("TCP", config.port), ("UDP", config.udp_port)):
        if not default_port:
            continue
        taken: list[tuple[int, str, int]] = []
        for listener in config.listen:
            host, port, udp = listener.host, listener.port_or(default_port), kind == "UDP"
            try:
                addresses = set(resolve_passive(host, port, udp=udp))
                if any(overlaps(address, other) for address in addresses for other in taken):
                    raise OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
                taken.extend(addresses)
                check_can_listen(host, port, udp=udp)
            except socket.gaierror as exc:
                raise MemcachedRefusal(f"getaddrinfo(): {exc.strerror}", config.listen_text) from None
            except OSError as exc:
                where = (f"one of interface(s) {config.listen_text}" if len(config.listen) > 1
                         else f"{host or '*'} {kind} port {port}")
                raise UsageError(f"failed to listen on {where}: {exc.strerror or exc}", EX_OSERR) from None


def _probe_dpdk(config: ServerConfig) -> str:
    """'' if DPDK starts here with the shards' EAL arguments, else why not (one line). The glue is
    built (or found) here; EAL starts in a throwaway process, as EAL can start only once in a
    process and the supervisor must stay free of it (each shard starts its own)."""
    import subprocess  # only for this check

    from net_backends.dpdk.device import eal_args
    from net_backends.dpdk.glue import DpdkUnavailable, load

    try:
        load()
    except DpdkUnavailable as exc:
        return str(exc)
    probe = subprocess.run(
        [sys.executable, "-m", "net_backends.dpdk.probe", *eal_args(config.tap_device, f"probe-{os.getpid()}", extra=config.dpdk_args)],
        capture_output=True, text=True, timeout=60,
    )
    if probe.returncode == 0:
        return ""
    lines = [line for line in probe.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"the DPDK probe exited with status {probe.returncode}"


def _setup_logging(verbose: int, log_file: str | None) -> None:
    level = log_level(verbose)  # -v INFO, -vv DEBUG: the shards' commands and answers too (kvshard.verbosity)
    install_labels()  # every line says which process wrote it: "main" or "shard N"
    try:
        logging.basicConfig(level=level, format="%(asctime)s [%(process_label)s] %(name)s %(levelname)s %(message)s",
                            filename=log_file)
    except OSError as exc:
        raise UsageError(f"--log-file: {exc.strerror or exc}: {log_file}", EX_OSERR) from None


def _listeners(plan: Startup) -> ServerConfig:
    """Open the sockets the shards inherit: -s's UNIX socket and the metrics port."""
    config = plan.config
    unix_listener = None
    if config.unix_socket:
        unix_listener = startup.bind_unix_socket(config.unix_socket, config.unix_mask, config.backlog)
    metrics = ()
    if config.metrics_port:
        metrics = startup.bind_metrics(config.metrics_listen, config.metrics_port, plan.metrics_required)
        if not metrics:
            log.warning("metrics port %d is taken (another kvshard?): this server has no /metrics; "
                        "give each server its own --metrics-port", config.metrics_port)
    return dataclasses.replace(config, unix_listener=unix_listener, metrics_sockets=metrics,
                               metrics_port=config.metrics_port if metrics else 0)


def _preload(config: ServerConfig) -> None:
    """Import now what the shards would import later, before -u takes away the right to read
    files only root may read (a Python installed under /root, say)."""
    import concurrent.futures.thread  # noqa: F401  (uvloop's loop module needs it)
    import encodings.idna  # noqa: F401  (socket.getaddrinfo encodes host names with it)

    import uvloop.loop  # noqa: F401

    from . import auth, metrics_http, tls, udp  # noqa: F401

    if config.network_stack == "native":
        from net_backends.native import backend  # noqa: F401


def _say_how_it_runs(plan: Startup) -> None:
    log.info("kvshard %s, core: %s", __version__, core.mode())
    slow = core.warning()
    if slow is not None:
        log.warning("%s", slow)
    if plan.ignored:
        log.warning("accepted but ignored here: %s", "; ".join(plan.ignored))


def _serve(args: argparse.Namespace, plan: Startup) -> int:
    """memcached's order: core limit, user, listeners, detach, pid file; then the shards."""
    if args.enable_coredumps:
        startup.enable_core_dumps()
    if args.user:
        _preload(plan.config)
    still_root = not startup.switch_user(args.user)
    _check_ports(plan.config)
    if plan.config.dpdk_pmd:
        problem = _probe_dpdk(plan.config)
        if problem:
            raise UsageError(problem, EX_UNAVAILABLE)
    config = _listeners(plan)
    if args.daemon:
        startup.daemonize(keep_output=args.verbose > 0)
        config = dataclasses.replace(config, pid=os.getpid())
    _say_how_it_runs(plan)
    if still_root:
        log.info("%s", startup.ROOT_WITHOUT_USER)
    settings = dataclasses.replace(ShardSettings(), idle_poll_seconds=plan.idle_poll_us / 1e6)
    if args.pidfile:
        startup.write_pidfile(args.pidfile)
    try:
        return run(KVServerApp(config), plan.shards, settings=settings)
    finally:
        if args.pidfile:
            startup.remove_file(args.pidfile)
        if config.unix_listener is not None:
            startup.remove_unix_socket(config.unix_listener, config.unix_socket)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser(STACKS).parse_args(argv)
        plan = startup_from(args)
        _setup_logging(args.verbose, args.log_file)
        return _serve(args, plan)
    except UsageError as exc:
        print(f"kvshard: {exc}", file=sys.stderr)
        return exc.status


if __name__ == "__main__":
    sys.exit(main())
