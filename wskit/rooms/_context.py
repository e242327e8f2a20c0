"""RoomContext: how a room's callbacks act on their room (the ``ctx`` they get)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import trio

from .._core.messages import CloseCode, Sendable, to_payload
from .._core.protocol import check_close
from .._errors import Error, ErrorKind
from .._hub.comms import Comms, Recipient, missing_error
from .._hub.hub import Hub
from ._values import ClientId, RoomStats


class _Closer(Protocol):
    def close(self, code: int = ..., reason: str = ...) -> None: ...


class _Member(Protocol):
    @property
    def client(self) -> ClientId | None: ...
    @property
    def out(self) -> _Closer: ...


class _Room(Protocol):
    """What a context acts on (``_room.Room``)."""

    @property
    def id(self) -> str: ...
    @property
    def members(self) -> Mapping[int, _Member]: ...
    @property
    def hub(self) -> Hub: ...
    @property
    def comms(self) -> Comms: ...
    @property
    def timer_scope(self) -> trio.CancelScope | None: ...
    def deliver(self, recipient: Recipient, data: str | bytes) -> None: ...
    def set_timer(self, delay: float) -> None: ...
    def cancel_timer(self) -> None: ...
    def stats(self) -> RoomStats: ...


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
