"""What nodes of a cluster say to each other over the backplane, as bytes.

Pure functions, no I/O. One Redis message is a *batch*: the format's version and
the sending node's number, then one or more *records*, each its kind and
length, so that a node's publisher can put everything it has for one node
into one ``PUBLISH`` (``outbox.py``), and the receiver walks it without
copying (:func:`records`)::

    batch:   !B version  !I origin node   record...
    record:  !B kind  !I body length  body

A node refuses (logs and drops) a batch of another :data:`VERSION`: nodes
of wskit versions that speak different formats cannot share a Redis
database, and say so instead of misreading each other.

A ``SEND`` record's body is the recipient's id and the WebSocket frame the
sender encoded (:func:`pack_send`): the receiving node writes it as it is
to a plain server connection, the common case. Any other record's body is
a JSON head for the fields of its kind (client ids, a room id, a close
code), then the payload as it is (:func:`pack`)::

    SEND:    !Q to   frame (an unmasked, final text or binary frame)
    other:   !I head length  head (JSON)  [!B text?  payload]

Ids are JSON numbers: they stay below 2**53 (see :data:`NODE_SHIFT`).
Nothing here executes what it reads: a node trusts its Redis database, but
a malformed batch is only logged and dropped (``ValueError`` here).
"""

from __future__ import annotations

import enum
import json
import struct
from collections.abc import Iterator
from typing import Any, NamedTuple

from .._core.protocol import frame_header

__all__ = ["NODE_SHIFT", "SEND_TO", "VERSION", "Kind", "Packet", "batch_head", "frame_payload",
           "node_of", "pack", "pack_send", "records", "unpack"]

#: Bits of a connection id below its node number: a node reads from an id
#: which node holds it (``id >> NODE_SHIFT``). Node numbers stay below
#: 2**21, so ids stay below 2**53: exact in JSON and JavaScript.
NODE_SHIFT = 32

#: The format of a batch; changed whenever its bytes change meaning.
VERSION = 1
_ORIGIN = struct.Struct("!BI")
_RECORD = struct.Struct("!BI")
_SEND = struct.Struct("!BIQ")
#: The recipient's id at the start of a ``SEND`` body.
SEND_TO = struct.Struct("!Q")
_HEAD_LENGTH = struct.Struct("!I")
_TEXT = b"\x01"
_BINARY = b"\x00"


def node_of(client_id: int) -> int:
    """The node number of the node that holds ``client_id``."""
    return client_id >> NODE_SHIFT


class Kind(enum.IntEnum):
    """What a record asks of the node that receives it."""

    #: ``!Q to`` + a frame: send to one connection of yours.
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


_SEND_KIND = int(Kind.SEND)  # a plain int packs faster than an IntEnum


class Packet(NamedTuple):
    """A record other than ``SEND``, read (:func:`unpack`)."""

    kind: Kind
    origin: int
    head: dict[str, Any]
    data: str | bytes | None


def batch_head(origin: int) -> bytes:
    """What starts every batch from node ``origin``."""
    return _ORIGIN.pack(VERSION, origin)


def pack_send(to: int, data: str | bytes) -> bytes:
    """The ``SEND`` record for client ``to``: the frame encoded here, once
    (the bytes ``encode_frame`` makes; the message copied once)."""
    text = isinstance(data, str)
    payload = data.encode() if isinstance(data, str) else data
    header = frame_header(text, len(payload))
    return b"".join((_SEND.pack(_SEND_KIND, SEND_TO.size + len(header) + len(payload), to),
                     header, payload))


def pack(kind: Kind, head: dict[str, Any], data: str | bytes | None = None) -> bytes:
    """One record of any kind but ``SEND``; ``data`` keeps its type (text or
    binary)."""
    encoded = json.dumps(head, separators=(",", ":")).encode()
    parts = [b"", _HEAD_LENGTH.pack(len(encoded)), encoded]
    if isinstance(data, str):
        parts += (_TEXT, data.encode())
    elif data is not None:
        parts += (_BINARY, data)
    parts[0] = _RECORD.pack(kind, sum(map(len, parts)))
    return b"".join(parts)


def records(raw: bytes) -> tuple[int, Iterator[tuple[int, int, int]]]:
    """The origin of the batch ``raw`` and its records as ``(kind, start,
    end)``: the body is ``raw[start:end]``. Raises ``ValueError`` (the
    iterator too, for a truncated record) if ``raw`` is not a batch."""
    if len(raw) < _ORIGIN.size + _RECORD.size:
        raise ValueError(f"not a backplane batch: {len(raw)} bytes")
    version, origin = _ORIGIN.unpack_from(raw)
    if version != VERSION:
        raise ValueError(f"not a backplane batch of this wskit: format {version} from node "
                         f"{origin}, this node speaks {VERSION} (nodes of different wskit "
                         "versions share this Redis database?)")
    return origin, _walk(raw)


def _walk(raw: bytes) -> Iterator[tuple[int, int, int]]:
    pos, size, record, unpack_from = _ORIGIN.size, len(raw), _RECORD.size, _RECORD.unpack_from
    while pos < size:
        if size - pos < record:
            raise ValueError(f"not a backplane batch: {size - pos} bytes left over")
        kind, length = unpack_from(raw, pos)
        start = pos + record
        pos = start + length
        if pos > size:
            raise ValueError(f"not a backplane batch: a record of {length} bytes, "
                             f"{size - start} left")
        yield kind, start, pos


def unpack(kind: int, origin: int, body: bytes) -> Packet:
    """The record of ``kind`` (not ``SEND``) whose body is ``body``; raises
    ``ValueError`` if it is not one."""
    try:
        (length,) = _HEAD_LENGTH.unpack_from(body)
        start = _HEAD_LENGTH.size
        head = json.loads(body[start:start + length])
        if not isinstance(head, dict):
            raise ValueError("its head is not an object")
        rest = body[start + length:]
        data: str | bytes | None = None
        if rest:
            data = rest[1:].decode() if rest[:1] == _TEXT else bytes(rest[1:])
        return Packet(Kind(kind), origin, head, data)
    except (ValueError, struct.error) as exc:  # JSON and UTF-8 errors are ValueErrors
        raise ValueError(f"not a backplane record: {exc}") from None


def frame_payload(frame: bytes) -> str | bytes:
    """The message in a frame :func:`pack_send` encoded (RFC 6455 5.2: a
    final text or binary frame, unmasked), for a connection that cannot take
    the frame as it is (compressed, a client). Raises ``ValueError``."""
    if len(frame) < 2 or frame[0] not in (0x81, 0x82) or frame[1] & 0x80:
        raise ValueError("not a frame from a backplane SEND")
    size = frame[1]
    start = 2 if size < 126 else 4 if size == 126 else 10
    payload = frame[start:]
    if size >= 126:
        size = int.from_bytes(frame[2:start], "big")
    if size != len(payload):
        raise ValueError(f"not a frame from a backplane SEND: {size} bytes declared, "
                         f"{len(payload)} there")
    return payload.decode() if frame[0] == 0x81 else payload
