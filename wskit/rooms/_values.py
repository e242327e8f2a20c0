"""The values a room service is handed: :class:`ClientId` and :class:`RoomStats`."""

from __future__ import annotations

import dataclasses
from typing import Any, Self

from .._core.http import Handshake
from .._core.messages import CloseCode

__all__ = ["ClientId", "RoomStats"]


class ClientId(int):
    """A client of a room: its connection id — an ``int``, usable as one
    (dict key, ``ctx.send(client, …)``, JSON, ``== 7``) — that also carries
    what a room may want to know about it.

    Ids are positive integers, unique in the process (in the cluster, with
    a backplane: then ``client >> 32`` is the node that holds it), stable
    for the connection's life: the connection's ``Sender.connection_id``,
    so ``ws.comms.send(client, …)`` reaches it from anywhere.
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
