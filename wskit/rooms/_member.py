"""The handler of one connection served by :class:`wskit.Rooms`, and its states."""

from __future__ import annotations

import enum
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from .._core.http import Handshake, Request, Response
from .._core.messages import CloseCode, Message
from .._handler import Handler
from .._sender import Sender
from ._values import ClientId


class _Rooms(Protocol):
    def on_request(self, request: Request) -> Response | Awaitable[Response | None] | None: ...


class _Room(Protocol):
    """The room a member joined (``_room.Room``)."""

    def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Awaitable[None] | None: ...
    def message_step(self, member: Member, msg: Message) -> Any: ...
    def leave(self, member: Member, code: CloseCode | int, reason: str
              ) -> Awaitable[None] | None: ...


class MemberState(enum.Enum):
    NEW = "new"  # routed, not open yet
    JOINING = "joining"  # waiting for the room's turn to run on_join
    JOINED = "joined"
    GONE = "gone"  # left (or evicted): its on_leave is done or scheduled


class Member(Handler):
    """The handler of one connection served by :class:`Rooms`."""

    __slots__ = ("_join", "_route", "client", "room", "room_id", "rooms", "state")

    def __init__(self, rooms: _Rooms, out: Sender, *,
                 route: Callable[[Request, Member], Response | None],
                 join: Callable[[Member, Handshake], Awaitable[None] | None]) -> None:
        super().__init__(out)
        self.rooms = rooms
        self._route = route  # Rooms' routing and joining, bound to it
        self._join = join
        self.room_id: str | None = None
        self.room: _Room | None = None
        self.client: ClientId | None = None
        self.state = MemberState.NEW

    def on_request(self, request: Request) -> Response | Awaitable[Response | None] | None:
        custom = self.rooms.on_request(request)
        if custom is not None and inspect.isawaitable(custom):
            return self._route_after(custom, request)
        if custom is not None:
            return custom
        return self._route(request, self)

    async def _route_after(self, custom: Awaitable[Response | None],
                           request: Request) -> Response | None:
        response = await custom
        return response if response is not None else self._route(request, self)

    def on_open(self, handshake: Handshake) -> Awaitable[None] | None:
        return self._join(self, handshake)

    def on_message(self, msg: Message) -> Awaitable[None] | None:
        room = self.room
        if room is None or self.state is not MemberState.JOINED:
            return None  # evicted: what it still sends is ignored
        return room.run(room.message_step, (self, msg))

    def on_close(self, code: CloseCode | int, reason: str) -> Awaitable[None] | None:
        room = self.room
        return room.leave(self, code, reason) if room is not None else None

    def __repr__(self) -> str:
        return f"<wskit room client {self.out.connection_id} in {self.room_id!r}>"
