"""``WebSocket``: the nursery that owns every listener and connection."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import signal
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import trio

from ._core.http import Request, Response
from ._errors import Error, ErrorKind
from ._handler import FactoryAdapter, FactoryLike
from ._hub.comms import Comms
from ._hub.hub import Hub
from ._io import client, server
from ._io.client import Opening
from ._io.driver import Connection, Host
from ._io.portal import Portal
from ._io.reconnect import Session, policy_from
from ._io.stats import Stats
from ._sender import Sender
from ._settings import Reconnect, Settings

if TYPE_CHECKING:
    from .metrics import Metrics

__all__ = ["WebSocket", "parse_addr"]

log = logging.getLogger("wskit")


def parse_addr(addr: str | tuple[str, int]) -> tuple[str, int]:
    """``"host:port"`` or ``(host, port)``; IPv6 hosts as ``"[::1]:80"``."""
    if isinstance(addr, tuple):
        host, port = addr
    elif "://" in addr:
        raise Error(f"invalid address {addr!r}: listen() takes 'host:port' (for example "
                    "'127.0.0.1:9000'), not a URL", ErrorKind.USAGE)
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
        self._portal = Portal(self.settings.max_thread_queue)
        self.hub = Hub(self._portal, spawn=self.spawn, connect=self._connect_soon,
                       shutdown=self.shutdown, closing=lambda: self._closing)
        self._registry = registry = self.hub.registry
        # What a connection asks of its host (``_io.driver.Host``), straight
        # to the registry: a handshake makes five of these calls.
        self.take_slot = registry.take_slot
        self.release_slot = registry.release_slot
        self.opened = registry.opened
        #: What the connections did (the log lines, the totals that metrics read).
        self.stats = Stats()
        self._metrics: Metrics | None = None
        if self.settings.metrics_path is not None:
            self._metrics = self.metrics  # now: a missing prometheus-client says so at once
        self._comms = Comms(self.hub)
        self._listener_scopes: list[trio.CancelScope] = []
        self._nursery: trio.Nursery | None = None
        self._nursery_cm: Any = None
        self._system_scope = trio.CancelScope()
        self._tasks = 0
        self._idle = trio.lowlevel.ParkingLot()
        self._closing = False
        self._shutdown_requested = False
        self._shutdown_done: trio.Event | None = None
        self._entered = False
        self._stop_backplane: Callable[[], None] | None = None

    # ------------------------------------------------------------------
    # Context manager

    async def __aenter__(self) -> WebSocket:
        if self._entered:
            raise Error("a WebSocket can be entered only once", ErrorKind.USAGE)
        self._entered = True
        self._portal.start()
        self._shutdown_done = trio.Event()
        self._nursery_cm = trio.open_nursery()
        self._nursery = await self._nursery_cm.__aenter__()
        if (self.settings.shutdown_on_interrupt
                and threading.current_thread() is threading.main_thread()):
            # Before any listen(): a signal that arrives while binding must
            # already mean "shut down", not KeyboardInterrupt.
            await self._nursery.start(self._watch_signals)
        if self.settings.backplane is not None:
            try:
                await self._join_cluster(self.settings.backplane)
            except BaseException:
                self._system_scope.cancel()
                self._nursery.cancel_scope.cancel()
                with contextlib.suppress(BaseException):
                    await self._nursery_cm.__aexit__(None, None, None)
                self._portal.stop()
                raise
        if self._shutdown_requested:
            self._shutdown_now()
        return self

    async def _join_cluster(self, url: str) -> None:
        """Connect to the backplane and take a node number, before any
        connection exists (their ids carry it). Raises ``Error(BACKPLANE)``
        if Redis cannot be reached."""
        try:
            from ._hub.redis import RedisBackplane  # here: coredis is optional
        except ImportError as exc:
            raise Error(f"Settings.backplane needs coredis ({exc}): pip install "
                        "'wskit[redis]'", ErrorKind.USAGE) from None
        hub = self.hub
        backplane = RedisBackplane(url, lease=self.settings.backplane_lease,
                                   registry=hub.registry, portal=self._portal,
                                   report=hub.report)
        assert self._nursery is not None
        await self._nursery.start(backplane.run)
        self._stop_backplane = backplane.stop
        hub.backplane = backplane
        hub.registry.use_ids(iter(backplane.next_id, 0))

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
        if self._stop_backplane is not None:
            self._stop_backplane()  # after every connection closed: their leaves went out
        leaf: BaseException | None = None
        try:
            return bool(await self._nursery_cm.__aexit__(exc_type, exc, tb))
        except BaseExceptionGroup as group:
            leaf = _single(group)
            if leaf is None:
                raise
        finally:
            self._portal.stop()  # threads waiting to hand over wake and raise
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
                        if self._stop_backplane is not None:
                            self._stop_backplane()  # shielded from the cancel
                        return
                    log.info("%s received: shutting down", signal.Signals(signum).name)
                    self._shutdown_now()

    # ------------------------------------------------------------------
    # Public API

    async def listen(
        self, addr: str | tuple[str, int] | socket.socket,
        ssl_context: ssl.SSLContext | None = None,
    ) -> tuple[str, int]:
        """Start accepting connections on ``addr``; returns the bound (host, port).

        Returns once the socket listens (port 0 picks a free port). May be
        called several times. Raises ``Error(kind=IO)`` if the address can't
        be bound.

        ``addr`` may also be a ``socket.socket`` that is already bound and
        listening, e.g. one inherited from a supervisor or from systemd's
        socket activation: the WebSocket accepts on it and closes it at
        shutdown (other processes holding the same socket keep it open).
        """
        nursery = self._require_nursery()
        if isinstance(addr, socket.socket):
            listeners = [server.adopt_listener(addr)]
        else:
            host, port = parse_addr(addr)
            listeners = await server.open_listeners(host, port)
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

    async def connect(self, url: str, ssl_context: ssl.SSLContext | None = None, *,
                      reconnect: Reconnect | bool | None = None) -> Sender:
        """Open a client connection; returns its Sender after ``on_open``.

        Raises :class:`wskit.Error` if it can't open: ``IO`` (refused,
        timeout), ``HTTP`` with ``status`` (handshake rejected), ``SSL``,
        ``PROTOCOL`` (invalid answer), ``USAGE`` (bad URL), ``CUSTOM``
        (a hook raised).

        With ``reconnect=`` (a :class:`wskit.Reconnect`, or ``True`` for its
        defaults) the same handler and Sender carry on over new connections
        whenever one drops; failed attempts are retried too, so this returns
        once the first connection is open, and raises only if the policy
        gives up before that (the last attempt's error).
        """
        self._require_nursery()
        if self._closing:
            raise Error("the WebSocket is shutting down", ErrorKind.USAGE)
        sender, opening = self._start_client(url, ssl_context, policy_from(reconnect))
        await opening.done.wait()
        if opening.error is not None:
            raise opening.error
        return sender

    def broadcaster(self) -> Sender:
        """A Sender whose ``send``/``ping``/``close`` act on every open connection."""
        return Sender(None, self.hub, self._comms)

    def shutdown(self) -> None:
        """Close every connection with 1001 and stop listening. Thread-safe,
        idempotent; returns at once (leaving the ``async with`` block waits)."""
        if not self._portal.running:
            self._shutdown_requested = True
            return
        with contextlib.suppress(Error):  # already finished: nothing to shut down
            self._portal.call(self._shutdown_now)

    @property
    def closing(self) -> bool:
        """Whether shutdown has begun."""
        return self._closing

    @property
    def connections(self) -> int:
        """Number of open connections."""
        return len(self._registry.open)

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``fn(*args)`` in the WebSocket's nursery (in its Trio thread).

        For layers built on wskit (rooms) and the connections themselves;
        raises ``Error(USAGE)`` outside the ``async with`` block."""
        self._require_nursery().start_soon(fn, *args)

    # ------------------------------------------------------------------
    # What a connection needs from its WebSocket (``_io.driver.Host``)

    @property
    def slots_in_use(self) -> int:
        return self._registry.slots_in_use

    def ended(self, conn: Connection) -> None:
        self._registry.ended(conn)
        self.stats.connection_ended(conn)  # no await between: scrapes never go backwards

    def own_answer(self, request: Request) -> Response | None:
        """Answers ``Settings.health_path`` and ``metrics_path`` (GET or HEAD,
        query ignored), before the origin check and the factory."""
        if request.method not in ("GET", "HEAD") or request.is_websocket:
            return None
        path = request.path.partition("?")[0]
        settings = self.settings
        if path == settings.health_path:
            # Once shutting down the port no longer accepts: the check fails then.
            answer = Response(200, "ok\n", [("Cache-Control", "no-store")])
        elif path == settings.metrics_path:
            answer = self.metrics.response(request.headers.get("Accept"))
        else:
            return None
        if request.method == "HEAD":  # the same head, no body (RFC 9110 section 9.3.2)
            return Response(answer.status, b"", answer.headers.raw_items())
        return answer

    @property
    def metrics(self) -> Metrics:
        """This WebSocket's Prometheus metrics (``wskit.metrics.Metrics``),
        made on first use. Raises ``Error(USAGE)`` without prometheus-client
        (``pip install 'wskit[metrics]'``)."""
        if self._metrics is None:
            from .metrics import Metrics  # the optional extra, imported only when asked for

            self._metrics = Metrics(self.hub, self.stats)
        return self._metrics

    def connection_lost(self, handler: Any) -> None:
        lost = self.factory.connection_lost
        if lost is not None:
            try:
                lost(handler)
            except Exception:
                log.exception("Factory.connection_lost raised")

    # ------------------------------------------------------------------
    # Internals

    def _require_nursery(self) -> trio.Nursery:
        if self._nursery is None:
            raise Error("use the WebSocket inside 'async with WebSocket(...) as ws:'",
                        ErrorKind.USAGE)
        return self._nursery

    def _new_connection(self, *, client: bool, host: Host | None = None
                        ) -> tuple[Connection, Sender]:
        conn = Connection(host or self, client=client, connection_id=self._registry.new_id())
        sender = Sender(conn.outlet, self.hub, self._comms)
        made = self.factory.client_connected if client else self.factory.server_connected
        conn.make_handler = functools.partial(made, sender)
        self._tasks += 1
        self._registry.track(conn)
        return conn, sender

    def _untrack(self) -> None:
        self._tasks -= 1
        if not self._tasks:
            self._idle.unpark_all()

    async def _serve(self, listeners: list[trio.SocketListener], scope: trio.CancelScope,
                     ssl_context: ssl.SSLContext | None) -> None:
        nursery = self._require_nursery()
        with scope:
            async with trio.open_nursery() as accepting:
                for listener in listeners:
                    accepting.start_soon(server.accept_loop, listener, nursery, ssl_context,
                                         self.serve_stream)

    def _start_client(self, url: str, ssl_context: ssl.SSLContext | None,
                      reconnect: Reconnect | None = None) -> tuple[Sender, Opening]:
        nursery = self._require_nursery()
        opening = Opening()
        session: Session | None = None
        if reconnect is not None:
            session = Session(self, reconnect, url, ssl_context, opening,
                              track=self._registry.track)
        conn, sender = self._new_connection(client=True, host=session)

        async def run() -> None:
            try:
                if session is None:
                    await client.run_client(conn, url, ssl_context, opening)
                else:
                    await session.run(conn)
            finally:
                self._untrack()

        nursery.start_soon(run)
        return sender, opening

    def _connect_soon(self, url: str, reconnect: Reconnect | None = None) -> None:
        if not self._closing:
            self._start_client(url, None, reconnect)

    async def _wait_idle(self) -> None:
        while self._tasks:
            await self._idle.park()

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
        open_now = len(self._registry.open)
        for conn in list(self._registry.connections.values()):
            conn.begin_shutdown()
        # Each connection bounds its own closing handshake by close_timeout;
        # this outer bound (twice that) only catches what slipped through.
        grace = self.settings.close_timeout
        with trio.move_on_after(math.inf if grace is None else 2 * grace + 1):
            await self._wait_idle()
        for conn in list(self._registry.connections.values()):
            log.warning("connection %d did not close in time: aborting it", conn.id)
            conn.abort()
        await self._wait_idle()
        stats = self.stats
        if self._listener_scopes or stats.opened:  # it served something: sum it up
            refused = sum(stats.handshake_failures.values())
            log.info("shut down: closed %d connections (%d open at shutdown); %d opened in "
                     "all, %d handshakes refused", stats.closed_total, open_now, stats.opened,
                     refused, extra={"event": "shutdown", "closed": stats.closed_total,
                                     "open_at_shutdown": open_now, "opened": stats.opened,
                                     "refused": refused})
        assert self._shutdown_done is not None
        self._shutdown_done.set()

    async def serve_stream(self, stream: trio.abc.Stream) -> None:
        """Run one server connection on any Trio stream, as a listener would.

        For test kits and custom transports: ``wskit.testing`` runs the server
        side of an in-memory stream pair through it. Returns when the
        connection is over; never raises.
        """
        conn, _ = self._new_connection(client=False)
        try:
            await server.serve(conn, self, stream)
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
