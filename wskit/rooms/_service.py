"""What a room service is given: :class:`RoomService` (the base class),
:class:`ClientId`, :class:`RoomStats`, and how a service's callbacks are found."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self

from .._core.http import Handshake
from .._core.messages import CloseCode, Message
from .._handler import Maybe

if TYPE_CHECKING:
    from ._context import RoomContext


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


CALLBACKS = ("on_join", "on_message", "on_leave", "on_timer")
_callbacks_cache: dict[type, tuple[str, ...]] = {}


def callbacks_of(service: object) -> dict[str, Callable[..., Any] | None]:
    """The callbacks a service really has (a RoomService's base defaults,
    which do nothing, are skipped; resolved once per class)."""
    if isinstance(service, RoomService):
        cls = type(service)
        names = _callbacks_cache.get(cls)
        if names is None:
            names = tuple(n for n in CALLBACKS
                          if getattr(cls, n, None) is not getattr(RoomService, n))
            _callbacks_cache[cls] = names
    else:
        names = tuple(n for n in CALLBACKS if callable(getattr(service, n, None)))
    return {n: getattr(service, n) if n in names else None for n in CALLBACKS}
