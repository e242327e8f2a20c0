"""Receiving: what a node does with what the other nodes publish to it.

The subscriber (``RedisBackplane``'s) hands each message from Redis (a
batch of records, ``wire.py``) to :func:`receive`, in the order Redis
pushed them, in the WebSocket's Trio thread; the records of a batch are
done in order. A ``SEND`` carries the frame its sender encoded: a plain
server connection gets it as it is, without decoding or encoding the
message again. A send to a client that is not here (any more) is answered
to its sender (a ``GONE`` record, reported there to ``on_error``), and so
is a send to a room of this node that failed here (``FAILED``: the room is
not open, or ids are not in it). A malformed record is logged and dropped
(a batch that cannot be walked: the rest of it); kinds that layers above
add (rooms) go to their handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from .._errors import Error, ErrorKind
from .backplane import room_closed
from .comms import recipient_of
from .delivery import fan_out
from .registry import Registry
from .wire import SEND_TO, Kind, Packet, frame_payload, records, unpack

__all__ = ["Node", "receive"]

log = logging.getLogger("wskit.cluster")


class Node(Protocol):
    """The node that receives (``redis.RedisBackplane``)."""

    node: int
    registry: Registry
    handlers: dict[Kind, Callable[[Packet], None]]

    def heard_from(self, node: int) -> None:
        """A packet came from ``node``: it is alive."""

    def post_to(self, node: int, kind: Kind, head: dict[str, Any],
                data: str | bytes | None = None) -> None:
        """Queue a packet for one node (a reply)."""

    def report(self, error: Error) -> None:
        """A delivery this node asked for failed: ``on_error``."""


def receive(node: Node, raw: bytes) -> None:
    """Do what one message from Redis asks; never raises for bad input (the
    rest of a malformed batch is dropped, and logged)."""
    try:
        origin, found = records(raw)
        node.heard_from(origin)
        send_kind, open_ = Kind.SEND, node.registry.open
        for kind, start, end in found:
            if kind == send_kind:
                (target,) = SEND_TO.unpack_from(raw, start)
                outlet = open_.get(target)
                if outlet is not None and outlet.shares_frames:  # plain, open: the frame
                    try:
                        outlet.send_frame(raw[start + SEND_TO.size:end])
                    except Error as err:
                        node.post_to(origin, Kind.GONE, {"id": target, "error": str(err)})
                else:
                    _send(node, origin, target, raw[start + SEND_TO.size:end])
                continue
            packet = unpack(kind, origin, raw[start:end])
            try:
                _handle(node, packet)
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("backplane: dropped a malformed %s record from node %d (%r)",
                            packet.kind.name, origin, exc)
    except ValueError as exc:
        log.warning("backplane: dropped a batch: %s", exc)


def _send(node: Node, origin: int, target: int, frame: bytes) -> None:
    """A ``SEND`` for a connection that cannot take the frame as it is (a
    client, compression), or that is not here."""
    outlet = node.registry.get(target)
    if outlet is None:
        node.post_to(origin, Kind.GONE, {"id": target})
        return
    try:
        outlet.send(frame_payload(frame))
    except Error as err:
        node.post_to(origin, Kind.GONE, {"id": target, "error": str(err)})


def _handle(node: Node, packet: Packet) -> None:
    head, data = packet.head, packet.data
    kind = packet.kind
    if kind is Kind.BROADCAST:
        if packet.origin != node.node and data is not None:
            fan_out(node.registry.open.values(), data, frozenset(map(int, head["except"])))
    elif kind is Kind.GONE:
        client_id = int(head["id"])
        message = head.get("error")
        node.report(Error(f"{message}; reported by node {packet.origin}" if message else
                          f"client {client_id} is not connected (it closed, or never "
                          f"existed): message not sent; reported by node {packet.origin}",
                          ErrorKind.QUEUE, connection_id=client_id))
    elif kind is Kind.CLOSE:
        outlet = node.registry.get(int(head["id"]))
        if outlet is not None:
            outlet.close(int(head["code"]), str(head["reason"]))
    elif kind is Kind.ROOM:
        _to_room(node, packet)
    elif kind is Kind.FAILED:
        named = head.get("id")
        node.report(Error(f"{head['error']}; reported by node {packet.origin}",
                          ErrorKind.QUEUE, connection_id=int(named) if named is not None else None))
    else:
        handler = node.handlers.get(kind)
        if handler is not None:
            handler(packet)


def _to_room(node: Node, packet: Packet) -> None:
    """``Comms.room(...).send`` on another node, to a room of this node: as
    the room's own ``ctx.send`` (its members on every node, its slow-client
    policy); a failure goes back to the sender."""
    room_id = str(packet.head["room"])
    group = node.registry.groups.get(room_id)
    try:
        if group is None:
            raise room_closed(room_id, f" on node {node.node}")
        if packet.data is None:
            raise ValueError("no payload")
        group.deliver(recipient_of(packet.head), packet.data)
    except Error as err:
        node.post_to(packet.origin, Kind.FAILED, {"error": str(err), "id": err.connection_id})
