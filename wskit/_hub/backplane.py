"""The backplane seam: where a delivery that may leave this process goes.

``Comms`` and broadcasts address connections by id through a
:class:`Backplane`. The in-process one, :class:`LocalBackplane` (the
default, and the only one without a cluster), delivers to this process's
registry directly: no copy, no serialisation, no cost over calling the
registry itself (``Comms.send`` asks the backplane only for an id that is
not open here). The Redis backplane (``_hub/redis.py``, when
``Settings.backplane`` is set) implements the same calls and publishes what
is for other nodes.

Every method runs in the WebSocket's Trio thread unless it says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from .._errors import Error, ErrorKind
from .delivery import fan_out
from .registry import Registry

__all__ = ["Backplane", "LocalBackplane", "gone", "room_closed"]


class Backplane(Protocol):
    #: This node's number in the cluster (0: no cluster).
    node: int

    def broadcast(self, data: str | bytes, exclude: frozenset[int]) -> None:
        """To every open connection (of every node) but those in ``exclude``."""

    def send(self, client_id: int, data: str | bytes) -> None:
        """To a connection that is not open in this process, from any thread:
        raises ``Error(QUEUE)`` if it is known not to exist, ``Error(BACKPLANE)``
        if it cannot be reached now."""

    def ids(self) -> frozenset[int]:
        """The ids of the open connections, as fresh as the backplane knows."""

    def knows(self, client_id: int) -> bool:
        """Whether ``client_id`` is open on another node, as far as known."""

    def count(self) -> int:
        """How many connections are open, as far as known."""

    def health(self) -> str:
        """``"ok"``, or ``"degraded"`` while other nodes cannot be reached."""

    def rooms(self) -> Mapping[str, tuple[int, ...]]:
        """The rooms other nodes own, with their members, as fresh as the
        backplane knows (this node's own are ``Registry.groups``)."""

    def room_send(self, room_id: str, recipient: dict[str, Any], data: str | bytes) -> None:
        """To a room that is not open in this process, from any thread:
        ``recipient`` as ``comms.recipient_head`` encodes it. Raises
        ``Error(QUEUE)`` if it is known not to be open, ``Error(BACKPLANE)``
        if the backplane cannot be reached now."""


def gone(client_id: int) -> Error:
    return Error(f"client {client_id} is not connected (it closed, or never existed): "
                 "message not sent", ErrorKind.QUEUE, connection_id=client_id)


def room_closed(room_id: str, where: str = "") -> Error:
    return Error(f"room {room_id!r} is not open{where} (no client joined it, or it was "
                 "disposed): message not sent", ErrorKind.QUEUE)


class LocalBackplane:
    """This process only: deliveries go straight to the registry."""

    __slots__ = ("_registry",)

    node = 0

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def broadcast(self, data: str | bytes, exclude: frozenset[int]) -> None:
        fan_out(self._registry.open.values(), data, exclude)

    def send(self, client_id: int, data: str | bytes) -> None:
        raise gone(client_id)  # asked only for ids that are not open here

    def ids(self) -> frozenset[int]:
        return frozenset(self._registry.open)

    def knows(self, client_id: int) -> bool:
        return False

    def count(self) -> int:
        return len(self._registry.open)

    def health(self) -> str:
        return "ok"

    def rooms(self) -> Mapping[str, tuple[int, ...]]:
        return {}

    def room_send(self, room_id: str, recipient: dict[str, Any], data: str | bytes) -> None:
        raise room_closed(room_id)  # asked only for rooms that are not open here
