"""The supervisor of ``--workers N``: N worker processes serving one port.

Theory of operation
-------------------

The supervisor binds the port itself, once (so a port in use is one clear
error, and port 0 becomes one concrete port for every worker and every
restart), then starts N workers (``python -m wskit serve … --worker SEAT``,
see ``_worker.py``) that inherit that socket. It never imports the
application and never touches a client.

How the workers share the port. On Linux the supervisor's socket is bound
with ``SO_REUSEPORT`` and does not listen; each worker binds a listening
socket of its own in the same group, and the kernel spreads new connections
across the group by a hash of their addresses. Elsewhere (where
``SO_REUSEPORT`` does not spread connections) the supervisor's socket
listens and every worker accepts from it. Measured on a 2-core machine
(``bench/workers_spread.py``, 200 connections held open, three runs): with
2 workers the hash gave 95/105 to 98/102, one shared socket 82/118 to
92/108; with 4 workers 35 to 57 each, against 21 to 79 (the first worker the
kernel wakes wins the shared socket, and which one that is depends on the
scheduler: the imbalance Node's cluster module documents). WebSocket
connections live long, so an uneven start stays uneven: hence
``SO_REUSEPORT`` where it works.
Its costs: connections still waiting in a dying worker's accept queue are
reset (with one shared socket another worker would take them), and any
process of the same user could join the group.

Restarts: a worker that exits when nobody asked it to is replaced after a
back-off (:class:`RestartPolicy`): 0.5 s, doubling for each exit within
``stable_after`` seconds of its start, at most 30 s. A worker that exits
before it reported ``ready`` (or is still not ready after ``start_timeout``,
and is killed) failed at start-up; ``max_start_failures`` of
those in a row on one seat, or one with exit status 2 (a usage error, which
no retry will fix), stop the whole group with a non-zero status: a
crash loop ends with a clear error, never spins forever.

Stopping: on SIGINT or SIGTERM the supervisor closes each worker's control
socket, which each worker takes as "shut down gracefully" (1001 to every
client, ``on_shutdown`` hooks), waits for them all (at most
``stop_timeout``; then SIGKILL and status 1) and returns 0. A second signal
sends SIGTERM to the workers: stop now. Workers run in their own session,
so a Ctrl-C at a terminal reaches only the supervisor, which stops each
worker exactly once.

Logging (logger ``wskit.supervisor``): INFO for workers ready and stopping,
WARNING for a worker that exited unasked and its replacement, ERROR for
giving up.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Sequence

import trio

from ._errors import Error, ErrorKind
from ._worker import READY, REUSE_PORT, WorkerSeat, bind

__all__ = ["RestartPolicy", "Supervisor", "describe_exit", "open_sockets", "stop_timeout_for"]

log = logging.getLogger("wskit.supervisor")

@dataclasses.dataclass(frozen=True, kw_only=True)
class RestartPolicy:
    """When a worker that exited unasked is replaced, and when to give up."""

    #: Seconds before the first restart of a seat.
    first_delay: float = 0.5
    #: The back-off never exceeds this many seconds.
    max_delay: float = 30.0
    #: A worker that ran this long before exiting resets its seat's back-off.
    stable_after: float = 30.0
    #: Exits before ``ready``, in a row on one seat, before the group gives up.
    max_start_failures: int = 5
    #: Seconds a worker may take to become ready (import, bind) before it is
    #: killed, which counts as a start-up failure. ``None``: no limit.
    start_timeout: float | None = 60.0

    def delay(self, quick_exits: int) -> float:
        """Seconds before the restart that follows ``quick_exits`` exits in a row
        (each within ``stable_after`` of its start; 1 for the first)."""
        return min(self.first_delay * 2.0 ** max(quick_exits - 1, 0), self.max_delay)


def describe_exit(code: int) -> str:
    """``exited with status 3`` / ``was killed by SIGKILL``."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with status {code}"


