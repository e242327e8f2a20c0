"""What a node knows of the other nodes: who is alive, their connection ids
and the rooms they own, as of the last heartbeat.

Each node writes, at every heartbeat (``lease / 5``), two keys that expire
after a lease: ``wskit:ids:{n}`` (its open connection ids, packed) and
``wskit:members:{n}`` (the rooms it owns with their members' ids, JSON),
rewritten only when they changed. Each node reads the others' in the same
heartbeat: what ``comms.ids``, ``id in comms``, ``comms.rooms`` and
``comms.room(...).clients`` answer for other nodes, up to two heartbeats
old.

A node is taken for dead once its ids key has been seen missing, while
this node is connected, for a whole lease: a Redis that restarted empty
lists nobody until each node's next heartbeat, and no node dies during an
outage. A packet heard from a node makes it alive at once.

Runs in the WebSocket's Trio thread; the answers are snapshots that other
threads may read.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Iterable, Mapping, Sequence

from .wire import NODE_SHIFT

__all__ = ["Rooms", "View"]

log = logging.getLogger("wskit.cluster")

#: Rooms by id, with their members' ids in join order.
Rooms = dict[str, tuple[int, ...]]


class View:
    """This node's view of the others (module docstring)."""

    __slots__ = ("_ids", "_ids_written", "_rooms_by_node", "_rooms_written", "lease", "live",
                 "missing", "rooms")

    def __init__(self, lease: float) -> None:
        self.lease = lease
        #: Live node numbers (this one included).
        self.live: frozenset[int] = frozenset()
        #: Other nodes whose keys are missing, by number: since when (trio
        #: clock, counted only while connected).
        self.missing: dict[int, float] = {}
        #: Every room other nodes own, with its members.
        self.rooms: Rooms = {}
        self._ids: dict[int, frozenset[int]] = {}
        self._rooms_by_node: dict[int, Rooms] = {}
        self._ids_written: frozenset[int] | None = None
        self._rooms_written: Rooms | None = None

    # -- answers --------------------------------------------------------------------

    def ids(self) -> frozenset[int]:
        """Other nodes' connection ids."""
        found: frozenset[int] = frozenset()
        for ids in list(self._ids.values()):
            found |= ids
        return found

    def knows(self, client_id: int) -> bool:
        return client_id in self._ids.get(client_id >> NODE_SHIFT, ())

    def count(self) -> int:
        return sum(map(len, list(self._ids.values())))

    def heard_from(self, node: int) -> None:
        """A packet came from ``node``: alive, even before a heartbeat saw it."""
        if node not in self.live:
            self._ids.setdefault(node, frozenset())
            self.live |= {node}

    # -- this node's keys -------------------------------------------------------------

    def own_ids(self, ids: frozenset[int]) -> bytes | None:
        """What to write for this node's ids key; ``None``: unchanged."""
        if ids == self._ids_written:
            return None
        self._ids_written = ids
        return struct.pack(f"!{len(ids)}Q", *ids)

    def own_rooms(self, rooms: Rooms) -> str | None:
        """What to write for this node's rooms key; ``None``: unchanged."""
        if rooms == self._rooms_written:
            return None
        self._rooms_written = rooms
        return json.dumps(rooms, separators=(",", ":"))

    def outage(self) -> None:
        """Redis went away: write every key again once it is back (a
        restarted Redis lost them); nobody dies while we cannot see."""
        self._ids_written = self._rooms_written = None
        self.missing.clear()

    # -- the others' keys -----------------------------------------------------------------

    def others(self, listed: Iterable[int], node: int) -> list[int]:
        """The nodes to read: those listed in Redis and those known here."""
        return sorted(set(listed) - {node} | set(self._ids))

    def read(self, node: int, others: Sequence[int], ids_keys: Sequence[bytes | None],
             rooms_keys: Sequence[bytes | None], now: float) -> list[int]:
        """Take in the others' keys (read for ``others``, in order); returns
        the nodes found dead."""
        ids_by_node: dict[int, frozenset[int]] = {}
        rooms_by_node: dict[int, Rooms] = {}
        dead: list[int] = []
        for number, ids, rooms in zip(others, ids_keys, rooms_keys, strict=True):
            if ids is not None:
                ids_by_node[number] = frozenset(struct.unpack(f"!{len(ids) // 8}Q", ids))
                self.missing.pop(number, None)
            elif now - self.missing.setdefault(number, now) < self.lease:
                ids_by_node[number] = self._ids.get(number, frozenset())  # not written yet
            else:
                dead.append(number)
                del self.missing[number]
                continue
            rooms_by_node[number] = (_rooms_of(rooms) if rooms is not None else
                                     self._rooms_by_node.get(number, {}))
        self._ids = ids_by_node
        self._rooms_by_node = rooms_by_node
        self.rooms = {room_id: members for owned in rooms_by_node.values()
                      for room_id, members in owned.items()}
        self.live = frozenset(ids_by_node) | {node}
        return dead


def _rooms_of(raw: bytes) -> Rooms:
    """A node's rooms key; ``{}`` (logged) if it is not one."""
    try:
        found: Mapping[str, list[int]] = json.loads(raw)
        return {str(room_id): tuple(int(i) for i in ids) for room_id, ids in found.items()}
    except (ValueError, TypeError, AttributeError) as exc:
        log.warning("backplane: ignored a malformed rooms key (%r)", exc)
        return {}
