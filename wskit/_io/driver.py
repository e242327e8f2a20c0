"""The driver of one connection: its life as a state machine.

One task per connection reads, feeds the sans-I/O :class:`ConnectionCore`,
and hands the events to the handler through a :class:`Dispatcher`, one at a
time (the read loop itself, the per-message path, is in ``inbound.py``).
The opening handshake is done by ``server.accept`` or ``client.dial``; what
a ``Sender`` does goes through the connection's :class:`Outlet`; bytes move
through its :class:`Transport`. Timers, keepalive and the writer run in
the WebSocket's nursery under cancel scopes that this connection cancels
when it ends (no nursery per connection: ~6% of a handshake, ~0.4 KB idle).

One cancel scope spans the connection: it carries the handshake, close and
drain deadlines, and its expiry or cancellation (``abort()``, a failed
write, a keepalive timeout) ends the connection at once, with 1006 unless
the closing handshake had completed. ``end()`` always runs last: it reports
data that could not be sent, closes the stream, and calls ``on_close``
exactly once.

Its phases and their moves are in ``phase.py``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import trio

from .._core.forwarded import ProxyPolicy
from .._core.handshake import make_extensions
from .._core.http import Handshake, Request, Response
from .._core.messages import CloseCode
from .._core.protocol import (
    CloseReceived,
    ConnectionCore,
    CoreEvent,
    CoreState,
    Failed,
    Lost,
    Ping,
    Pong,
)
from .._errors import Error, ErrorKind
from .._settings import Settings
from .dispatch import Dispatcher, Hooks, is_async
from .inbound import read_loop
from .outlet import Outlet, Timeout
from .phase import Phase, can_move
from .stats import ConnectionLog, Stats
from .transport import Transport, or_inf, tune_socket

__all__ = ["Connection", "Host", "extensions_for", "make_handshake"]



class Host(Protocol):
    """What a connection needs from the WebSocket that runs it."""

    settings: Settings
    stats: Stats

    @property
    def closing(self) -> bool: ...
    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None: ...
    def opened(self, conn: Connection) -> None: ...
    def ended(self, conn: Connection) -> None: ...
    def connection_lost(self, handler: Any) -> None: ...
    def release_slot(self, conn: Connection) -> None: ...


class Connection:
    """One WebSocket connection, server or client side."""

    # Slots: thousands of idle connections are the common case; a dict per
    # connection would cost more than the rest of its Python state.
    __slots__ = ("_logger", "_pong_waiter", "_tasks", "bytes_in", "bytes_out", "client",
                 "close_code", "close_reason", "core", "dispatch", "handshake", "host", "id",
                 "lost_why", "make_handler", "messages_in", "messages_out", "opened_at",
                 "outlet", "path", "peer", "phase", "remote", "scope", "settings", "transport")

    def __init__(self, host: Host, *, client: bool, connection_id: int,
                 outlet: Outlet | None = None) -> None:
        self.id = connection_id
        self.host = host
        self.settings = host.settings
        self.client = client
        self._logger = logging.getLogger("wskit.client" if client else "wskit.server")
        self.phase = Phase.CONNECTING
        #: Makes this connection's handler (the factory, bound to its Sender).
        self.make_handler: Callable[[], Any] | None = None
        self.dispatch: Dispatcher | None = None
        self.core: ConnectionCore | None = None
        self.transport: Transport | None = None
        self.handshake: Handshake | None = None
        self.outlet = Outlet(self) if outlet is None else outlet.attach(self)
        #: trio time when the connection opened; ``None`` if it never did.
        self.opened_at: float | None = None
        #: Why the stream was lost (``""`` unless it was): it ended without
        #: a completed closing handshake.
        self.lost_why = ""
        self.close_code: CloseCode | int = CloseCode.ABNORMAL
        self.close_reason = ""
        # For the operator's log lines and the metrics (``stats.py``): set by
        # make_handshake; counted by the read loop and the outlet.
        self.peer = "?"
        self.remote: str | None = None
        self.path = ""
        self.messages_in = self.messages_out = self.bytes_in = self.bytes_out = 0
        # The whole connection: its expiry or cancellation ends it at once.
        # One scope for all: each live scope costs ~0.7 KB per idle connection.
        self.scope = trio.CancelScope()
        self._tasks: set[trio.CancelScope] | None = None
        self._pong_waiter: tuple[bytes, trio.Event] | None = None

    @property
    def log(self) -> ConnectionLog:
        """This connection's logger (``wskit.server`` or ``wskit.client``),
        its id in every record. Made when used: logging is rare."""
        return ConnectionLog(self._logger, self.id)

    def __repr__(self) -> str:
        side = "client" if self.client else "server"
        return f"<wskit connection {self.id} ({side}, {self.phase.value})>"

    def move(self, to: Phase) -> None:
        """The one place the phase changes; an illegal move is a wskit bug."""
        if not can_move(self.phase, to):
            raise Error(f"connection {self.id}: cannot go from {self.phase.name} to "
                        f"{to.name}", ErrorKind.INTERNAL, connection_id=self.id)
        if self.phase is Phase.OPEN:
            self.outlet.shares_frames = False  # open no longer: no shared frames
        self.phase = to

    # ------------------------------------------------------------------
    # Setting up (called by server.accept and client.dial)

    def attach(self, stream: trio.abc.Stream) -> Transport:
        """Use ``stream`` for this connection."""
        tune_socket(stream, nodelay=self.settings.tcp_nodelay)
        self.transport = Transport(stream, self.settings.read_size, self)
        return self.transport

    def set_handler(self, handler: Any) -> Hooks:
        hooks = Hooks(handler)
        self.dispatch = Dispatcher(hooks, self)
        return hooks

    def lost(self, why: str) -> None:
        if not self.lost_why:
            self.lost_why = why

    def write_failed(self, why: str) -> None:
        self.lost(why)
        self.scope.cancel()

    # ------------------------------------------------------------------
    # Background tasks

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> bool:
        """Run ``fn(*args)`` in the background until it returns or this
        connection ends; False (and nothing runs) unless the connection is live."""
        phase = self.phase
        if phase is not Phase.OPEN and phase is not Phase.CLOSING and phase is not Phase.FINISHING:
            return False
        scope = trio.CancelScope()
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(scope)
        self.host.spawn(self._background, scope, fn, args)
        return True

    async def _background(self, scope: trio.CancelScope,
                          fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        if scope.cancel_called:
            return  # ended before we started: the fd may be another socket's now
        try:
            with scope:
                await fn(*args)
        except Exception:
            self.log.exception("connection %d: internal error in wskit", self.id)
            self.abort()
        finally:
            if self._tasks is not None:
                self._tasks.discard(scope)

    # ------------------------------------------------------------------
    # Open

    async def run_open(self, on_open: Callable[[], None] | None = None) -> None:
        """From the completed handshake to the end of the closing handshake."""
        try:
            await self._run_open(on_open)
        finally:
            tasks, self._tasks = self._tasks, None
            if self.phase is not Phase.ENDED:
                self.move(Phase.ENDED)
            for scope in tasks or ():
                scope.cancel()  # timers, keepalive and writer end with us

    async def _run_open(self, on_open: Callable[[], None] | None) -> None:
        core, dispatch, transport = self.core, self.dispatch, self.transport
        assert core is not None and dispatch is not None and transport is not None
        transport.source = core
        self.move(Phase.OPEN)
        self.opened_at = trio.current_time()
        self.host.opened(self)
        self.host.stats.connection_opened(self)
        self.outlet.opened()
        if self.settings.ping_interval is not None:
            self.spawn(self._keepalive)
        await dispatch.call(dispatch.hooks.on_open, self._take_handshake())
        if on_open is not None:
            on_open()
        self.outlet.opened_hook_done()
        await read_loop(self)
        await self._finish()

    def _take_handshake(self) -> Handshake | None:
        # Not kept by the connection (nor in a suspended frame's locals): its request
        # headers are ~2 KB per idle connection. The handler keeps it if it wants it.
        handshake, self.handshake = self.handshake, None
        return handshake

    async def handle_event(self, event: CoreEvent) -> None:
        """One event that is not a message (the read loop, ``inbound.py``,
        dispatches those itself)."""
        dispatch, core, transport = self.dispatch, self.core, self.transport
        assert dispatch is not None and core is not None and transport is not None
        hooks = dispatch.hooks
        if isinstance(event, Pong):
            waiter = self._pong_waiter
            if waiter is not None and waiter[0] == event.data:
                waiter[1].set()
            await dispatch.call(hooks.on_pong, event.data)
        elif isinstance(event, Ping):
            transport.output()  # the core queued the pong
            await dispatch.call(hooks.on_ping, event.data)
        elif isinstance(event, CloseReceived):
            self.outlet.shares_frames = False  # our close answer goes next
            core.answer_close()
            self.close_code, self.close_reason = event.code, event.reason
            if self._logger.isEnabledFor(logging.DEBUG):
                self.log.debug("connection %d: close %s %r", self.id, event.code, event.reason)
        elif isinstance(event, Failed):
            self.outlet.shares_frames = False
            core.answer_close()
            self.close_code, self.close_reason = event.code, event.reason
            if self.phase is Phase.OPEN:
                self.move(Phase.CLOSING)
            error = event.error.for_connection(self.id)
            self.log.warning("connection %d: %s", self.id, error)
            await dispatch.error(error)
        elif isinstance(event, Lost):
            self.close_code, self.close_reason = CloseCode.ABNORMAL, ""
            self.lost("end of stream without a close frame")

    # ------------------------------------------------------------------
    # Closing

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake (idempotent)."""
        core, transport = self.core, self.transport
        if self.phase is not Phase.OPEN or core is None or transport is None:
            return
        if core.close(code, reason):
            self.move(Phase.CLOSING)
            timeout = self.settings.close_timeout
            if timeout is not None:
                self.scope.deadline = min(self.scope.deadline, trio.current_time() + timeout)
            transport.output()

    def abort(self) -> None:
        """Drop the connection at once (no closing handshake)."""
        self.lost("aborted")
        self.scope.cancel()

    def begin_shutdown(self) -> None:
        """The WebSocket shuts down: ``on_shutdown``, then close with 1001."""
        if self.phase is Phase.CONNECTING:
            self.abort()
        elif self.phase is Phase.OPEN:
            self.spawn(self._shutdown)

    async def _shutdown(self) -> None:
        if self.dispatch is not None:
            await self.dispatch.call(self.dispatch.hooks.on_shutdown)
        self.close(CloseCode.AWAY, "server shutting down" if not self.client else "going away")

    def hook_failed(self) -> None:
        # A hook raised (already logged and given to on_error): 1011.
        if self.phase is Phase.OPEN:
            self.close(CloseCode.ERROR, "handler error")
        elif self.phase is Phase.CONNECTING:
            self.outlet.close_when_open(CloseCode.ERROR, "handler error")

    async def _keepalive(self) -> None:
        interval = self.settings.ping_interval
        assert interval is not None
        timeout = or_inf(self.settings.ping_timeout)
        while True:
            await trio.sleep(interval)
            core, transport = self.core, self.transport
            if self.phase is not Phase.OPEN or core is None or transport is None:
                return
            payload = os.urandom(4)
            got_pong = trio.Event()
            self._pong_waiter = (payload, got_pong)
            core.ping(payload)
            transport.output()
            sent = trio.current_time()
            with trio.move_on_after(timeout):
                await got_pong.wait()
            self._pong_waiter = None
            if got_pong.is_set():
                self.host.stats.rtt(trio.current_time() - sent)
                continue
            if self.phase is not Phase.OPEN:
                return
            self.lost(f"no pong within ping_timeout={self.settings.ping_timeout}s")
            self.log.info("connection %d: %s", self.id, self.lost_why)
            self.close(CloseCode.ERROR, "keepalive ping timeout")
            # The close frame leaves at once on plain TCP; a TLS (or test)
            # stream gets a moment to send it, then we hang up.
            if transport.flush():
                with trio.move_on_after(1):
                    await transport.drain()
            self.scope.cancel()
            return

    async def _finish(self) -> None:
        """After the read loop: last frames out, half-close, drain, close."""
        transport = self.transport
        assert transport is not None
        self.move(Phase.FINISHING)
        self.host.release_slot(self)
        if transport.flush():
            with trio.move_on_after(or_inf(self.settings.close_timeout)):
                await transport.drain()
        if not self.lost_why:  # a lost connection is handled by end()
            await transport.close_gracefully(client=self.client,
                                              grace=self.settings.close_timeout,
                                              scope=self.scope)

    async def end(self) -> None:
        """Runs once, last, whatever happened: release everything, tell the factory."""
        self.host.release_slot(self)
        if self.phase is not Phase.ENDED:
            self.move(Phase.ENDED)
        self.outlet.ended()
        self.host.ended(self)
        core, dispatch, transport = self.core, self.dispatch, self.transport
        opened = self.opened_at is not None
        if transport is not None:
            transport.wake()
        if self.scope.cancelled_caught and opened and core is not None and (
            core.state is not CoreState.CLOSED and core.state is not CoreState.FAILED
        ):
            # Cut short before the closing handshake completed: 1006.
            self.lost(f"no close frame within close_timeout={self.settings.close_timeout}s")
            self.close_code, self.close_reason = CloseCode.ABNORMAL, ""
        unsent = 0
        if self.lost_why and opened and transport is not None:
            transport.write_now()  # a last close frame, if the kernel takes it
            unsent = self.outlet.unsent_bytes
        if transport is not None:
            await transport.close_now()
        if opened:
            self.host.stats.connection_closed(self)
        if opened and dispatch is not None:
            hooks = dispatch.hooks
            if (dispatch.awaiting is not None or is_async(hooks.on_close)
                    or (unsent and is_async(hooks.on_error))):
                # Shielded: on_close runs exactly once per opened connection,
                # even when a hard shutdown cancelled everything around it.
                deadline = trio.current_time() + or_inf(self.settings.close_timeout)
                with trio.CancelScope(shield=True, deadline=deadline):
                    await self._report_end(dispatch, unsent)
            else:  # sync hooks can't be interrupted: no scope needed
                await self._report_end(dispatch, unsent)
        if dispatch is not None:
            self.host.connection_lost(dispatch.hooks.handler)

    async def _report_end(self, dispatch: Dispatcher, unsent: int) -> None:
        if unsent:
            await dispatch.error(Error(
                f"connection {self.id} closed with {unsent} bytes not sent "
                f"({self.lost_why})", ErrorKind.QUEUE, connection_id=self.id))
        await dispatch.call(dispatch.hooks.on_close, self.close_code, self.close_reason)

    # ------------------------------------------------------------------
    # Timers (``Sender.timeout``)

    def start_timer(self, timer: Timeout) -> None:
        if self.phase is not Phase.OPEN and self.phase is not Phase.CLOSING:
            raise Error(f"connection {self.id} is {self.phase.value}: cannot set a timeout",
                        ErrorKind.TIMER, connection_id=self.id)
        self.spawn(self.run_timer, timer, timer.arm())

    async def run_timer(self, timer: Timeout, scope: trio.CancelScope) -> None:
        with scope:
            await trio.sleep(timer.delay)
        if scope.cancelled_caught:
            return
        timer.scope = None
        dispatch = self.dispatch
        if dispatch is not None and self.phase is not Phase.ENDED:
            await dispatch.call(dispatch.hooks.on_timeout, timer.token)

    def report(self, error: Error) -> None:
        """Hand an error that arose outside this connection's task to ``on_error``."""
        error = error.for_connection(self.id)
        self.log.warning("connection %d: %s", self.id, error)
        if self.dispatch is not None:
            self.spawn(self.dispatch.error, error)


def extensions_for(conn: Connection) -> list[Any]:
    settings = conn.settings
    return make_extensions(settings.compression, client=conn.client,
                           max_message_size=settings.max_message_size,
                           window_bits=settings.deflate_window_bits,
                           no_context_takeover=settings.deflate_no_context_takeover)


def make_handshake(conn: Connection, transport: Transport, request: Request,
                   response: Response, extensions: list[Any]) -> Handshake:
    peer, local = transport.addresses()
    settings = conn.settings
    client_addr: str | None = None
    proxies = settings.proxies()
    if proxies and peer is not None and not conn.client:
        policy = ProxyPolicy.make(proxies, settings.proxy_hops, settings.proxy_header)
        client_addr = policy.client_address(peer[0], request.headers)
    conn.peer = "?" if peer is None else f"{peer[0]}:{peer[1]}"
    conn.remote = client_addr  # None: the peer is the client (no string kept)
    conn.path = request.path
    return Handshake(request=request, response=response, peer_addr=peer, local_addr=local,
                     subprotocol=response.subprotocol,
                     extensions=tuple(ext.name for ext in extensions),
                     client_addr=client_addr)