def open_sockets(host: str, port: int, *, reuse_port: bool = REUSE_PORT
                 ) -> list[socket.socket]:
    """The sockets the workers inherit for ``host:port``, one per address
    family (like ``trio.open_tcp_listeners``).

    With ``reuse_port`` (the default on Linux) they are bound with
    ``SO_REUSEPORT`` but not listening: they hold the port, and each worker
    binds a listening socket of its own beside them. Without, they are
    listening sockets that every worker accepts from. Port 0 picks one free
    port for them all. Raises ``Error(IO)`` when the address can't be bound
    (in use, no permission, unknown host).
    """
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise Error(f"cannot listen on {host}:{port}: {exc.strerror}", ErrorKind.IO) from exc
    sockets: list[socket.socket] = []
    families: set[int] = set()
    try:
        for family, _, _, _, address in infos:
            if family in families:
                continue
            families.add(family)
            if port == 0 and sockets:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sockets.append(bind(family, address, reuse_port=reuse_port,
                                listen=not reuse_port))
            sockets[-1].set_inheritable(True)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise Error(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                    ErrorKind.IO) from exc
    return sockets


class _Worker:
    """One running worker process and the supervisor's end of its control socket."""

    def __init__(self, seat: WorkerSeat, process: trio.Process,
                 control: trio.socket.SocketType) -> None:
        self.seat = seat
        self.process = process
        self.control = control
        self.started = trio.current_time()
        self.stopping = False

    @property
    def name(self) -> str:
        return f"{self.seat.name} (pid {self.process.pid})"

    def stop(self) -> None:
        """Ask for a graceful stop: the worker sees the end of its control socket."""
        if not self.stopping:
            self.stopping = True
            with contextlib.suppress(OSError):
                self.control.shutdown(socket.SHUT_WR)

    async def wait_ready(self) -> bool:
        """Whether it reported ``ready`` (False: it exited, or was stopped, first)."""
        try:
            return (await self.control.recv(64)).startswith(READY)
        except OSError:
            return False


