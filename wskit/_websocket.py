"""``WebSocket``: the nursery that owns every listener and connection."""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import signal
import ssl
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

import trio

from ._comms import Comms
from ._connection import Connection, ConnState, Opening
from ._core.protocol import encode_frame
from ._errors import Error, ErrorKind
from ._handler import FactoryAdapter, FactoryLike
from ._sender import Sender
from ._settings import Settings

__all__ = ["WebSocket", "parse_addr"]

log = logging.getLogger("wskit")

# accept() errors that mean "out of resources for now" (trio.serve_listeners
# retries the same ones after the same pause), not a broken listener.
_ACCEPT_RETRY = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_ACCEPT_RETRY_DELAY = 0.1


def parse_addr(addr: str | tuple[str, int]) -> tuple[str, int]:
    """``"host:port"`` or ``(host, port)``; IPv6 hosts as ``"[::1]:80"``."""
    if isinstance(addr, tuple):
        host, port = addr
    else:
        host, sep, port_text = addr.rpartition(":")
        if not sep or not port_text.isdigit():
            raise Error(f"invalid address {addr!r}: expected 'host:port'", ErrorKind.USAGE)
        port = int(port_text)
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not 0 <= int(port) <= 65535:
        raise Error(f"invalid port {port!r} in address {addr!r}", ErrorKind.USAGE)
    return host or "0.0.0.0", int(port)


