"""Publishing: what a node sends to the other nodes, queued and pipelined.

Everything a node sends to others goes through one :class:`Outbox` and one
publisher task (``RedisBackplane``'s), which takes everything queued since
its last round trip and pipelines it on one Redis connection. Redis keeps
the order of one connection's commands and pushes to a subscriber in
order, so what one node sends reaches each other node in the order it was
sent.

A message for a room another node owns (``Comms.room``) is published by a
script that reads the room's owner from its key (``wskit:room:{id}``) and
publishes to that node, in the same round trip and in order with the
rest; a room that no node holds is reported.

A publish that no subscriber received means the node it was for is gone:
each message in it that named one client (or room) is reported
(``on_error``, kind ``QUEUE``). A round that failed (Redis unreachable) reports every message
in it as lost (kind ``BACKPLANE``), once each: nothing is retried, so
nothing arrives twice.

Runs in the WebSocket's Trio thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from .._errors import Error, ErrorKind
from .wire import NODE_SHIFT

__all__ = ["MAX_OUTBOX", "Outbox"]

#: Bytes queued for the publisher before a send raises ``Error(BACKPLANE)``.
MAX_OUTBOX = 64 * 2**20

# Publish ARGV[2] to the channel ARGV[1] .. (the holder of KEYS[1]): a
# room's owner. -1 if no node holds the room, else how many received it.
_TO_OWNER = """
local owner = redis.call('GET', KEYS[1])
if not owner then return -1 end
return redis.call('PUBLISH', ARGV[1] .. owner, ARGV[2])
"""

#: One queued publish: the channel (for a room: the room's key), the packet,
#: the one client it is for (0: none in particular), the room it is for
#: (``None``: a channel's).
Entry = tuple[str, bytes, int, str | None]


class Outbox:
    """The publishes waiting for the publisher (module docstring)."""

    __slots__ = ("_entries", "_lost", "_report", "_wake", "prefix", "size")

    def __init__(self, *, prefix: str, report: Callable[[Error], None],
                 lost: Callable[[str, int | None], None]) -> None:
        #: A node's channel is ``prefix`` + its number.
        self.prefix = prefix
        #: ``on_error``: a message that no node received.
        self._report = report
        #: One message not sent (Redis unreachable): what, and for which client.
        self._lost = lost
        self._entries: list[Entry] = []
        #: Bytes queued now (read from other threads: a plain int).
        self.size = 0
        self._wake = trio.Event()

    def post(self, channel: str, packet: bytes, client_id: int = 0) -> None:
        """Queue one publish; ``client_id`` names the one recipient, if any
        (a node with no subscriber means that client is gone)."""
        self._entries.append((channel, packet, client_id, None))
        self.size += len(packet)
        self._wake.set()

    def post_room(self, key: str, packet: bytes, room_id: str) -> None:
        """Queue one publish to the node that holds ``key`` (a room's
        ownership key) now."""
        self._entries.append((key, packet, 0, room_id))
        self.size += len(packet)
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
        prefix = self.prefix
        async with client.pipeline(transaction=False) as pipe:
            replies = [pipe.publish(channel, packet) if room is None else
                       pipe.eval(_TO_OWNER, keys=[channel], args=[prefix, packet])
                       for channel, packet, _, room in batch]
        counts = [await reply for reply in replies]
        for (_, _, client_id, room), received in zip(batch, counts, strict=True):
            if received > 0:
                continue
            if room is not None:
                self._report(_room_unreached(room, received))
            elif client_id:  # no node listens there
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
