"""One room: its service, members, lock (the serialized callbacks), timer,
delivery with the slow-client policy, and counters."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import trio

from .._core.messages import CloseCode, Message
from .._errors import Error
from .._hub.comms import Comms, Recipient, missing_error, select
from .._hub.delivery import send_shared
from .._hub.hub import Hub
from .._io.outlet import Outlet
from ._context import RoomContext
from ._member import Member, MemberState
from ._service import CALLBACKS, callbacks_of
from ._values import ClientId, RoomStats

log = logging.getLogger("wskit.rooms")


class Policy(Protocol):
    """What a room reads from the ``wskit.Rooms`` that made it (its service
    factory and policies) and the totals it adds to."""

    @property
    def service(self) -> Callable[[str, RoomContext], Any]: ...
    @property
    def grace(self) -> float: ...
    @property
    def slow_client(self) -> str: ...
    @property
    def max_client_queue(self) -> int: ...
    messages_in: int
    messages_out: int
    dropped: int
    slow_disconnects: int

    def send_remote(self, room_id: str, by_node: dict[int, list[int]],
                    data: str | bytes) -> None:
        """To members on other nodes (a cluster), one publish per node."""


class Room:
    """One room: its service, members, lock, timer and counters."""

    __slots__ = (
        "_forget",
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
        "persisted",
        "rooms",
        "service",
        "slow_disconnects",
        "timer_scope",
        "version",
    )

    def __init__(self, rooms: Policy, room_id: str, hub: Hub, comms: Comms,
                 forget: Callable[[Room], None]) -> None:
        self.rooms = rooms
        self.id = room_id
        self.hub = hub
        self.comms = comms
        self._forget = forget  # tells the Rooms that made it that it is gone
        #: Joined clients by id, in join order (in a cluster, remote ones
        #: too: ``_cluster.RemoteMember``).
        self.members: dict[int, Any] = {}
        #: Events so far, and at the last ``on_persist``.
        self.version = self.persisted = 0
        #: Clients joining, joined, or whose on_leave has not finished: the
        #: room is disposed of only when none is left.
        self.active = 0
        self.lock = trio.Lock()
        self.timer_scope: trio.CancelScope | None = None
        self._idle_scope: trio.CancelScope | None = None  # the grace period
        self.disposed = False
        self.messages_in = self.messages_out = self.dropped = self.slow_disconnects = 0
        self.ctx = RoomContext(self)
        self.hooks: dict[str, Callable[..., Any] | None] = dict.fromkeys(CALLBACKS)
        try:
            self.service = rooms.service(room_id, self.ctx)
        except BaseException:
            self.disposed = True
            self.cancel_timer()  # one its __init__ may have set
            raise
        self.hooks = callbacks_of(self.service)

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

    def join_step(self, member: Member) -> Any:
        if member.state is not MemberState.JOINING:
            return None
        client = member.client
        assert client is not None
        member.state = MemberState.JOINED
        self.members[int(client)] = member
        self.version += 1
        log.debug("room %r: client %d joined (%d clients)", self.id, client, len(self.members))
        hook = self.hooks["on_join"]
        return hook(client, self.ctx) if hook is not None else None

    def message_step(self, member: Member, msg: Message) -> Any:
        if member.state is not MemberState.JOINED:
            return None
        self.messages_in += 1
        self.rooms.messages_in += 1
        self.version += 1
        hook = self.hooks["on_message"]
        return hook(member.client, msg, self.ctx) if hook is not None else None

    def persist_step(self) -> Any:
        """``on_persist``, if the room changed since the last call."""
        hook = self.hooks["on_persist"]
        if hook is None or self.version == self.persisted or self.disposed:
            return None
        self.persisted = self.version
        return hook(self.ctx)

    def _persist_last(self) -> None:
        """``on_persist`` once more as the room goes, if it changed (an async
        one runs in a task of its own)."""
        try:
            result = self.persist_step()
            if result is not None and inspect.isawaitable(result):
                self.hub.spawn(_awaited, result)
        except Exception:
            log.exception("room %r: on_persist raised", self.id)

    def leave_step(self, client: ClientId) -> Any:
        self.version += 1
        log.debug("room %r: client %d left: %s %r", self.id, client, client.close_code,
                  client.close_reason)
        hook = self.hooks["on_leave"]
        return hook(client, self.ctx) if hook is not None else None

    def leave(self, member: Member, code: CloseCode | int, reason: str
              ) -> Awaitable[None] | None:
        """The member's connection closed (its ``on_close``)."""
        state, member.state = member.state, MemberState.GONE
        if state is MemberState.JOINING:  # its join never ran (cancelled)
            self.release()
            return None
        if state is not MemberState.JOINED:
            return None  # evicted earlier: its on_leave is already scheduled
        client = member.client
        assert client is not None
        # Out of the room at once: nothing more can reach it.
        self.members.pop(int(client), None)
        client.close_code, client.close_reason = code, reason
        return self.run(self.leave_step, (client,), self.release)

    def evict(self, member: Any, conn: Outlet, queued: int) -> None:
        """Disconnect a slow client: out of the room now, closed with 1008,
        ``on_leave`` in the room's next turn."""
        client = member.client
        assert client is not None
        member.state = MemberState.GONE
        self.members.pop(int(client), None)
        reason = f"slow client: {queued} bytes queued"
        client.close_code, client.close_reason = CloseCode.POLICY, reason
        self.slow_disconnects += 1
        self.rooms.slow_disconnects += 1
        log.warning("room %r: client %d is too slow (%d bytes queued, max_client_queue=%d): "
                    "closing it with 1008", self.id, client, queued,
                    self.rooms.max_client_queue)
        conn.close(CloseCode.POLICY, reason)
        self.hub.spawn(self._leave_later, client)

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
        self.hub.spawn(self._grace, scope, grace)

    async def _grace(self, scope: trio.CancelScope, grace: float) -> None:
        with scope:
            await trio.sleep(grace)
            async with self.lock:  # after a callback in progress (a timer)
                if self._idle_scope is scope and not self.active:
                    self.dispose()

    def reuse(self) -> None:
        """A client is joining: the room stays."""
        self.end_grace()
        self.active += 1

    def end_grace(self) -> None:
        """Stop a grace period under way (the room is in use again, or going)."""
        if self._idle_scope is not None:
            self._idle_scope.cancel()
            self._idle_scope = None

    def dispose(self) -> None:
        if self.disposed:
            return
        self._persist_last()
        self.disposed = True
        self.cancel_timer()
        self.end_grace()
        self._forget(self)
        log.debug("room %r: disposed of", self.id)

    # -- timer -------------------------------------------------------------------

    def set_timer(self, delay: float) -> None:
        self.cancel_timer()
        if self.disposed or self.hub.closing:
            log.debug("room %r: timer not set (%s)", self.id,
                      "disposed of" if self.disposed else "shutting down")
            return
        scope = self.timer_scope = trio.CancelScope()
        self.hub.spawn(self._run_timer, scope, delay)

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
        remote: dict[int, list[int]] | None = None
        node = self.hub.backplane.node
        for client_id in ids:
            conn = open_.get(client_id)
            if conn is None or not conn.is_open:
                if conn is None and node and client_id >> 32 != node:
                    # A member on another node (cluster): one publish per node.
                    if remote is None:
                        remote = {}
                    remote.setdefault(client_id >> 32, []).append(client_id)
                    sent += 1
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
        if remote is not None:
            self.rooms.send_remote(self.id, remote, data)
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


async def _awaited(awaitable: Awaitable[Any]) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("on_persist raised")
