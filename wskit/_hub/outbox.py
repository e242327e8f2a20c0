"""Publishing: what a node sends to the other nodes, queued and pipelined.

Everything a node sends to others goes through one :class:`Outbox` and one
publisher task (``RedisBackplane``'s), which takes everything queued since
its last round trip and pipelines it on one Redis connection. Redis keeps
the order of one connection's commands and pushes to a subscriber in
order, so what one node sends reaches each other node in the order it was
sent.

Coalescing: the records queued for one node go out as one ``PUBLISH`` (a
batch, ``wire.py``; at most :data:`MAX_PUBLISH` bytes each), so a busy node
pays Redis' and coredis' per-command cost, and the receiver its per-message
cost, once per round trip and node rather than once per message. Each node
hears its own channel and the broadcast one, so a broadcast is a fence:
the records before it go out before it, those after it after it; records
for different nodes need no order between them.

A record for a room another node owns (``Comms.room``) is published by a
script that reads the room's owner from its key (``wskit:room:{id}``) and
publishes to that node, in the same round trip: a fence too (its node is
not known here). A room that no node holds is reported.

A publish that no subscriber received means the node it was for is gone:
each message in it that named one client (or room) is reported
(``on_error``, kind ``QUEUE``). A round that failed (Redis unreachable)
reports every message in it as lost (kind ``BACKPLANE``), once each:
nothing is retried, so nothing arrives twice.

Runs in the WebSocket's Trio thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from .._errors import Error, ErrorKind
from .wire import NODE_SHIFT, batch_head

__all__ = ["MAX_OUTBOX", "MAX_PUBLISH", "Outbox"]

#: Bytes queued for the publisher before a send raises ``Error(BACKPLANE)``.
MAX_OUTBOX = 64 * 2**20
#: Bytes of records coalesced into one publish at most (a larger record
#: goes alone). Far below Redis' limits for a subscriber's output buffer.
MAX_PUBLISH = 2**20

# Publish ARGV[2] to the channel ARGV[1] .. (the holder of KEYS[1]): a
# room's owner. -1 if no node holds the room, else how many received it.
_TO_OWNER = """
local owner = redis.call('GET', KEYS[1])
if not owner then return -1 end
return redis.call('PUBLISH', ARGV[1] .. owner, ARGV[2])
"""

#: One queued record: the channel (for a room: the room's key), the record,
#: the one client it is for (0: none in particular), the room it is for
#: (``None``: a channel's).
Entry = tuple[str, bytes, int, str | None]


class Publish:
    """One command of a round: records for one channel (or one room)."""

    __slots__ = ("channel", "clients", "records", "room", "size")

    def __init__(self, channel: str, room: str | None) -> None:
        self.channel = channel
        self.room = room
        self.records: list[bytes] = []
        self.clients: list[int] = []  # the clients named, for "its node is gone"
        self.size = 0

    def add(self, record: bytes, client_id: int) -> None:
        self.records.append(record)
        self.size += len(record)
        if client_id:
            self.clients.append(client_id)


def coalesce(batch: list[Entry], everyone: str) -> list[Publish]:
    """The commands for ``batch``, in an order that keeps every node's view
    of it (module docstring): one per node between two fences."""
    out: list[Publish] = []
    by_channel: dict[str, Publish] = {}
    for channel, record, client_id, room in batch:
        if room is None and channel != everyone:
            publish = by_channel.get(channel)
            if publish is None or (publish.size + len(record) > MAX_PUBLISH
                                   and publish.records):
                if publish is not None:
                    out.append(publish)  # full: the next goes after it
                publish = by_channel[channel] = Publish(channel, None)
            publish.add(record, client_id)
            continue
        # A fence: everything before it goes first.
        out.extend(by_channel.values())
        by_channel.clear()
        last = out[-1] if out else None
        if (room is None and last is not None and last.channel == everyone
                and last.size + len(record) <= MAX_PUBLISH):
            last.add(record, client_id)  # broadcasts in a row: one publish
            continue
        publish = Publish(channel, room)
        publish.add(record, client_id)
        out.append(publish)
    out.extend(by_channel.values())
    return out


class Outbox:
    """The records waiting for the publisher (module docstring)."""

    __slots__ = ("_entries", "_everyone", "_lost", "_report", "_wake", "head", "prefix", "size")

    def __init__(self, *, prefix: str, everyone: str, report: Callable[[Error], None],
                 lost: Callable[[str, int | None], None]) -> None:
        #: A node's channel is ``prefix`` + its number.
        self.prefix = prefix
        self._everyone = everyone  # the broadcast channel
        #: ``on_error``: a message that no node received.
        self._report = report
        #: One message not sent (Redis unreachable): what, and for which client.
        self._lost = lost
        self._entries: list[Entry] = []
        #: What starts each batch (``wire.batch_head``), once the node has a number.
        self.head = batch_head(0)
        #: Bytes queued now (read from other threads: a plain int).
        self.size = 0
        self._wake = trio.Event()

    def post(self, channel: str, record: bytes, client_id: int = 0) -> None:
        """Queue one record; ``client_id`` names the one recipient, if any
        (a node with no subscriber means that client is gone)."""
        self._entries.append((channel, record, client_id, None))
        self.size += len(record)
        self._wake.set()

    def post_room(self, key: str, record: bytes, room_id: str) -> None:
        """Queue one record for the node that holds ``key`` (a room's
        ownership key) when it is published."""
        self._entries.append((key, record, 0, room_id))
        self.size += len(record)
        self._wake.set()

    async def next_batch(self) -> list[Entry]:
        """Everything queued, once there is something."""
        await self._wake.wait()
        self._wake = trio.Event()
        return self.take()

    def take(self) -> list[Entry]:
        """Everything queued now (the queue is empty afterwards)."""
        batch, self._entries, self.size = self._entries, [], 0
        return batch

    async def publish(self, client: Any, batch: list[Entry]) -> None:
        """One round trip: ``batch`` pipelined on ``client``. Raises what
        coredis raises if Redis fails (the caller reports the batch lost)."""
        publishes = coalesce(batch, self._everyone)
        head, prefix = self.head, self.prefix
        async with client.pipeline(transaction=False) as pipe:
            replies = [pipe.publish(p.channel, b"".join((head, *p.records))) if p.room is None
                       else pipe.eval(_TO_OWNER, keys=[p.channel],
                                      args=[prefix, b"".join((head, *p.records))])
                       for p in publishes]
        counts = [await reply for reply in replies]
        for publish, received in zip(publishes, counts, strict=True):
            if received > 0:
                continue
            if publish.room is not None:
                self._report(_room_unreached(publish.room, received))
            for client_id in publish.clients:  # no node listens there
                self._report(Error(f"client {client_id} is not connected: its node "
                                   f"{client_id >> NODE_SHIFT} is gone; message not sent",
                                   ErrorKind.QUEUE, connection_id=client_id))

    def fail(self, batch: list[Entry]) -> None:
        """Every message of ``batch`` is lost (Redis unreachable)."""
        for _, _, client_id, room in batch:
            what = (f"message to room {room!r}" if room is not None else
                    f"message to client {client_id}" if client_id else
                    "message to another node")
            self._lost(what, client_id or None)


def _room_unreached(room_id: str, received: int) -> Error:
    if received < 0:
        return Error(f"room {room_id!r} is not open on any node (no client joined it, or it "
                     "was disposed): message not sent", ErrorKind.QUEUE)
    return Error(f"room {room_id!r}: the node that owns it is gone: message not sent (a "
                 "room whose owner died moves to a node with members of it within about "
                 "two backplane leases)", ErrorKind.QUEUE)
