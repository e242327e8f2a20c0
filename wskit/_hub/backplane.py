"""The backplane seam: where a delivery that may leave this process goes.

``Comms`` and broadcasts address connections by id through a
:class:`Backplane`. The in-process one, :class:`LocalBackplane` (the
default, and the only one without a cluster), delivers to this process's
registry directly: no copy, no serialisation, no cost over calling the
registry itself. A cluster backplane (Redis, in a later release) implements
the same three calls and publishes what is for other nodes.

Every method runs in the WebSocket's Trio thread.
"""

from __future__ import annotations

from typing import Protocol

from .._errors import Error, ErrorKind
from .delivery import fan_out
from .registry import Registry

__all__ = ["Backplane", "LocalBackplane", "gone"]


class Backplane(Protocol):
    def broadcast(self, data: str | bytes, exclude: frozenset[int]) -> None:
        """To every open connection (of every node) but those in ``exclude``."""

    def send(self, client_id: int, data: str | bytes) -> None:
        """To one connection by id; raises ``Error(QUEUE)`` if it is known
        not to exist."""

    def ids(self) -> frozenset[int]:
        """The ids of the open connections, as fresh as the backplane knows."""


def gone(client_id: int) -> Error:
    return Error(f"client {client_id} is not connected (it closed, or never existed): "
                 "message not sent", ErrorKind.QUEUE, connection_id=client_id)


class LocalBackplane:
    """This process only: deliveries go straight to the registry."""

    __slots__ = ("_registry",)

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def broadcast(self, data: str | bytes, exclude: frozenset[int]) -> None:
        fan_out(self._registry.open.values(), data, exclude)

    def send(self, client_id: int, data: str | bytes) -> None:
        outlet = self._registry.get(client_id)
        if outlet is None:
            raise gone(client_id)
        outlet.send(data)

    def ids(self) -> frozenset[int]:
        return frozenset(self._registry.open)