class WebSocket:
    """Listens and connects; every connection is a task in its nursery.

    Use as ``async with WebSocket(factory, settings) as ws:``. Leaving the
    block waits until :meth:`shutdown` has been called (while listeners are
    running) and every connection has closed. Errors leave the block as a
    bare :class:`wskit.Error`, never wrapped in an exception group.
    """

    def __init__(self, factory: FactoryLike, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else Settings()
        self.factory = FactoryAdapter(factory)
        #: Server connections holding a ``max_connections`` slot.
        self.slots = 0
        self._open: dict[int, Connection] = {}
        self._all: dict[int, Connection] = {}
        self._listener_scopes: list[trio.CancelScope] = []
        self._nursery: trio.Nursery | None = None
        self._nursery_cm: Any = None
        self._system_scope = trio.CancelScope()
        self._thread_id: int | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._tasks = 0
        self._idle = trio.lowlevel.ParkingLot()
        self._closing = False
        self._shutdown_requested = False
        self._shutdown_done: trio.Event | None = None
        self._entered = False
        self._comms = Comms(self)

    # ------------------------------------------------------------------
    # Context manager

    async def __aenter__(self) -> WebSocket:
        if self._entered:
            raise Error("a WebSocket can be entered only once", ErrorKind.USAGE)
        self._entered = True
        self._thread_id = threading.get_ident()
        self._token = trio.lowlevel.current_trio_token()
        self._shutdown_done = trio.Event()
        self._nursery_cm = trio.open_nursery()
        self._nursery = await self._nursery_cm.__aenter__()
        if (self.settings.shutdown_on_interrupt
                and threading.current_thread() is threading.main_thread()):
            # Before any listen(): a signal that arrives while binding must
            # already mean "shut down", not KeyboardInterrupt.
            await self._nursery.start(self._watch_signals)
        if self._shutdown_requested:
            self._shutdown_now()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        assert self._shutdown_done is not None
        if exc is None:
            try:
                if self._listener_scopes and not self._closing:
                    await self._shutdown_done.wait()
                await self._wait_idle()
                self._shutdown_now()
                await self._shutdown_done.wait()
            except BaseException as inner:  # e.g. Cancelled from outside
                exc_type, exc, tb = type(inner), inner, inner.__traceback__
        self._system_scope.cancel()
        leaf: BaseException | None = None
        try:
            return bool(await self._nursery_cm.__aexit__(exc_type, exc, tb))
        except BaseExceptionGroup as group:
            leaf = _single(group)
            if leaf is None:
                raise
        raise leaf

    async def _watch_signals(self, task_status: trio.TaskStatus[None]) -> None:
        with self._system_scope:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                task_status.started()
                async for signum in signals:
                    if self._closing:
                        log.warning("second %s: stopping now", signal.Signals(signum).name)
                        assert self._nursery is not None
                        self._nursery.cancel_scope.cancel()
                        return
                    log.info("%s received: shutting down", signal.Signals(signum).name)
                    self._shutdown_now()

    # ------------------------------------------------------------------
    # Public API

    async def listen(
        self, addr: str | tuple[str, int], ssl_context: ssl.SSLContext | None = None
    ) -> tuple[str, int]:
        """Start accepting connections on ``addr``; returns the bound (host, port).

        Returns once the socket listens (port 0 picks a free port). May be
        called several times. Raises ``Error(kind=IO)`` if the address can't
        be bound.
        """
        nursery = self._require_nursery()
        host, port = parse_addr(addr)
        try:
            listeners = await trio.open_tcp_listeners(port, host=host)
        except OSError as exc:
            raise Error(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                        ErrorKind.IO) from exc
        scope = trio.CancelScope()
        self._listener_scopes.append(scope)
        if self._closing:
            scope.cancel()
        nursery.start_soon(self._serve, listeners, scope, ssl_context)
        bound = listeners[0].socket.getsockname()
        scheme = "wss" if ssl_context is not None else "ws"
        for listener in listeners:
            name = listener.socket.getsockname()
            log.info("listening on %s://%s:%d", scheme, name[0], name[1])
        return bound[0], bound[1]

    async def connect(self, url: str, ssl_context: ssl.SSLContext | None = None) -> Sender:
        """Open a client connection; returns its Sender after ``on_open``.

        Raises :class:`wskit.Error` if it can't open: ``IO`` (refused,
        timeout), ``HTTP`` with ``status`` (handshake rejected), ``SSL``,
        ``PROTOCOL`` (invalid answer), ``USAGE`` (bad URL), ``CUSTOM``
        (a hook raised).
        """
        self._require_nursery()
        if self._closing:
            raise Error("the WebSocket is shutting down", ErrorKind.USAGE)
        conn, opening = self._start_client(url, ssl_context)
        await opening.done.wait()
        if opening.error is not None:
            raise opening.error
        return conn.sender

    def broadcaster(self) -> Sender:
        """A Sender whose ``send``/``ping``/``close`` act on every open connection."""
        return Sender(self, None)

    def shutdown(self) -> None:
        """Close every connection with 1001 and stop listening. Thread-safe,
        idempotent; returns at once (leaving the ``async with`` block waits)."""
        if self._token is None:
            self._shutdown_requested = True
            return
        with contextlib.suppress(Error):  # already finished: nothing to shut down
            self._call(self._shutdown_now)

    @property
    def closing(self) -> bool:
        """Whether shutdown has begun."""
        return self._closing

    @property
    def connections(self) -> int:
        """Number of open connections."""
        return len(self._open)

    # ------------------------------------------------------------------
    # Internals used by Connection and Sender

    def _require_nursery(self) -> trio.Nursery:
        if self._nursery is None:
            raise Error("use the WebSocket inside 'async with WebSocket(...) as ws:'",
                        ErrorKind.USAGE)
        return self._nursery

    async def _serve(self, listeners: list[trio.SocketListener], scope: trio.CancelScope,
                     ssl_context: ssl.SSLContext | None) -> None:
        nursery = self._require_nursery()
        with scope:
            async with trio.open_nursery() as accepting:
                for listener in listeners:
                    accepting.start_soon(self._accept, listener, nursery, ssl_context)

    async def _accept(self, listener: trio.SocketListener, nursery: trio.Nursery,
                      ssl_context: ssl.SSLContext | None) -> None:
        """trio.serve_listeners' accept loop, without the aclose_forcefully it
        wraps around every handler (a cancel scope and a checkpoint: ~7% of a
        handshake): a Connection always closes its own stream."""
        async with listener:
            while True:
                try:
                    stream: trio.abc.Stream = await listener.accept()
                except OSError as exc:
                    if exc.errno not in _ACCEPT_RETRY:
                        raise
                    log.error("accept failed: %s; retrying in %ss",
                              os.strerror(exc.errno or 0), _ACCEPT_RETRY_DELAY)
                    await trio.sleep(_ACCEPT_RETRY_DELAY)
                    continue
                if ssl_context is not None:
                    stream = trio.SSLStream(stream, ssl_context, server_side=True,
                                            https_compatible=True)
                nursery.start_soon(self.serve_stream, stream)

    def _start_client(self, url: str, ssl_context: ssl.SSLContext | None
                      ) -> tuple[Connection, Opening]:
        nursery = self._require_nursery()
        conn = Connection(self, client=True)
        opening = Opening()
        self._track(conn)

        async def run() -> None:
            try:
                await conn.run_client(url, ssl_context, opening)
            finally:
                self._untrack()

        nursery.start_soon(run)
        return conn, opening

    def _connect_soon(self, url: str) -> None:
        if not self._closing:
            self._start_client(url, None)

    def _track(self, conn: Connection) -> None:
        self._tasks += 1
        self._all[conn.id] = conn

    def _untrack(self) -> None:
        self._tasks -= 1
        if not self._tasks:
            self._idle.unpark_all()

    async def _wait_idle(self) -> None:
        while self._tasks:
            await self._idle.park()

    def _opened(self, conn: Connection) -> None:
        self._open[conn.id] = conn

    def _closed(self, conn: Connection) -> None:
        self._open.pop(conn.id, None)
        self._all.pop(conn.id, None)

    def _broadcast(self, data: str | bytes) -> None:
        # Server connections without compression send the very same bytes:
        # the frame is encoded once for all of them.
        frame: bytes | None = None
        for conn in list(self._open.values()):
            if conn.state is ConnState.OPEN and conn.core is not None:
                try:
                    if conn.core.shares_frames:
                        if frame is None:
                            frame = encode_frame(data)
                        conn.send_frame(frame)
                    else:
                        conn.send(data)
                except Error as err:
                    conn.report(err)

    def _close_all(self, code: int, reason: str) -> None:
        for conn in list(self._open.values()):
            conn.close(code, reason)

    def _control_all(self, ping: bool, data: bytes) -> None:
        for conn in list(self._open.values()):
            if conn.state is ConnState.OPEN:
                conn.control(ping, data)

    def _in_trio_thread(self) -> bool:
        return threading.get_ident() == self._thread_id

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn`` now if in the Trio thread, else soon in it (in order)."""
        if self._in_trio_thread():
            fn(*args)
        else:
            self._run_soon(fn, *args)

    def _run_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        token = self._token
        if token is None:
            raise Error("the WebSocket is not running", ErrorKind.QUEUE)
        try:
            token.run_sync_soon(self._guarded, fn, args)
        except trio.RunFinishedError:
            raise Error("the WebSocket is no longer running", ErrorKind.QUEUE) from None

    @staticmethod
    def _guarded(fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        # Runs in the Trio thread on behalf of another thread: an exception
        # here would crash the whole run, so it is logged instead.
        try:
            fn(*args)
        except Error as err:
            log.warning("call from another thread failed: %s", err)
        except Exception:
            log.exception("call from another thread failed")

    def _shutdown_now(self) -> None:
        if self._closing:
            return
        self._closing = True
        for scope in self._listener_scopes:
            scope.cancel()
        assert self._nursery is not None
        self._nursery.start_soon(self._shutdown_task)

    async def _shutdown_task(self) -> None:
        on_shutdown = self.factory.on_shutdown
        if on_shutdown is not None:
            try:
                on_shutdown()
            except Exception:
                log.exception("Factory.on_shutdown raised")
        for conn in list(self._all.values()):
            conn.begin_shutdown()
        # Each connection bounds its own closing handshake by close_timeout;
        # this outer bound (twice that) only catches what slipped through.
        grace = self.settings.close_timeout
        with trio.move_on_after(math.inf if grace is None else 2 * grace + 1):
            await self._wait_idle()
        for conn in list(self._all.values()):
            log.warning("connection %d did not close in time: aborting it", conn.id)
            conn.abort()
        await self._wait_idle()
        assert self._shutdown_done is not None
        self._shutdown_done.set()

    async def serve_stream(self, stream: trio.abc.Stream) -> None:
        """Run one server connection on any Trio stream, as a listener would.

        For test kits and custom transports: ``wskit.testing`` runs the server
        side of an in-memory stream pair through it.
        Returns when the connection is over; never raises.
        """
        conn = Connection(self, client=False)
        self._track(conn)
        try:
            await conn.serve(stream)
        finally:
            self._untrack()

    @property
    def comms(self) -> Comms:
        """Send to any open connection by id, from any task or thread:
        ``ws.comms.send(connection_id, msg)``, ``broadcast(msg, exclude=…)``,
        ``room(room_id).send(recipient, msg)``, ``ids``. See :class:`wskit.Comms`."""
        return self._comms


def _single(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception inside (nested) groups, or None if there are several."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for sub in exc.exceptions:
                walk(sub)
        else:
            leaves.append(exc)

    walk(group)
    return leaves[0] if len(leaves) == 1 else None
