"""The supervisor: starts one process per shard, restarts a crashed one, stops them all.

Theory of operation
-------------------
The supervisor is the parent process and never runs application code. It makes the shared
mapping and one doorbell eventfd per shard, then forks each shard (children inherit both), and
afterwards only waits on: the shards' control sockets (control.py), SIGCHLD, SIGTERM/SIGINT.

Per shard::

    STARTING --READY--> READY --(all READY)--> RUNNING (START sent)
    any --(process exit while not stopping)--> DEAD
    DEAD: PEER_DOWN k to every live shard; wait for each PEER_DOWN_ACK (or that shard's death,
          or ACK_TIMEOUT); empty the rings between k and other dead shards ourselves (both ends
          are dead); fork k again -> STARTING; on its READY send it START (live shards) and send
          PEER_UP k to the others.

Only one shard is restarted at a time, and a shard is only forked once every live peer has
emptied its rings to it, so the new incarnation never sees messages meant for the old one.
A shard that dies more than ``max_restarts`` times within ``restart_window`` seconds is a
crash loop: the supervisor stops everything and exits 1.

Stop (SIGTERM, SIGINT, or a shard's SHUTDOWN): STOP to every shard, wait up to
``stop_timeout`` + 1 s, SIGKILL whatever remains, reap all. The shared memory is anonymous, so
nothing remains in /dev/shm whatever happens. SIGHUP: log files are reopened here and the
signal passed on to every shard, which reopens its own (framework/logs.py).
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from . import control
from .logs import reopen_log_files
from .shard import ShardApp, ShardBoot, ShardSettings, shard_process_main
from .shm_layout import SharedLayout

__all__ = ["run", "default_cpus", "ACK_TIMEOUT"]

log = logging.getLogger("framework.smp")

ACK_TIMEOUT = 5.0
_STARTING, _READY, _RUNNING, _DEAD = "starting", "ready", "running", "dead"


def default_cpus() -> list[int]:
    """The CPUs this process may run on, in order."""
    return sorted(os.sched_getaffinity(0))


@dataclass
class _ShardState:
    shard_id: int
    cpu: int | None
    pid: int = 0
    sock: socket.socket | None = None
    state: str = _DEAD
    incarnation: int = 0
    deaths: deque[float] = field(default_factory=deque)


class _Supervisor:
    def __init__(
        self,
        app: ShardApp,
        shards: int,
        cpus: list[int],
        settings: ShardSettings,
        max_restarts: int,
        restart_window: float,
    ) -> None:
        self.app = app
        self.settings = settings
        self.layout = SharedLayout(shards, settings.ring_capacity)
        self.shared = self.layout.allocate()
        self.doorbells = [os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC) for _ in range(shards)]
        self.shards = [_ShardState(i, cpus[i % len(cpus)] if cpus else None) for i in range(shards)]
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self.selector = selectors.DefaultSelector()
        self.pid = os.getpid()
        self.stopping = False
        self.exit_code = 0
        self.initial_start_done = False
        # restart bookkeeping: the shard being restarted and the acks still awaited
        self.restart_queue: deque[int] = deque()
        self.restarting: int | None = None
        self.awaiting_acks: set[int] = set()
        self.ack_deadline = 0.0
        self._signals: deque[int] = deque()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    # ----- process management ------------------------------------------------------------

    def _fork(self, st: _ShardState) -> None:
        sup_end, shard_end = control.control_pair()
        st.incarnation += 1
        boot = ShardBoot(
            st.shard_id, len(self.shards), st.cpu, self.layout, self.shared, self.doorbells,
            shard_end, self.settings, self.app, self.pid, st.incarnation,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                self._close_supervisor_fds(sup_end)
                code = shard_process_main(boot)
            except BaseException:  # noqa: BLE001 - a shard must never return into the supervisor
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        shard_end.close()
        st.pid = pid
        st.sock = sup_end
        st.state = _STARTING
        self.selector.register(sup_end, selectors.EVENT_READ, st)
        log.info("shard %d started as pid %d (cpu %s)", st.shard_id, pid, st.cpu)

    def _close_supervisor_fds(self, own_sup_end: socket.socket) -> None:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        os.close(own_sup_end.detach())
        for st in self.shards:
            if st.sock is not None:
                os.close(st.sock.detach())
        # the selector's epoll fd is shared with the supervisor: close our copy, never unregister
        os.close(self.selector.fileno())  # type: ignore[attr-defined]
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._signals.append(signum)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for st in self.shards:
                if st.pid == pid:
                    self._shard_exited(st, status)
                    break

    def _shard_exited(self, st: _ShardState, status: int) -> None:
        how = (
            f"killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
            else f"exited with status {os.WEXITSTATUS(status)}"
        )
        st.pid = 0
        if st.sock is not None:
            self.selector.unregister(st.sock)
            st.sock.close()
            st.sock = None
        was = st.state
        st.state = _DEAD
        self.awaiting_acks.discard(st.shard_id)
        if self.stopping:
            log.info("shard %d %s", st.shard_id, how)
            return
        log.error("shard %d %s (was %s); restarting it", st.shard_id, how, was)
        now = time.monotonic()
        st.deaths.append(now)
        while st.deaths and now - st.deaths[0] > self.restart_window:
            st.deaths.popleft()
        if len(st.deaths) > self.max_restarts:
            log.critical(
                "shard %d died %d times in %.0fs: giving up", st.shard_id, len(st.deaths),
                self.restart_window,
            )
            self._begin_stop(1)
            return
        if self.restarting == st.shard_id:
            self.restarting = None  # died again while starting: start over
        if st.shard_id not in self.restart_queue:
            self.restart_queue.append(st.shard_id)

    def _advance_restarts(self) -> None:
        if self.stopping:
            return
        if self.restarting is not None:
            st = self.shards[self.restarting]
            if st.state == _DEAD and not self.awaiting_acks:
                self._reset_rings_with_dead(st.shard_id)
                self._fork(st)
            elif st.state == _DEAD and time.monotonic() > self.ack_deadline:
                log.error("shards %s did not acknowledge the death of shard %d in %.0fs",
                          sorted(self.awaiting_acks), st.shard_id, ACK_TIMEOUT)
                self.awaiting_acks.clear()
            return
        if not self.restart_queue:
            return
        k = self.restart_queue.popleft()
        self.restarting = k
        self.awaiting_acks = set()
        for st in self.shards:
            if st.shard_id != k and st.state != _DEAD and st.sock is not None:
                if control.send_control(st.sock, control.PEER_DOWN, k):
                    self.awaiting_acks.add(st.shard_id)
        self.ack_deadline = time.monotonic() + ACK_TIMEOUT
        self._advance_restarts()

    def _reset_rings_with_dead(self, k: int) -> None:
        """Both ends of the rings between k and another dead shard are gone: empty them here.
        (Live and starting shards empty their own ends on PEER_DOWN.)"""
        buf = memoryview(self.shared)
        for st in self.shards:
            j = st.shard_id
            if j != k and st.state == _DEAD:
                for src, dst in ((j, k), (k, j)):
                    self.layout.consumer(buf, src, dst).discard_unread()
                    self.layout.producer(buf, src, dst).set_waiting(False)

    # ----- control messages --------------------------------------------------------------

    def _on_control(self, st: _ShardState) -> None:
        assert st.sock is not None
        messages = control.recv_control(st.sock)
        if messages is None:
            return  # EOF: the process is exiting; SIGCHLD will tell us how
        for verb, *args in messages:
            if verb == control.READY:
                self._shard_ready(st)
            elif verb == control.PEER_DOWN_ACK:
                if args and args[0] == self.restarting:
                    self.awaiting_acks.discard(st.shard_id)
            elif verb == control.SHUTDOWN:
                self._begin_stop(int(args[0]) if args else 0)

    def _shard_ready(self, st: _ShardState) -> None:
        st.state = _READY
        if not self.initial_start_done:
            if all(s.state == _READY for s in self.shards):
                self.initial_start_done = True
                everyone = [s.shard_id for s in self.shards]
                for s in self.shards:
                    assert s.sock is not None
                    control.send_control(s.sock, control.START, everyone)
                    s.state = _RUNNING
                log.info("all %d shards running", len(self.shards))
            return
        live = [s.shard_id for s in self.shards if s.state in (_RUNNING, _READY)]
        assert st.sock is not None
        control.send_control(st.sock, control.START, live)
        st.state = _RUNNING
        for s in self.shards:
            if s is not st and s.state == _RUNNING and s.sock is not None:
                control.send_control(s.sock, control.PEER_UP, st.shard_id)
        if self.restarting == st.shard_id:
            self.restarting = None
        log.info("shard %d is back (incarnation %d)", st.shard_id, st.incarnation)

    # ----- stop --------------------------------------------------------------------------

    def _begin_stop(self, code: int) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.exit_code = code
        for st in self.shards:
            if st.sock is not None:
                control.send_control(st.sock, control.STOP)

    def _finish_stop(self) -> None:
        deadline = time.monotonic() + self.settings.stop_timeout + 1.0
        while any(st.pid for st in self.shards) and time.monotonic() < deadline:
            self._reap()
            if any(st.pid for st in self.shards):
                time.sleep(0.01)
        for st in self.shards:
            if st.pid:
                log.warning("shard %d did not stop in time: SIGKILL", st.shard_id)
                try:
                    os.kill(st.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        while any(st.pid for st in self.shards):
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            for st in self.shards:
                if st.pid == pid:
                    self._shard_exited(st, status)

    # ----- main loop ---------------------------------------------------------------------

    def run(self) -> int:
        old_handlers = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP)
        }
        old_wakeup = signal.set_wakeup_fd(self._wake_w)
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        try:
            for st in self.shards:
                self._fork(st)
            while not self.stopping:
                for key, _ in self.selector.select(timeout=0.5):
                    if key.data is None:
                        self._drain_wakeup()
                    elif key.data.sock is not None:
                        self._on_control(key.data)
                self._handle_signals()
                self._advance_restarts()
            self._finish_stop()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            self.selector.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
            for fd in self.doorbells:
                os.close(fd)
            self.shared.close()
        return self.exit_code

    def _drain_wakeup(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                raise

    def _handle_signals(self) -> None:
        self._reap()  # SIGCHLD or not: a cheap check
        while self._signals:
            signum = self._signals.popleft()
            if signum in (signal.SIGTERM, signal.SIGINT):
                log.info("signal %d: stopping all shards", signum)
                self._begin_stop(0)
            elif signum == signal.SIGHUP:
                reopen_log_files()
                log.info("SIGHUP: log files reopened; passing it on to every shard")
                for st in self.shards:
                    if st.pid:
                        try:
                            os.kill(st.pid, signal.SIGHUP)
                        except ProcessLookupError:
                            pass


def run(
    app: ShardApp,
    shards: int | None = None,
    *,
    cpus: list[int] | None = None,
    settings: ShardSettings | None = None,
    max_restarts: int = 5,
    restart_window: float = 60.0,
) -> int:
    """Run ``app`` on ``shards`` processes (default: one per CPU we may use) until stopped.
    Blocks; returns the exit status for the server process."""
    cpu_list = cpus if cpus is not None else default_cpus()
    count = shards if shards is not None else len(cpu_list)
    if count < 1:
        raise ValueError("need at least one shard")
    supervisor = _Supervisor(
        app, count, cpu_list, settings or ShardSettings(), max_restarts, restart_window
    )
    return supervisor.run()
