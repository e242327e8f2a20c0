"""What nodes of a cluster say to each other over the backplane, as bytes.

Pure functions, no I/O: the Redis backplane publishes what :func:`pack`
makes and hands what it receives to :func:`unpack`. A packet is a fixed
header (``kind``, the sending node), then a JSON head for the fields of
that kind (client ids, a room id, a close code), then the message payload
as it is, so a payload is never re-encoded::

    !B kind  !I origin node  !I head length  head (JSON)  !B text?  payload

Ids are JSON numbers: they stay below 2**53 (see :data:`NODE_SHIFT`).
Nothing here executes what it reads: a node trusts its Redis database, but
a malformed packet is only logged and dropped.
"""

from __future__ import annotations

import enum
import json
import struct
from typing import Any, NamedTuple

__all__ = ["NODE_SHIFT", "Kind", "Packet", "node_of", "pack", "unpack"]

#: Bits of a connection id below its node number: a node reads from an id
#: which node holds it (``id >> NODE_SHIFT``). Node numbers stay below
#: 2**21, so ids stay below 2**53: exact in JSON and JavaScript.
NODE_SHIFT = 32

_HEAD = struct.Struct("!BII")
_TEXT = b"\x01"
_BINARY = b"\x00"


def node_of(client_id: int) -> int:
    """The node number of the node that holds ``client_id``."""
    return client_id >> NODE_SHIFT


class Kind(enum.IntEnum):
    """What a packet asks of the node that receives it."""

    #: ``{"to": id}`` + payload: send to one connection of yours.
    SEND = 1
    #: ``{"except": [ids]}`` + payload: send to all your connections but those.
    BROADCAST = 2
    #: ``{"id": id}``: the connection you sent to is not here (a reply to SEND).
    GONE = 3
    #: ``{"id": id, "code": c, "reason": r}``: close one connection of yours.
    CLOSE = 4
    #: ``{"room": id, <recipient>}`` + payload: send to members of a room you
    #: own (``Comms.room(...).send`` on another node; the recipient as
    #: ``comms.recipient_head`` writes it).
    ROOM = 5
    #: ``{"error": message, "id": id or null}``: what you asked failed here
    #: (a reply to ROOM).
    FAILED = 6
    #: Rooms (``wskit.rooms``): a member on the sender's node joins, speaks,
    #: leaves a room the receiver owns; the owner sends to members on the
    #: receiver's node; the receiver does not own that room (any more).
    ROOM_JOIN = 16
    ROOM_MESSAGE = 17
    ROOM_LEAVE = 18
    ROOM_SEND = 19
    ROOM_MOVED = 20


class Packet(NamedTuple):
    kind: Kind
    origin: int
    head: dict[str, Any]
    data: str | bytes | None


def pack(kind: Kind, origin: int, head: dict[str, Any],
         data: str | bytes | None = None) -> bytes:
    """The bytes of one packet; ``data`` keeps its type (text or binary)."""
    encoded = json.dumps(head, separators=(",", ":")).encode()
    parts = [_HEAD.pack(kind, origin, len(encoded)), encoded]
    if isinstance(data, str):
        parts += (_TEXT, data.encode())
    elif data is not None:
        parts += (_BINARY, data)
    return b"".join(parts)


def unpack(raw: bytes) -> Packet:
    """The packet in ``raw``; raises ``ValueError`` if it is not one."""
    try:
        return _unpack(raw)
    except (ValueError, struct.error) as exc:  # JSON and UTF-8 errors are ValueErrors
        raise ValueError(f"not a backplane packet: {exc}") from None


def _unpack(raw: bytes) -> Packet:
    if len(raw) < _HEAD.size:
        raise ValueError(f"{len(raw)} bytes")
    kind, origin, length = _HEAD.unpack_from(raw)
    start = _HEAD.size
    head = json.loads(raw[start:start + length])
    if not isinstance(head, dict):
        raise ValueError("its head is not an object")
    rest = raw[start + length:]
    data: str | bytes | None = None
    if rest:
        data = rest[1:].decode() if rest[:1] == _TEXT else bytes(rest[1:])
    return Packet(Kind(kind), origin, head, data)
