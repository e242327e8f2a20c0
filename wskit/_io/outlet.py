"""The outlet: what a ``Sender`` sends through, for one connection.

It owns the connection's queue accounting — one byte counter for what is
queued, whatever the phase — and what is asked for before the handshake
completes (messages, a close, timers), which it hands on right after the
connection opens. The ``Sender`` holds an outlet, never the driver, so that
a reconnecting client puts each new connection under the same ``Sender``
(:meth:`Outlet.attach`).

For a reconnecting client, the outlet *holds*: whenever no connection is
open (before the first, between two, while one is closing), sends go to
the same bounded queue as sends before the handshake, the outbox, which
the next connection writes first. Once reconnecting stops for good
(:meth:`Outlet.stop_holding`), the outbox's content is reported lost and
sends raise again.

Methods run in the WebSocket's Trio thread, except :meth:`check_queue`,
which a ``Sender`` calls in another thread before handing a send over.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import trio

from .._core.protocol import ConnectionCore
from .._errors import Error, ErrorKind
from .._settings import Settings
from .phase import Phase
from .transport import Transport

__all__ = ["Outlet", "Timeout", "byte_size"]

# Python 3.11 looks a member up on its Enum class through EnumType.__getattr__
# (four times a global): the per-message send path reads this one.
_OPEN = Phase.OPEN

# Cross-thread accounting is rare and brief: one lock for all connections
# saves a lock object per connection.
_thread_lock = threading.Lock()


class Timeout:
    """A pending timer from :meth:`Sender.timeout`; ``cancel()`` stops it."""

    __slots__ = ("_canceller", "delay", "scope", "token")

    def __init__(self, delay: float, token: Any, canceller: Callable[[Timeout], None]) -> None:
        self.token = token
        self.delay = delay
        self._canceller = canceller
        #: The timer's own scope while it is pending (``None`` once fired or
        #: cancelled). Made when the timer is set: ``cancel()`` may come
        #: before its task starts.
        self.scope: trio.CancelScope | None = None

    def arm(self) -> trio.CancelScope:
        self.scope = scope = trio.CancelScope()
        return scope

    def cancel(self) -> None:
        """Cancel the timer; harmless if it already fired. Thread-safe."""
        self._canceller(self)

    def __repr__(self) -> str:
        return f"<wskit.Timeout {self.delay}s token={self.token!r}>"


def byte_size(data: str | bytes) -> int:
    """Bytes, not characters: a text message counts as its UTF-8 length."""
    if not isinstance(data, str) or data.isascii():  # bytes or a BinaryMessage
        return len(data)
    return len(data.encode())


class Carrier(Protocol):
    """What carries an outlet across connections (``reconnect.Session``)."""

    def close_requested(self) -> None:
        """The application closed: reconnecting stops for good."""


class Driven(Protocol):
    """The connection an outlet serves (``driver.Connection``)."""

    id: int
    phase: Phase
    settings: Settings
    core: ConnectionCore | None
    transport: Transport | None
    messages_out: int
    bytes_out: int

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> bool: ...
    async def run_timer(self, timer: Timeout, scope: trio.CancelScope) -> None: ...
    def start_timer(self, timer: Timeout) -> None: ...
    def close(self, code: int, reason: str) -> None: ...
    def report(self, error: Error) -> None: ...


class Outlet:
    """Accepts frames for one connection; see the module docstring."""

    __slots__ = ("_close", "_conn", "_early", "_early_bytes", "_thread_pending", "_timers",
                 "_wake", "carrier", "connection_id", "drop_outbox", "shares_frames")

    def __init__(self, conn: Driven) -> None:
        self._conn = conn
        self.connection_id = conn.id
        # Before the connection opens: what was sent, a close, timers (lists
        # made on first use: most connections never send that early).
        self._early: list[str | bytes] | None = None
        self._early_bytes = 0
        self._close: tuple[int, str] | None = None
        self._timers: list[Timeout] | None = None
        self._thread_pending = 0
        #: Whether a frame encoded once for many (``encode_frame``) may be
        #: sent here now: an open plain server connection whose close frame
        #: is not due. Set when the connection opens; cleared when it leaves
        #: OPEN (``Connection.move``) and before the driver answers a close:
        #: the broadcast loop reads one attribute per recipient.
        self.shares_frames = False
        #: Set while a reconnecting client may still carry on: sends are held
        #: in the outbox whenever no connection is open.
        self.carrier: Carrier | None = None
        #: Drop (and report) the outbox when the next connection opens.
        self.drop_outbox = False
        # Woken when the outbox is written or given up (``flush`` waits on it).
        self._wake: trio.lowlevel.ParkingLot | None = None

    def attach(self, conn: Driven) -> Outlet:
        """Serve ``conn`` from now on: the next connection of a reconnecting
        client (same id, same outbox, same ``Sender``)."""
        self._conn = conn
        self.shares_frames = False
        return self

    def stop_holding(self) -> tuple[int, int]:
        """Reconnecting is over: sends raise from now on. Drops the outbox
        and returns its (messages, bytes), for the caller to report."""
        self.carrier = None
        return self._drop_early()

    def _drop_early(self) -> tuple[int, int]:
        dropped = (len(self._early or ()), self._early_bytes)
        self._early, self._early_bytes = None, 0
        self._wake_flushers()
        return dropped

    def _wake_flushers(self) -> None:
        if self._wake is not None:
            self._wake.unpark_all()

    # -- what the driver tells it ----------------------------------------

    def opened(self) -> None:
        """The connection is open: what was queued before goes out first."""
        conn = self._conn
        core, transport = conn.core, conn.transport
        assert core is not None and transport is not None
        self.shares_frames = core.shares_frames
        if self.drop_outbox and self._early:
            count, dropped = self._drop_early()
            conn.report(Error(
                f"{count} message(s) ({dropped} bytes) sent while connection "
                f"{self.connection_id} was not open were dropped "
                "(Reconnect(drop_outbox=True))", ErrorKind.QUEUE,
                connection_id=self.connection_id))
        early, self._early = self._early, None
        if early:
            for message in early:
                conn.bytes_out += core.send(message)
            conn.messages_out += len(early)
            self._early_bytes = 0
            transport.output()
            self._wake_flushers()
        timers, self._timers = self._timers, None
        for timer in timers or ():  # set by the factory, during the handshake
            if timer.scope is not None:
                conn.spawn(conn.run_timer, timer, timer.scope)

    def opened_hook_done(self) -> None:
        """``on_open`` has run: a close asked for earlier happens now."""
        if self._close is not None:
            self._conn.close(*self._close)

    def close_when_open(self, code: int, reason: str) -> None:
        if self._close is None:
            self._close = (code, reason)

    def ended(self) -> None:
        if self.carrier is None:  # else they wait for the next connection
            self._timers = None

    # -- what a Sender asks for ------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._conn.phase is Phase.OPEN

    @property
    def queued_bytes(self) -> int:
        """Bytes accepted by ``send`` and not yet taken by the kernel."""
        conn = self._conn
        core, transport = conn.core, conn.transport
        if core is None or transport is None or conn.phase is Phase.ENDED:
            return self._early_bytes
        return self._early_bytes + core.output_size + transport.queued

    @property
    def unsent_bytes(self) -> int:
        """Bytes queued on the connection itself (not in the outbox) that
        the kernel has not taken: lost with the connection."""
        conn = self._conn
        core, transport = conn.core, conn.transport
        if core is None or transport is None:
            return 0
        return core.output_size + transport.queued

    def _queue_full(self, queued: int) -> Error:
        return Error(
            f"send queue of connection {self.connection_id} is full ({queued} bytes "
            f"queued, max_send_queue={self._conn.settings.max_send_queue}): the peer is "
            "not reading fast enough; await out.flush() before sending more",
            ErrorKind.QUEUE, connection_id=self.connection_id)

    def _closed_error(self, size: int) -> Error:
        return Error(f"connection {self.connection_id} is {self._conn.phase.value}: message "
                     f"of {size} bytes not sent", ErrorKind.QUEUE,
                     connection_id=self.connection_id)

    def send(self, data: str | bytes, *, check: bool = True) -> None:
        """Queue a message; raises ``Error(QUEUE)`` over ``max_send_queue``
        (unless ``check`` is off: already checked in another thread) or when
        the connection is no longer open (and not carried on by a reconnect)."""
        conn = self._conn
        phase = conn.phase
        limit = conn.settings.max_send_queue if check else None
        if phase is _OPEN:
            core, transport = conn.core, conn.transport
            assert core is not None and transport is not None
            if limit is not None:
                queued = core.output_size + transport.queued
                if queued >= limit:
                    raise self._queue_full(queued)
            try:
                size = core.send(data)
            except Error:
                if self.carrier is None:
                    raise
                # The peer's close came in: the next connection sends it.
                self._hold(data, limit)
                return
            if size > transport.unsent_room:  # a large message: one write
                transport.make_room(size)
            conn.bytes_out += size
            conn.messages_out += 1
            if not transport.corked:
                transport.write_now()
        elif phase is Phase.CONNECTING or self.carrier is not None:
            self._hold(data, limit)
        else:
            raise self._closed_error(byte_size(data))

    def _hold(self, data: str | bytes, limit: int | None) -> None:
        """Into the outbox, written first when the (next) connection opens."""
        if limit is not None and self._early_bytes >= limit:
            raise self._queue_full(self._early_bytes)
        if self._early is None:
            self._early = []
        self._early.append(data)
        self._early_bytes += byte_size(data)

    def send_frame(self, frame: bytes) -> None:
        """A frame encoded once for a broadcast (see ``shares_frames``)."""
        conn = self._conn
        core, transport = conn.core, conn.transport
        if not self.shares_frames or core is None or transport is None:
            raise self._closed_error(len(frame))
        if not transport.write_direct(frame):
            limit = conn.settings.max_send_queue
            if limit is not None:
                queued = self.queued_bytes
                if queued >= limit:
                    raise self._queue_full(queued)
            core.send_frame(frame)
            transport.output()
        conn.messages_out += 1
        conn.bytes_out += len(frame)

    def check_queue(self, size: int) -> None:
        """From another thread: raise there if the message cannot be queued."""
        phase = self._conn.phase
        if phase is not Phase.OPEN and phase is not Phase.CONNECTING and self.carrier is None:
            raise self._closed_error(size)
        limit = self._conn.settings.max_send_queue
        with _thread_lock:
            queued = self.queued_bytes + self._thread_pending
            if limit is not None and queued >= limit:
                raise self._queue_full(queued)
            self._thread_pending += size

    def send_from_thread(self, data: str | bytes, size: int) -> None:
        """In the Trio thread, a send that :meth:`check_queue` let through."""
        with _thread_lock:
            self._thread_pending -= size
        try:
            self.send(data, check=False)
        except Error as err:
            self._conn.report(err)

    def close(self, code: int, reason: str) -> None:
        carrier = self.carrier
        if carrier is not None:  # the application's close: no reconnect
            self.carrier = None  # and sends raise from now on, as after any close
            carrier.close_requested()
        if self._conn.phase is Phase.CONNECTING:
            self._close = (code, reason)
        else:
            self._conn.close(code, reason)

    def control(self, ping: bool, data: bytes) -> None:
        conn = self._conn
        core, transport = conn.core, conn.transport
        if not self.is_open or core is None or transport is None:
            raise Error(f"connection {self.connection_id} is {conn.phase.value}: cannot "
                        f"send a {'ping' if ping else 'pong'}", ErrorKind.QUEUE,
                        connection_id=self.connection_id)
        if ping:
            core.ping(data)
        else:
            core.pong(data)
        transport.output()

    def start_timer(self, timer: Timeout) -> None:
        phase = self._conn.phase
        if phase is Phase.CONNECTING or (  # starts when (the next connection is) open
                self.carrier is not None and phase is not Phase.OPEN
                and phase is not Phase.CLOSING):
            timer.arm()
            if self._timers is None:
                self._timers = []
            self._timers.append(timer)
        else:
            self._conn.start_timer(timer)

    def cancel_timer(self, timer: Timeout) -> None:
        if timer.scope is not None:
            timer.scope.cancel()
            timer.scope = None

    def write_pending(self) -> None:
        """Hand what is queued to the kernel now, even mid-batch (for a caller
        that must judge the real backlog, like a room's slow-client check)."""
        transport = self._conn.transport
        if transport is not None and self._conn.core is not None:
            transport.write_now()

    async def flush(self) -> None:
        """Wait until the queue is below ``max_send_queue`` (or the connection
        ended; for a reconnecting client, until the outbox went out on the
        next connection or reconnecting stopped)."""
        await trio.lowlevel.checkpoint()
        limit = self._conn.settings.max_send_queue or 1
        while self.carrier is not None and self._early_bytes >= limit:
            if self._wake is None:
                self._wake = trio.lowlevel.ParkingLot()
            await self._wake.park()
        conn = self._conn
        while conn.phase is not Phase.ENDED and self.queued_bytes >= limit:
            transport = conn.transport
            if transport is None or not transport.writable or conn.core is None:
                return
            transport.write_now()
            if self.queued_bytes < limit:
                return
            await transport.wait()

    def report(self, error: Error) -> None:
        self._conn.report(error)
