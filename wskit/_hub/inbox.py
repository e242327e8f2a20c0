"""Receiving: what a node does with what the other nodes publish to it.

The subscriber (``RedisBackplane``'s) hands each message from Redis to
:func:`receive`, in the order Redis pushed them, in the WebSocket's Trio
thread. A send to a client that is not here (any more) is answered to its
sender (a ``GONE`` packet, reported there to ``on_error``), and so is a
send to a room of this node that failed here (``FAILED``: the room is not
open, or ids are not in it); a malformed packet is logged and dropped;
kinds that layers above add (rooms) go to their handlers.
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
from .wire import Kind, Packet, unpack

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
    """Do what one message from Redis asks; never raises for bad input."""
    try:
        packet = unpack(raw)
    except ValueError as exc:
        log.warning("backplane: dropped a packet: %s", exc)
        return
    try:
        _handle(node, packet)
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("backplane: dropped a malformed %s packet from node %d (%r)",
                    packet.kind.name, packet.origin, exc)


def _handle(node: Node, packet: Packet) -> None:
    head, data = packet.head, packet.data
    node.heard_from(packet.origin)
    kind = packet.kind
    if kind is Kind.SEND:
        target = int(head["to"])
        outlet = node.registry.get(target)
        if outlet is None or data is None:
            node.post_to(packet.origin, Kind.GONE, {"id": target})
            return
        try:
            outlet.send(data)
        except Error as err:
            node.post_to(packet.origin, Kind.GONE, {"id": target, "error": str(err)})
    elif kind is Kind.BROADCAST:
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
