"""The registry: every connection of one WebSocket by id, and its rooms.

Ids come from the allocator the WebSocket gives its registry. The default
draws from one counter for the whole process, because the contract says a
``connection_id`` is unique in the process (two WebSockets in one process
never share an id); a backplane gives each node an allocator of its own
(its node number in the high bits) to make ids unique across the cluster.
``open`` holds the outlets of the connections that are open now: what
``Comms``, broadcast and rooms deliver to. ``max_connections`` slots are
counted here too.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, Protocol

from .._errors import Error, ErrorKind
from .._io.driver import Connection
from .._io.outlet import Outlet

__all__ = ["Group", "Registry", "process_ids"]

#: The default id source: one per process (ids unique in the process).
process_ids: Iterator[int] = itertools.count(1)


class Group(Protocol):
    """What a room offers to ``Comms`` (implemented by ``wskit.Rooms``)."""

    def member_ids(self) -> tuple[int, ...]:
        """The clients in the group now (safe from any thread)."""

    def deliver(self, recipient: Any, data: str | bytes) -> None:
        """Send to the recipient, in the WebSocket's thread; raises
        ``Error(QUEUE)`` naming ids that are not in the group."""


class Registry:
    """Connections by id; the open ones' outlets; slots; rooms by id."""

    __slots__ = ("_ids", "_slots", "connections", "groups", "open", "partial")

    def __init__(self, ids: Iterator[int] | None = None) -> None:
        self._ids = ids if ids is not None else process_ids
        #: Every connection that has not ended, open or not.
        self.connections: dict[int, Connection] = {}
        #: The outlets of the open connections.
        self.open: dict[int, Outlet] = {}
        #: Rooms by id (one namespace per WebSocket), registered by ``wskit.Rooms``.
        self.groups: dict[str, Group] = {}
        self._slots: set[int] = set()
        #: Why this registry must not answer for every client of the service,
        #: or ``None`` (the default: it sees them all). Set on a worker of a
        #: ``--workers N`` group that shares no backplane, where a broadcast,
        #: a ``Comms`` call or a room would reach only this worker's share of
        #: the clients: they raise ``Error(USAGE)`` instead (``require_whole``).
        self.partial: str | None = None

    def require_whole(self, what: str) -> None:
        """Raise ``Error(USAGE)`` if ``what`` would see only part of the clients."""
        if self.partial is not None:
            raise Error(f"{what} {self.partial}", ErrorKind.USAGE)

    def new_id(self) -> int:
        return next(self._ids)

    def use_ids(self, ids: Iterator[int]) -> None:
        """Draw ids from ``ids`` from now on (a backplane's, before any
        connection exists)."""
        self._ids = ids

    def track(self, conn: Connection) -> None:
        self.connections[conn.id] = conn

    def opened(self, conn: Connection) -> None:
        self.open[conn.id] = conn.outlet

    def ended(self, conn: Connection) -> None:
        self.open.pop(conn.id, None)
        self.connections.pop(conn.id, None)

    def get(self, client_id: int) -> Outlet | None:
        """The open connection with that id, or ``None``."""
        return self.open.get(client_id)

    # -- max_connections ------------------------------------------------

    @property
    def slots_in_use(self) -> int:
        return len(self._slots)

    def take_slot(self, conn: Connection) -> None:
        self._slots.add(conn.id)

    def release_slot(self, conn: Connection) -> None:
        """Idempotent: the slot frees once, when the closing handshake is done."""
        self._slots.discard(conn.id)

    # -- rooms ----------------------------------------------------------

    def add_group(self, group_id: str, group: Group) -> None:
        self.require_whole("a room")
        if group_id in self.groups:
            raise Error(f"room {group_id!r} is already open on this WebSocket: room ids "
                        "are one namespace per WebSocket", ErrorKind.USAGE)
        self.groups[group_id] = group

    def remove_group(self, group_id: str, group: Group) -> None:
        if self.groups.get(group_id) is group:
            del self.groups[group_id]