class Supervisor:
    """Runs ``command`` as N workers sharing ``sockets``; see the module docstring.

    ``command`` is the worker's command line without ``--worker`` (which
    the supervisor appends); ``payload`` is sent to each worker at start
    (see ``_worker.py``). :meth:`run` blocks until the group stopped and
    returns the exit status; ``error`` then says why when it is not 0.
    """

    def __init__(self, command: Sequence[str], count: int, sockets: Sequence[socket.socket],
                 *, payload: bytes = b"", stop_timeout: float | None = 30.0,
                 policy: RestartPolicy | None = None) -> None:
        if count < 1:
            raise Error(f"workers must be at least 1, got {count}", ErrorKind.USAGE)
        self.command = list(command)
        self.count = count
        self.sockets = list(sockets)
        self.payload = payload
        self.stop_timeout = stop_timeout
        self.policy = policy if policy is not None else RestartPolicy()
        self.status = 0
        #: Why the group stopped with a non-zero status (``None`` otherwise).
        self.error: str | None = None
        self._workers: dict[int, _Worker] = {}
        self._stopping = False
        self._stop_requested = trio.Event()
        self._first_ready = trio.Event()
        self._nursery: trio.Nursery | None = None

    def run(self) -> int:
        """Start the workers and supervise them until SIGINT/SIGTERM or a
        crash loop; returns the exit status. Must run in the main thread
        (it handles the signals)."""
        if os.name != "posix":
            raise Error("several workers need a POSIX system (they inherit the port's "
                        "socket); use one process per port here", ErrorKind.USAGE)
        if threading.current_thread() is not threading.main_thread():
            raise Error("the supervisor of several workers handles SIGINT and SIGTERM, so it "
                        "must run in the main thread", ErrorKind.USAGE)
        return trio.run(self._main)

    async def _main(self) -> int:
        self._stop_requested = trio.Event()
        self._first_ready = trio.Event()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self._watch_signals)
            async with trio.open_nursery() as seats:
                for index in range(1, self.count + 1):
                    seats.start_soon(self._keep, index)
            nursery.cancel_scope.cancel()
        return self.status

    async def _watch_signals(self, task_status: trio.TaskStatus[None]) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                name = signal.Signals(signum).name
                if self._stopping:
                    log.warning("second %s: stopping the workers now", name)
                    for worker in list(self._workers.values()):
                        with contextlib.suppress(OSError):
                            worker.process.send_signal(signal.SIGTERM)
                    continue
                log.info("%s received: stopping %d workers", name, len(self._workers))
                self._stop()

    def _stop(self, status: int = 0, error: str | None = None) -> None:
        if self._stopping:
            return
        self._stopping = True
        self.status, self.error = status, error
        self._stop_requested.set()
        self._first_ready.set()  # seats still waiting for the first worker go home
        for worker in list(self._workers.values()):
            worker.stop()
        if self.stop_timeout is not None:
            assert self._nursery is not None
            self._nursery.start_soon(self._kill_after, self.stop_timeout)

    def _give_up(self, status: int, error: str) -> None:
        log.error("%s", error)
        self._stop(status, error)

    async def _kill_after(self, seconds: float) -> None:
        await trio.sleep(seconds)
        for worker in list(self._workers.values()):
            log.error("%s did not stop within %ss: killing it", worker.name, seconds)
            worker.process.kill()
            self.status = self.status or 1
            self.error = self.error or f"{worker.name} did not stop within {seconds}s"

    async def _keep(self, index: int) -> None:
        """Keep seat ``index`` filled until the group stops."""
        if index > 1:
            # The first worker alone until it is ready: a broken application
            # fails once, with one error message, not N times at once.
            await self._first_ready.wait()
        failures = quick = 0
        policy = self.policy
        while not self._stopping:
            worker = await self._spawn(index)
            if worker is None:
                return
            ready = False
            with trio.move_on_after(policy.start_timeout or math.inf) as waiting:
                ready = await worker.wait_ready()
            if waiting.cancelled_caught:
                log.error("%s was not ready after %ss: killing it", worker.name,
                          policy.start_timeout)
                worker.process.kill()
            if ready:
                failures = 0
                log.info("%s ready", worker.name)
                self._first_ready.set()
            code = await worker.process.wait()
            del self._workers[index]
            worker.control.close()
            uptime = trio.current_time() - worker.started
            if worker.stopping:
                level = logging.INFO if code == 0 else logging.WARNING
                log.log(level, "%s stopped: it %s", worker.name, describe_exit(code))
                return
            if not ready:
                failures += 1
                if code == 2:
                    self._give_up(2, f"{worker.name} exited with status 2 at start-up (a "
                                     "usage error, written above): not serving")
                    return
                if failures >= policy.max_start_failures:
                    self._give_up(1, f"{worker.name} {describe_exit(code)} before it was "
                                     f"ready, {failures} times in a row: giving up (its "
                                     "output above says why)")
                    return
            quick = quick + 1 if uptime < policy.stable_after else 1
            delay = policy.delay(quick)
            log.warning("%s %s%s; starting a new one in %.3gs", worker.name,
                        describe_exit(code), "" if ready else " before it was ready", delay)
            with trio.move_on_after(delay):
                await self._stop_requested.wait()

    async def _spawn(self, index: int) -> _Worker | None:
        parent, child = socket.socketpair()
        seat = WorkerSeat(index, self.count, child.fileno(),
                          tuple(sock.fileno() for sock in self.sockets))
        try:
            process = await trio.lowlevel.open_process(
                [*self.command, "--worker", str(seat)],
                pass_fds=(child.fileno(), *seat.listen_fds),
                stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            parent.close()
            self._give_up(1, f"cannot start {seat.name}: {exc}")
            return None
        finally:
            child.close()
        control = trio.socket.from_stdlib_socket(parent)
        worker = _Worker(seat, process, control)
        self._workers[index] = worker
        log.debug("%s started", worker.name)
        message = len(self.payload).to_bytes(4, "big") + self.payload
        with contextlib.suppress(OSError):  # it died already: wait_ready says so
            while message:
                message = message[await control.send(message):]
        if self._stopping:
            worker.stop()
        return worker


def stop_timeout_for(close_timeout: float | None) -> float | None:
    """How long the supervisor waits for the workers to stop: each worker's
    own bound on its shutdown (twice ``close_timeout``, plus one second)
    with a margin; ``None`` (wait as long as they take) without a close
    timeout."""
    return None if close_timeout is None else 2 * close_timeout + 10

