"""Rooms: Stateroom-style stateful rooms on one WebSocket port.

::

    class SharedCounter(wskit.RoomService):
        def __init__(self, room_id, ctx):
            super().__init__(room_id, ctx)
            self.value = 0

        def on_message(self, client, msg, ctx):
            self.value += 1 if msg == "increment" else -1
            ctx.send(wskit.Everyone, f"new value: {self.value}")

    wskit.listen("127.0.0.1:3012", wskit.Rooms(SharedCounter))

Theory of operation
-------------------

:class:`Rooms` is a :class:`wskit.Factory`. Each connection gets a small
handler (``_Member``) that picks its room from the request path in
``on_request`` (``/ws/{room}``, ``/ws`` for the default room), joins it in
``on_open``, forwards each message in ``on_message`` and leaves in
``on_close``. ``GET /status`` and ``GET /rooms`` are answered as plain HTTP
on the same port, and an optional page on ``/``.

One room, one service object, one lock. A room's callbacks (``on_join``,
``on_message``, ``on_leave``, ``on_timer``) run one at a time, in the order
their events arrived, whatever the number of clients: a room's state needs no
lock of its own. The lock is a ``trio.Lock`` (FIFO) with a fast path: when
the room is free, a ``def`` callback runs inline in the connection's task
(no task switch, ~0.15 µs of overhead per message, measured against ~5 µs
for a room task fed by a memory channel); an ``async def`` callback holds
the room until it returns, and the connections waiting for the room stop
reading meanwhile, so TCP pushes back on their peers. Timers and
slow-client evictions run in tasks of the WebSocket's nursery and wait for
the room like everyone else.

A room is created when its first client joins and disposed of when its last
client has left and ``grace`` seconds passed without a new one (a client
that reconnects after a network blip finds the room, and its state, as it
left them). At shutdown, rooms are disposed of as soon as their clients
have left, without grace, and pending timers are cancelled.

Slow consumers: a message for a client whose outgoing queue holds
``max_client_queue`` bytes or more (what the kernel has not taken yet) is
not queued. With ``slow_client="disconnect"`` (the default) the client is
closed with 1008 and leaves the room at once (``on_leave`` sees
``client.close_code == 1008`` and the reason); with ``"drop"`` it misses
that message, which is counted (``client.dropped``, ``ctx.stats.dropped``,
``GET /rooms``). Either way one slow client costs at most
``max_client_queue`` bytes plus one message, and never stalls the room.
A broadcast encodes its frame once for every plain server connection.

Logging (logger ``wskit.rooms``): DEBUG for rooms created and disposed and
clients joining and leaving, WARNING for slow clients, ERROR (with the
traceback) for exceptions raised by ``on_timer`` and by an ``on_leave``
that follows an eviction. Exceptions raised by ``on_join``,
``on_message`` and ``on_leave`` otherwise propagate like any handler's:
logged on ``wskit.server``, and that one client is closed with 1011.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, Self
from urllib.parse import unquote

import trio

from ._core.http import Handshake, Request, Response
from ._core.messages import CloseCode, Message, Sendable, to_payload
from ._core.protocol import check_close
from ._errors import Error, ErrorKind
from ._handler import Factory, Handler, Maybe
from ._hub.comms import Comms, Recipient, missing_error, select
from ._hub.delivery import send_shared
from ._hub.hub import Hub
from ._io.outlet import Outlet
from ._sender import Sender

__all__ = ["ClientId", "RoomContext", "RoomService", "RoomStats", "Rooms", "SlowClientPolicy"]

log = logging.getLogger("wskit.rooms")

SlowClientPolicy = Literal["disconnect", "drop"]

#: Longest room id accepted from a path, in characters (longer: 404).
MAX_ROOM_ID = 128


class ClientId(int):
    """A client of a room: its connection id — an ``int``, usable as one
    (dict key, ``ctx.send(client, …)``, JSON, ``== 7``) — that also carries
    what a room may want to know about it.

    Ids are small positive integers, unique in the process, stable for the
    connection's life: the connection's ``Sender.connection_id``, so
    ``ws.comms.send(client, …)`` reaches it from anywhere.
    """

    #: The id of the room it joined.
    room_id: str
    #: The opening handshake (``request.path``, ``request.query``, headers,
    #: ``remote_addr()``); ``None`` only for ids made by hand.
    handshake: Handshake | None
    #: In ``on_leave``: the close code (the peer's, 1006 if the connection
    #: died, 1008 when wskit disconnected a slow client); ``None`` before.
    close_code: CloseCode | int | None
    #: In ``on_leave``: the close reason.
    close_reason: str
    #: Messages dropped for this client (``slow_client="drop"``).
    dropped: int

    def __new__(cls, client_id: int, room_id: str = "",
                handshake: Handshake | None = None) -> Self:
        self = super().__new__(cls, client_id)
        self.room_id = room_id
        self.handshake = handshake
        self.close_code = None
        self.close_reason = ""
        self.dropped = 0
        return self

    def __repr__(self) -> str:
        return f"ClientId({int(self)})"

    __str__ = int.__repr__  # f"user{client}" is "user7"


@dataclasses.dataclass(frozen=True, slots=True)
class RoomStats:
    """Counters of one room, a snapshot (``ctx.stats``; also in ``GET /rooms``)."""

    room_id: str
    #: Clients in the room now.
    clients: int
    #: Messages received from its clients.
    messages_in: int
    #: Messages queued for its clients (a broadcast to 3 clients counts 3).
    messages_out: int
    #: Messages not queued for a slow client (``slow_client="drop"``).
    dropped: int
    #: Clients closed for being slow (``slow_client="disconnect"``).
    slow_disconnects: int
    #: Bytes queued for its clients and not yet taken by the kernel.
    queued_bytes: int

    def as_dict(self) -> dict[str, Any]:
        """The counters as a JSON-ready dict."""
        return dataclasses.asdict(self)


class RoomService:
    """Base class for a room's logic: one instance per room, made with
    ``(room_id, ctx)`` when its first client joins.

    Override the callbacks you need; each may be ``def`` or ``async def``.
    A room's callbacks run one at a time, in order (an ``async`` one holds
    the room until it returns), so ``self`` needs no lock. ``ctx`` (also
    ``self.ctx``) sends, sets the room's timer and closes clients.

    Any callable ``(room_id, ctx) -> object with some of these methods``
    works as a service too.
    """

    room_id: str
    ctx: RoomContext

    def __init__(self, room_id: str, ctx: RoomContext) -> None:
        self.room_id = room_id
        self.ctx = ctx

    def on_join(self, client: ClientId, ctx: RoomContext) -> Maybe:
        """A client joined; it is in ``ctx.clients`` and can be sent to."""

    def on_message(self, client: ClientId, msg: Message, ctx: RoomContext) -> Maybe:
        """A client sent a message (text or binary: ``msg.is_text``)."""

    def on_leave(self, client: ClientId, ctx: RoomContext) -> Maybe:
        """A client left (it is no longer in ``ctx.clients``);
        ``client.close_code`` and ``client.close_reason`` say how."""

    def on_timer(self, ctx: RoomContext) -> Maybe:
        """The timer set with ``ctx.set_timer(delay_s)`` fired."""


_CALLBACKS = ("on_join", "on_message", "on_leave", "on_timer")
_callbacks_cache: dict[type, tuple[str, ...]] = {}


def _callbacks(service: object) -> dict[str, Callable[..., Any] | None]:
    """The callbacks a service really has (a RoomService's base defaults,
    which do nothing, are skipped; resolved once per class)."""
    if isinstance(service, RoomService):
        cls = type(service)
        names = _callbacks_cache.get(cls)
        if names is None:
            names = tuple(n for n in _CALLBACKS
                          if getattr(cls, n, None) is not getattr(RoomService, n))
            _callbacks_cache[cls] = names
    else:
        names = tuple(n for n in _CALLBACKS if callable(getattr(service, n, None)))
    return {n: getattr(service, n) if n in names else None for n in _CALLBACKS}


class RoomContext:
    """How a room's callbacks act on the room: the ``ctx`` they are given.

    Every method is non-blocking. It is meant for the room's callbacks, but
    safe from any thread and task: from another thread, calls are handed to
    the WebSocket's thread (as ``Comms`` does).
    """

    __slots__ = ("_room",)

    def __init__(self, room: _Room) -> None:
        self._room = room

    @property
    def room_id(self) -> str:
        """This room's id (from the path: ``/ws/{room_id}``)."""
        return self._room.id

    @property
    def clients(self) -> tuple[ClientId, ...]:
        """The clients in the room, in the order they joined. A client is in
        from its ``on_join`` until its connection closes."""
        return tuple(member.client for member in list(self._room.members.values())
                     if member.client is not None)

    @property
    def comms(self) -> Comms:
        """The WebSocket's :class:`Comms`: any connection, any room, by id."""
        return self._room.comms

    @property
    def stats(self) -> RoomStats:
        """This room's counters (messages in/out, dropped, slow disconnects)."""
        return self._room.stats()

    @property
    def timer_pending(self) -> bool:
        """Whether a timer is set and has not fired yet."""
        return self._room.timer_scope is not None

    def send(self, recipient: Recipient, msg: Sendable) -> None:
        """Send to ``recipient``: one client id, ``wskit.Everyone``,
        ``wskit.Except(id, …)`` or a list of ids — clients of this room.

        Raises ``Error(kind=QUEUE)`` naming the ids that are not in the room
        (the others still get it). A slow recipient is handled by the
        room's ``slow_client`` policy, never raised here.
        """
        room = self._room
        if room.hub.portal.in_trio_thread():
            room.deliver(recipient, to_payload(msg))
        else:
            room.comms.room(room.id).send(recipient, msg)

    def set_timer(self, delay_s: float) -> None:
        """Call ``on_timer(ctx)`` once, ``delay_s`` seconds from now. One
        timer per room: setting it again replaces the pending one (as in
        Stateroom). Ignored once the room is disposed of or the WebSocket
        shuts down."""
        if not delay_s >= 0:
            raise Error(f"timer delay must be >= 0 seconds, got {delay_s!r}", ErrorKind.TIMER)
        self._room.hub.portal.call(self._room.set_timer, float(delay_s))

    def cancel_timer(self) -> None:
        """Cancel the pending timer, if any."""
        self._room.hub.portal.call(self._room.cancel_timer)

    def close(self, client: int, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Start closing a client's connection; ``on_leave`` follows when it
        has closed. Raises ``Error(kind=QUEUE)`` if it is not in the room,
        ``Error(kind=PROTOCOL)`` for a code that may not be sent."""
        code = int(code)
        check_close(code, reason)
        member = self._room.members.get(int(client))
        if member is None:
            raise missing_error(self._room.id, [int(client)], False)
        member.out.close(code, reason)

    def __repr__(self) -> str:
        return f"<wskit.RoomContext {self._room.id!r}>"


class _State(enum.Enum):
    NEW = "new"  # routed, not open yet
    JOINING = "joining"  # waiting for the room's turn to run on_join
    JOINED = "joined"
    GONE = "gone"  # left (or evicted): its on_leave is done or scheduled


class _Member(Handler):
    """The handler of one connection served by :class:`Rooms`."""

    __slots__ = ("client", "room", "room_id", "rooms", "state")

    def __init__(self, rooms: Rooms, out: Sender) -> None:
        super().__init__(out)
        self.rooms = rooms
        self.room_id: str | None = None
        self.room: _Room | None = None
        self.client: ClientId | None = None
        self.state = _State.NEW

    def on_request(self, request: Request) -> Response | Awaitable[Response | None] | None:
        custom = self.rooms.on_request(request)
        if custom is not None and inspect.isawaitable(custom):
            return self._route_after(custom, request)
        if custom is not None:
            return custom
        return self.rooms._route(request, self)

    async def _route_after(self, custom: Awaitable[Response | None],
                           request: Request) -> Response | None:
        response = await custom
        return response if response is not None else self.rooms._route(request, self)

    def on_open(self, handshake: Handshake) -> Awaitable[None] | None:
        return self.rooms._join(self, handshake)

    def on_message(self, msg: Message) -> Awaitable[None] | None:
        room = self.room
        if room is None or self.state is not _State.JOINED:
            return None  # evicted: what it still sends is ignored
        return room.run(room.message_step, (self, msg))

    def on_close(self, code: CloseCode | int, reason: str) -> Awaitable[None] | None:
        room = self.room
        return room.leave(self, code, reason) if room is not None else None

    def __repr__(self) -> str:
        return f"<wskit room client {self.out.connection_id} in {self.room_id!r}>"


class _Room:
    """One room: its service, members, lock, timer and counters."""

    __slots__ = (
        "_idle_scope",
        "active",
        "comms",
        "ctx",
        "disposed",
        "dropped",
        "hooks",
        "hub",
        "id",
        "lock",
        "members",
        "messages_in",
        "messages_out",
        "rooms",
        "service",
        "slow_disconnects",
        "timer_scope",
    )

    def __init__(self, rooms: Rooms, room_id: str, hub: Hub, comms: Comms) -> None:
        self.rooms = rooms
        self.id = room_id
        self.hub = hub
        self.comms = comms
        #: Joined clients by id, in join order.
        self.members: dict[int, _Member] = {}
        #: Clients joining, joined, or whose on_leave has not finished: the
        #: room is disposed of only when none is left.
        self.active = 0
        self.lock = trio.Lock()
        self.timer_scope: trio.CancelScope | None = None
        self._idle_scope: trio.CancelScope | None = None  # the grace period
        self.disposed = False
        self.messages_in = self.messages_out = self.dropped = self.slow_disconnects = 0
        self.ctx = RoomContext(self)
        self.hooks: dict[str, Callable[..., Any] | None] = dict.fromkeys(_CALLBACKS)
        try:
            self.service = rooms.service(room_id, self.ctx)
        except BaseException:
            self.disposed = True
            self.cancel_timer()  # one its __init__ may have set
            raise
        self.hooks = _callbacks(self.service)

    # -- serialized callbacks ------------------------------------------------

    def run(self, fn: Callable[..., Any], args: tuple[Any, ...],
            after: Callable[[], None] | None = None) -> Awaitable[None] | None:
        """Run ``fn(*args)`` (which may return an awaitable) in the room's
        turn, then ``after()``. Inline when the room is free and ``fn`` is
        synchronous; otherwise returns what the caller must await."""
        lock = self.lock
        if lock.locked():  # busy, or handed over to a waiter: queue up (FIFO)
            return self._run_in_turn(fn, args, after)
        try:
            result = fn(*args)
        except BaseException:
            if after is not None:
                after()
            raise
        if result is not None and inspect.isawaitable(result):
            lock.acquire_nowait()  # the caller's task awaits it and releases
            return self._finish(result, after)
        if after is not None:
            after()
        return None

    async def _finish(self, awaitable: Awaitable[Any], after: Callable[[], None] | None) -> None:
        try:
            await awaitable
        finally:
            self.lock.release()
            if after is not None:
                after()

    async def _run_in_turn(self, fn: Callable[..., Any], args: tuple[Any, ...],
                           after: Callable[[], None] | None) -> None:
        try:
            async with self.lock:
                result = fn(*args)
                if result is not None and inspect.isawaitable(result):
                    await result
        finally:
            if after is not None:
                after()

    # -- membership ------------------------------------------------------------

    def join_step(self, member: _Member) -> Any:
        if member.state is not _State.JOINING:
            return None
        client = member.client
        assert client is not None
        member.state = _State.JOINED
        self.members[int(client)] = member
        log.debug("room %r: client %d joined (%d clients)", self.id, client, len(self.members))
        hook = self.hooks["on_join"]
        return hook(client, self.ctx) if hook is not None else None

    def message_step(self, member: _Member, msg: Message) -> Any:
        if member.state is not _State.JOINED:
            return None
        self.messages_in += 1
        self.rooms.messages_in += 1
        hook = self.hooks["on_message"]
        return hook(member.client, msg, self.ctx) if hook is not None else None

    def leave_step(self, client: ClientId) -> Any:
        log.debug("room %r: client %d left: %s %r", self.id, client, client.close_code,
                  client.close_reason)
        hook = self.hooks["on_leave"]
        return hook(client, self.ctx) if hook is not None else None

    def leave(self, member: _Member, code: CloseCode | int, reason: str
              ) -> Awaitable[None] | None:
        """The member's connection closed (its ``on_close``)."""
        state, member.state = member.state, _State.GONE
        if state is _State.JOINING:  # its join never ran (cancelled)
            self.release()
            return None
        if state is not _State.JOINED:
            return None  # evicted earlier: its on_leave is already scheduled
        client = member.client
        assert client is not None
        # Out of the room at once: nothing more can reach it.
        self.members.pop(int(client), None)
        client.close_code, client.close_reason = code, reason
        return self.run(self.leave_step, (client,), self.release)

    def evict(self, member: _Member, conn: Outlet, queued: int) -> None:
        """Disconnect a slow client: out of the room now, closed with 1008,
        ``on_leave`` in the room's next turn."""
        client = member.client
        assert client is not None
        member.state = _State.GONE
        self.members.pop(int(client), None)
        reason = f"slow client: {queued} bytes queued"
        client.close_code, client.close_reason = CloseCode.POLICY, reason
        self.slow_disconnects += 1
        self.rooms.slow_disconnects += 1
        log.warning("room %r: client %d is too slow (%d bytes queued, max_client_queue=%d): "
                    "closing it with 1008", self.id, client, queued,
                    self.rooms.max_client_queue)
        conn.close(CloseCode.POLICY, reason)
        self.rooms._spawn(self._leave_later, client)

    async def _leave_later(self, client: ClientId) -> None:
        try:
            async with self.lock:
                result = self.leave_step(client)
                if result is not None and inspect.isawaitable(result):
                    await result
        except Exception:
            log.exception("room %r: on_leave raised for client %d", self.id, client)
        finally:
            self.release()

    def release(self) -> None:
        """One client is completely done with the room."""
        self.active -= 1
        if self.active == 0:
            self._idle()

    def _idle(self) -> None:
        if self.disposed:
            return
        grace = self.rooms.grace
        if self.hub.closing or grace <= 0:
            self.dispose()
            return
        log.debug("room %r: empty; disposed of in %ss unless a client joins", self.id, grace)
        scope = self._idle_scope = trio.CancelScope()
        self.rooms._spawn(self._grace, scope, grace)

    async def _grace(self, scope: trio.CancelScope, grace: float) -> None:
        with scope:
            await trio.sleep(grace)
            async with self.lock:  # after a callback in progress (a timer)
                if self._idle_scope is scope and not self.active:
                    self.dispose()

    def reuse(self) -> None:
        """A client is joining: the room stays."""
        if self._idle_scope is not None:
            self._idle_scope.cancel()
            self._idle_scope = None
        self.active += 1

    def dispose(self) -> None:
        if self.disposed:
            return
        self.disposed = True
        self.cancel_timer()
        if self._idle_scope is not None:
            self._idle_scope.cancel()
            self._idle_scope = None
        self.rooms._forget(self)
        log.debug("room %r: disposed of", self.id)

    # -- timer -------------------------------------------------------------------

    def set_timer(self, delay: float) -> None:
        self.cancel_timer()
        if self.disposed or self.hub.closing:
            log.debug("room %r: timer not set (%s)", self.id,
                      "disposed of" if self.disposed else "shutting down")
            return
        scope = self.timer_scope = trio.CancelScope()
        self.rooms._spawn(self._run_timer, scope, delay)

    def cancel_timer(self) -> None:
        if self.timer_scope is not None:
            self.timer_scope.cancel()
            self.timer_scope = None

    async def _run_timer(self, scope: trio.CancelScope, delay: float) -> None:
        with scope:
            await trio.sleep(delay)
            await self.lock.acquire()
        # Cancelled (replaced, disposed) before the lock was ours: done. Got
        # the lock, then replaced before running: give it back.
        if scope.cancelled_caught:
            return
        try:
            if self.timer_scope is not scope:
                return
            self.timer_scope = None
            hook = self.hooks["on_timer"]
            if hook is not None:
                result = hook(self.ctx)
                if result is not None and inspect.isawaitable(result):
                    await result
        except Exception:
            log.exception("room %r: on_timer raised", self.id)
        finally:
            self.lock.release()

    # -- sending -----------------------------------------------------------------

    def member_ids(self) -> tuple[int, ...]:
        return tuple(self.members)

    def deliver(self, recipient: Recipient, data: str | bytes) -> None:
        """Send to members (Trio thread); raises for ids not in the room."""
        present, missing = select(recipient, self.members)
        if present:
            self._send(present, data)
        if missing:
            raise missing_error(self.id, missing, bool(present))

    def _send(self, ids: Iterable[int], data: str | bytes) -> None:
        frame: bytes | None = None
        open_ = self.hub.registry.open
        limit = self.rooms.max_client_queue
        sent = 0
        for client_id in ids:
            conn = open_.get(client_id)
            if conn is None or not conn.is_open:
                continue  # closing: its on_close takes it out of the room
            queued = conn.queued_bytes
            if queued >= limit:
                # What waits may only be this batch's replies (sends made
                # while its connection dispatches a read): hand it to the
                # kernel, then judge.
                conn.write_pending()
                queued = conn.queued_bytes
                if queued >= limit:
                    self._slow(client_id, conn, queued)
                    continue
            try:
                frame = send_shared(conn, data, frame)
            except Error:  # over Settings.max_send_queue, below our limit
                if conn.is_open:
                    self._slow(client_id, conn, conn.queued_bytes)
                continue
            sent += 1
        self.messages_out += sent
        self.rooms.messages_out += sent

    def _slow(self, client_id: int, conn: Outlet, queued: int) -> None:
        member = self.members.get(client_id)
        if member is None or member.client is None:
            return
        if self.rooms.slow_client == "disconnect":
            self.evict(member, conn, queued)
            return
        client = member.client
        client.dropped += 1
        self.dropped += 1
        self.rooms.dropped += 1
        if client.dropped == 1:
            log.warning("room %r: client %d is too slow (%d bytes queued, "
                        "max_client_queue=%d): dropping messages for it", self.id, client,
                        queued, self.rooms.max_client_queue)

    # -- stats -------------------------------------------------------------------

    def queued_bytes(self) -> int:
        open_ = self.hub.registry.open
        return sum(conn.queued_bytes for conn in map(open_.get, list(self.members))
                   if conn is not None)

    def stats(self) -> RoomStats:
        return RoomStats(room_id=self.id, clients=len(self.members),
                         messages_in=self.messages_in, messages_out=self.messages_out,
                         dropped=self.dropped, slow_disconnects=self.slow_disconnects,
                         queued_bytes=self.queued_bytes())

    def __repr__(self) -> str:
        return f"<wskit room {self.id!r} ({len(self.members)} clients)>"


class Rooms(Factory):
    """A factory that serves stateful rooms (Stateroom's model) on one port.

    ``service`` is a :class:`RoomService` subclass, or any callable
    ``(room_id, ctx) -> service``, called when a room's first client joins::

        wskit.listen("127.0.0.1:3012", wskit.Rooms(SharedCounter))

    Paths, on the same port:

    - ``/ws/{room}`` opens a WebSocket in that room (one path segment,
      percent-decoded, at most 128 characters); ``/ws`` and ``/ws/`` open
      one in ``default_room``. ``path`` changes the prefix; override
      :meth:`room_for` to choose rooms otherwise (query, headers).
    - ``GET /status`` answers ``ok`` (a health check); ``GET /rooms`` a JSON
      summary: every room's counters and the totals since start.
      ``status_path`` / ``rooms_path`` move them, ``None`` turns them off.
    - ``GET /`` serves ``page`` (HTML) when given; override
      :meth:`on_request` to answer anything else, or to refuse requests.
    - Anything else: 404.

    Options:

    - ``grace``: seconds an empty room is kept for a client to rejoin
      (10; 0 disposes of it at once).
    - ``slow_client``: ``"disconnect"`` (default; close 1008) or ``"drop"``
      (skip messages, counted), for a client with ``max_client_queue``
      bytes or more waiting to be sent (256 KiB: dozens of full-screen
      updates, and 10,000 clients stuck at it still fit in 2.5 GiB; the
      per-connection ``Settings.max_send_queue``, 4 MiB, is the hard limit).
    - ``max_rooms``: rooms open at once; a handshake for a new room beyond
      it gets 503 (10,000, like ``max_connections``).

    One Rooms serves one WebSocket at a time (it may be reused once that
    one has shut down). Server connections only.
    """

    def __init__(
        self,
        service: Callable[[str, RoomContext], Any],
        *,
        path: str = "/ws",
        default_room: str | None = "default",
        grace: float = 10.0,
        slow_client: SlowClientPolicy = "disconnect",
        max_client_queue: int = 256 * 2**10,
        max_rooms: int | None = 10_000,
        page: str | bytes | None = None,
        status_path: str | None = "/status",
        rooms_path: str | None = "/rooms",
    ) -> None:
        if not callable(service):
            raise Error(f"a room service must be callable (room_id, ctx) -> service, got "
                        f"{service!r}", ErrorKind.USAGE)
        if not path.startswith("/") or path.endswith("/"):
            raise Error(f"Rooms path must start with '/' and not end with one, got {path!r}",
                        ErrorKind.USAGE)
        if slow_client not in ("disconnect", "drop"):
            raise Error(f"slow_client must be 'disconnect' or 'drop', got {slow_client!r}",
                        ErrorKind.USAGE)
        if not grace >= 0 or math.isinf(grace):
            raise Error(f"grace must be a number of seconds >= 0, got {grace!r}",
                        ErrorKind.USAGE)
        if max_client_queue <= 0:
            raise Error(f"max_client_queue must be positive, got {max_client_queue!r}",
                        ErrorKind.USAGE)
        if max_rooms is not None and max_rooms <= 0:
            raise Error(f"max_rooms must be positive or None, got {max_rooms!r}",
                        ErrorKind.USAGE)
        self.service = service
        self.path = path
        self.default_room = default_room
        self.grace = float(grace)
        self.slow_client: SlowClientPolicy = slow_client
        self.max_client_queue = max_client_queue
        self.max_rooms = max_rooms
        self.page = page
        self.status_path = status_path
        self.rooms_path = rooms_path
        #: Totals since start, disposed rooms included.
        self.messages_in = self.messages_out = self.dropped = self.slow_disconnects = 0
        self._rooms: dict[str, _Room] = {}
        self._hub: Hub | None = None
        self._comms: Comms | None = None

    # -- overridable -------------------------------------------------------------

    def on_request(self, request: Request) -> Response | Awaitable[Response | None] | None:
        """Called first for every request (plain HTTP and upgrades), ``def``
        or ``async def``: return a :class:`Response` to answer it yourself
        (a page, a redirect, ``request.reject(403)``), ``None`` to let Rooms
        route it."""
        return None

    def room_for(self, request: Request) -> str | None:
        """The room a WebSocket request joins, or ``None`` (404). By default
        from the path: ``{path}/{room}``, ``{path}`` for ``default_room``."""
        path = request.path.partition("?")[0]
        prefix = self.path
        if path in (prefix, prefix + "/"):
            return self.default_room
        if not path.startswith(prefix + "/"):
            return None
        raw = path[len(prefix) + 1:]
        if "/" in raw:
            return None
        room_id = unquote(raw)
        return room_id if 0 < len(room_id) <= MAX_ROOM_ID else None

    # -- what you can ask ----------------------------------------------------

    @property
    def room_ids(self) -> list[str]:
        """The rooms open now."""
        return list(self._rooms)

    def summary(self) -> dict[str, Any]:
        """What ``GET /rooms`` answers: each room's :class:`RoomStats` and
        the totals since start (disposed rooms included)."""
        rooms = [room.stats().as_dict() for room in list(self._rooms.values())]
        return {
            "rooms": rooms,
            "clients": sum(room["clients"] for room in rooms),
            "messages_in": self.messages_in,
            "messages_out": self.messages_out,
            "dropped": self.dropped,
            "slow_disconnects": self.slow_disconnects,
            "slow_client": self.slow_client,
            "max_client_queue": self.max_client_queue,
        }

    # -- the Factory side --------------------------------------------------------

    def server_connected(self, out: Sender) -> Handler:
        """The handler of a connection: routes, joins, forwards, leaves."""
        self._bind(out.hub, out.comms)
        return _Member(self, out)

    def client_connected(self, out: Sender) -> Handler:
        """Rooms serve server connections only."""
        raise Error("wskit.Rooms serves incoming connections only; connect with another "
                    "factory", ErrorKind.USAGE)

    def on_shutdown(self) -> None:
        """The WebSocket shuts down: timers are cancelled, empty rooms are
        disposed of now, the others as soon as their clients have left."""
        for room in list(self._rooms.values()):
            room.cancel_timer()
            if not room.active:
                room.dispose()
            elif room._idle_scope is not None:
                room._idle_scope.cancel()
                room._idle_scope = None

    # -- internals -----------------------------------------------------------------

    def _bind(self, hub: Hub, comms: Comms) -> None:
        if self._hub is hub:
            return
        if self._hub is not None and not (self._hub.closing and not self._rooms):
            raise Error("this wskit.Rooms already serves another WebSocket; make one Rooms "
                        "per WebSocket", ErrorKind.USAGE)
        self._hub, self._comms = hub, comms

    def _spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        assert self._hub is not None
        self._hub.spawn(fn, *args)

    def _route(self, request: Request, member: _Member) -> Response | None:
        path = request.path.partition("?")[0]
        if not request.is_websocket:
            if path == self.status_path:
                return Response(200, "ok\n")
            if path == self.rooms_path:
                body = json.dumps(self.summary(), indent=1) + "\n"
                return Response(200, body, {"Content-Type": "application/json",
                                            "Cache-Control": "no-store"})
            if path == "/" and self.page is not None:
                return Response(200, self.page, {"Content-Type": "text/html; charset=utf-8"})
        room_id = self.room_for(request)
        if room_id is None:
            return Response(404, "not found\n")
        if not request.is_websocket:
            return None  # wskit answers 426: this path speaks WebSocket
        groups = member.out.hub.registry.groups
        if room_id not in self._rooms:
            if self.max_rooms is not None and len(self._rooms) >= self.max_rooms:
                log.warning("room %r refused: %d rooms open (max_rooms)", room_id,
                            len(self._rooms))
                return Response(503, "too many rooms, try again later\n",
                                [("Retry-After", "1")])
            if room_id in groups:
                return Response(409, f"room {room_id!r} belongs to another wskit.Rooms\n")
        member.room_id = room_id
        return None

    def _join(self, member: _Member, handshake: Handshake) -> Awaitable[None] | None:
        room_id = member.room_id
        if room_id is None:  # on_request was bypassed: not ours to serve
            member.out.close(CloseCode.POLICY, "no room")
            return None
        room = self._rooms.get(room_id)
        if room is None:
            assert self._hub is not None and self._comms is not None
            if room_id in self._hub.registry.groups:
                raise Error(f"room {room_id!r} belongs to another wskit.Rooms",
                            ErrorKind.USAGE)
            room = _Room(self, room_id, self._hub, self._comms)
            self._hub.registry.add_group(room_id, room)
            self._rooms[room_id] = room
            log.debug("room %r: created", room_id)
        room.reuse()
        member.room = room
        member.client = ClientId(member.out.connection_id, room_id, handshake)
        member.state = _State.JOINING
        return room.run(room.join_step, (member,))

    def _forget(self, room: _Room) -> None:
        if self._rooms.get(room.id) is room:
            del self._rooms[room.id]
        if self._hub is not None:
            self._hub.registry.remove_group(room.id, room)

    def __repr__(self) -> str:
        name = getattr(self.service, "__name__", type(self.service).__name__)
        return f"<wskit.Rooms {name} at {self.path}, {len(self._rooms)} rooms>"
