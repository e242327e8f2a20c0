"""``Comms``: send to any connection by its id, from anywhere (Rwf's ``Comms``).

Every :class:`WebSocket` has one, as ``ws.comms`` (and ``ctx.comms`` in a
room). It addresses connections by ``connection_id`` — the small integer a
``Sender`` and a room's ``ClientId`` carry — so a background task, a worker
thread or another connection's handler can push to a client it only knows
by number::

    ws.comms.send(7, "your report is ready")
    ws.comms.broadcast("maintenance in 5 minutes", exclude=7)
    ws.comms.room("lobby").send(wskit.Everyone, "lobby closes soon")

Recipients (for rooms) are small values: an ``int`` (one client),
:data:`Everyone`, ``Except(id, ...)`` (everyone but those), or a list, tuple
or set of ids.

Threads: every method is non-blocking and safe from any thread, following
``Sender``: in the WebSocket's own thread it acts at once; from another
thread, what can be checked (is that id connected, is its queue full) is
checked in the calling thread, which raises, and the send is handed to the
WebSocket's thread in order. A client that leaves in between loses the
message, and that is logged (``wskit`` logger).

Errors: a send to an id that is not connected (it closed, or never existed)
raises :class:`wskit.Error` of kind ``QUEUE`` naming the id; a send to a
client whose queue is full raises ``QUEUE`` too, as ``Sender.send`` does.
A broadcast never raises for one recipient: a recipient that cannot take
the message gets it reported to its own ``on_error``.

In a worker of ``--workers N`` (N > 1) that shares no backplane, every
method raises ``Error(USAGE)`` saying so: this process sees only its own
share of the clients, and answering for them all would be silently wrong.

In a cluster (``Settings.backplane``), ids of other nodes are reached
through the backplane. A send to one cannot know at once whether it
arrives: it raises ``Error(BACKPLANE)`` while the backplane is unreachable,
and otherwise returns; if that client turned out not to exist (its node
answered, or no node has its number any more) or its queue was full, the
failure comes later, to :attr:`Comms.on_error` (kind ``QUEUE``, naming the
id), or to the ``wskit.cluster`` log if no callback is set. ``ids``, ``in``
and ``len`` are exact for this node and as fresh as a fifth of
``Settings.backplane_lease`` (1 s by default) for the others.

A room of a cluster is one room whichever node owns it: ``room(room_id)``
reaches it from any node. A send to a room another node owns goes to the
owner (one publish, the owner found in Redis by the same round trip), which
delivers it as its own ``ctx.send`` would: so recipients mean the same as
on one node, every member gets the room's sends in one order, and one
sender's sends to a room arrive in the order they were sent. Failures
there (the room open nowhere, ids not in it) come later to ``on_error``,
kind ``QUEUE``, with the message a local send would raise. ``rooms``,
``exists`` and ``clients`` answer for other nodes' rooms as of the last
heartbeat.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Final, TypeAlias

from .._core.messages import Message, to_payload
from .._errors import Error, ErrorKind
from .._io.outlet import byte_size
from .backplane import room_closed
from .delivery import send_from_anywhere
from .hub import Hub
from .registry import Group

__all__ = ["Comms", "Everyone", "Except", "Recipient", "RoomComms", "missing_error",
           "recipient_head", "recipient_of"]

Sendable: TypeAlias = Message | str | bytes | bytearray | memoryview


class _Everyone:
    """The recipient "every client" (of a room, or of the WebSocket)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "wskit.Everyone"

    def __reduce__(self) -> str:
        return "Everyone"  # pickles as the module attribute: stays a singleton


#: Recipient: every client of the room (``ctx.send(wskit.Everyone, msg)``).
Everyone: Final = _Everyone()


def as_id(value: object) -> int:
    """A client id: an ``int`` (a ``ClientId`` too), never a bool or a str."""
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise Error(f"a client id is an int (a connection_id), got {value!r}", ErrorKind.USAGE)


def as_ids(value: int | Iterable[int]) -> frozenset[int]:
    """One id or an iterable of ids, as a frozenset of plain ints."""
    if isinstance(value, (str, bytes)):
        raise Error(f"client ids are ints, got {value!r}", ErrorKind.USAGE)
    if isinstance(value, Iterable):
        return frozenset(as_id(item) for item in value)
    return frozenset((as_id(value),))


class Except:
    """The recipient "everyone but these": ``Except(7)``, ``Except(7, 8)``,
    ``Except([7, 8])``. Immutable; ``ids`` is a frozenset of ints."""

    __slots__ = ("ids",)

    ids: frozenset[int]

    def __init__(self, *ids: int | Iterable[int]) -> None:
        found: set[int] = set()
        for item in ids:
            found |= as_ids(item)
        object.__setattr__(self, "ids", frozenset(found))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("wskit.Except is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Except) and other.ids == self.ids

    def __hash__(self) -> int:
        return hash((Except, self.ids))

    def __repr__(self) -> str:
        return f"wskit.Except({', '.join(map(str, sorted(self.ids)))})"


#: Who a room message goes to: one client id, :data:`Everyone`,
#: :class:`Except`, or a list/tuple/set of client ids.
Recipient: TypeAlias = "int | _Everyone | Except | Iterable[int]"


def normalize(recipient: Recipient) -> Recipient:
    """The recipient as a value that can be read twice (a generator of ids
    becomes a tuple), checked: raises ``Error(USAGE)`` for a non-recipient."""
    if recipient is Everyone or isinstance(recipient, Except):
        return recipient
    if isinstance(recipient, int) and not isinstance(recipient, bool):
        return int(recipient)
    if isinstance(recipient, (str, bytes)) or not isinstance(recipient, Iterable):
        raise Error(f"not a recipient: {recipient!r} (use a client id, wskit.Everyone, "
                    "wskit.Except(id) or a list of ids)", ErrorKind.USAGE)
    return tuple(as_id(item) for item in recipient)


def recipient_head(recipient: Recipient) -> dict[str, Any]:
    """A normalized recipient as JSON fields, for the room's owner on another
    node (:func:`recipient_of` reads it back)."""
    if recipient is Everyone:
        return {"every": True}
    if isinstance(recipient, Except):
        return {"except": sorted(recipient.ids)}
    if isinstance(recipient, int):
        return {"id": int(recipient)}
    assert isinstance(recipient, tuple)  # normalize() made any other kind one
    return {"ids": list(recipient)}


def recipient_of(head: Mapping[str, Any]) -> Recipient:
    """The recipient in fields :func:`recipient_head` wrote; raises
    ``Error(USAGE)``, ``KeyError`` or ``TypeError`` for anything else."""
    if head.get("every") is True:
        return Everyone
    if "except" in head:
        return Except(as_ids(head["except"]))
    if "id" in head:
        return as_id(head["id"])
    return tuple(as_id(item) for item in head["ids"])


def select(recipient: Recipient, members: Collection[int]) -> tuple[list[int], list[int]]:
    """``(present, missing)``: the ids of ``members`` that ``recipient``
    names, in member order for the collective kinds, and the ids it names
    that are not members (only for an id or a list of ids)."""
    if recipient is Everyone:
        return list(members), []
    if isinstance(recipient, Except):
        excluded = recipient.ids
        return [i for i in members if i not in excluded], []
    if isinstance(recipient, int) and not isinstance(recipient, bool):
        return ([int(recipient)], []) if recipient in members else ([], [int(recipient)])
    if isinstance(recipient, (str, bytes)) or not isinstance(recipient, Iterable):
        raise Error(f"not a recipient: {recipient!r} (use a client id, wskit.Everyone, "
                    "wskit.Except(id) or a list of ids)", ErrorKind.USAGE)
    present: list[int] = []
    missing: list[int] = []
    seen: set[int] = set()
    for item in recipient:
        client = as_id(item)
        if client in seen:
            continue
        seen.add(client)
        (present if client in members else missing).append(client)
    return present, missing


class Comms:
    """Send to any open connection of one WebSocket by its id: ``ws.comms``.

    ``send(id, msg)``, ``broadcast(msg, exclude=…)``, ``room(room_id)``,
    ``ids`` (who is connected now), ``id in comms``, ``len(comms)``.
    Non-blocking and safe from any thread and any task (see the module
    docstring for what is checked where).
    """

    __slots__ = ("hub",)

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    @property
    def ids(self) -> frozenset[int]:
        """The ids of the connections open now (both sides), a snapshot; in a
        cluster, every node's (module docstring: how fresh)."""
        self.hub.registry.require_whole("Comms.ids")
        return self.hub.backplane.ids()

    def __contains__(self, client_id: object) -> bool:
        self.hub.registry.require_whole("Comms (id in comms)")
        if client_id in self.hub.registry.open:
            return True
        return isinstance(client_id, int) and self.hub.backplane.knows(client_id)

    def __len__(self) -> int:
        self.hub.registry.require_whole("Comms (len(comms))")
        return self.hub.backplane.count()

    @property
    def node(self) -> int:
        """This node's number in the cluster, 0 without a backplane. The
        node of a client id is ``client_id >> 32``."""
        return self.hub.backplane.node

    @property
    def health(self) -> str:
        """``"ok"``, or ``"degraded"`` while the backplane is unreachable
        (local delivery goes on)."""
        return self.hub.backplane.health()

    @property
    def on_error(self) -> Callable[[Error], Any] | None:
        """Called, in the WebSocket's thread, with each :class:`wskit.Error`
        about a cross-node delivery that failed after its send returned (a
        remote id that no longer exists: ``QUEUE``; a message lost to a
        backplane outage: ``BACKPLANE``). ``None`` (the default) logs them
        on the ``wskit.cluster`` logger, an outage once. Never called
        without a backplane: local failures raise at once."""
        return self.hub.on_error

    @on_error.setter
    def on_error(self, handler: Callable[[Error], Any] | None) -> None:
        self.hub.on_error = handler

    def send(self, client_id: int, msg: Sendable) -> None:
        """Send to one connection by id (its ``connection_id``).

        Raises ``Error(kind=QUEUE)`` naming the id when no open connection
        has it, when it is closing, or when its queue is over
        ``Settings.max_send_queue``. An id on another node of a cluster:
        see the module docstring (``BACKPLANE``, ``on_error``).
        """
        client = as_id(client_id)
        self.hub.registry.require_whole("Comms.send")
        outlet = self.hub.registry.get(client)
        if outlet is None:
            self.hub.backplane.send(client, to_payload(msg))
            return
        send_from_anywhere(self.hub.portal, outlet, to_payload(msg))

    def broadcast(self, msg: Sendable, *, exclude: int | Iterable[int] = ()) -> None:
        """Send to every open connection but those in ``exclude``.

        The frame is encoded once for all plain server connections. A
        recipient whose queue is full misses the message; that is reported
        to its own ``on_error``, never raised here.
        """
        self.hub.broadcast(to_payload(msg), as_ids(exclude))

    def room(self, room_id: str) -> RoomComms:
        """A handle on one room by id (it need not exist yet: sending
        checks); in a cluster, whichever node owns it."""
        self.hub.registry.require_whole("Comms.room")
        return RoomComms(self, room_id)

    @property
    def rooms(self) -> frozenset[str]:
        """The ids of the rooms open now, a snapshot; in a cluster, every
        node's (other nodes' as of the last heartbeat)."""
        self.hub.registry.require_whole("Comms.rooms")
        return frozenset(self.hub.registry.groups).union(self.hub.backplane.rooms())

    def __repr__(self) -> str:
        registry = self.hub.registry
        return f"<wskit.Comms {len(registry.open)} connections, {len(registry.groups)} rooms>"


class RoomComms:
    """One room, reached from outside it: ``ws.comms.room("lobby")``.

    ``send(recipient, msg)`` goes through the room's own delivery, so its
    slow-client policy applies; ``clients`` lists who is in it. In a
    cluster, the room may be owned by any node (module docstring).
    """

    __slots__ = ("_hub", "room_id")

    def __init__(self, comms: Comms, room_id: str) -> None:
        self._hub = comms.hub
        self.room_id = room_id

    @property
    def exists(self) -> bool:
        """Whether the room is open now (on another node: as of the last
        heartbeat)."""
        room_id = self.room_id
        return room_id in self._hub.registry.groups or room_id in self._hub.backplane.rooms()

    @property
    def clients(self) -> tuple[int, ...]:
        """The client ids in the room now, in join order (empty if it is not
        open; a room of another node: as of the last heartbeat)."""
        group = self._hub.registry.groups.get(self.room_id)
        if group is not None:
            return group.member_ids()
        return tuple(self._hub.backplane.rooms().get(self.room_id, ()))

    def send(self, recipient: Recipient, msg: Sendable) -> None:
        """Send to ``recipient`` in this room (one id, :data:`Everyone`,
        :class:`Except`, a list of ids).

        Raises ``Error(kind=QUEUE)`` if the room is not open, or naming the
        ids that are not in it (the others still get the message). A room
        another node owns: raises ``Error(kind=BACKPLANE)`` while the
        backplane is unreachable; those failures come later, to
        ``Comms.on_error`` (module docstring).
        """
        data = to_payload(msg)
        recipient = normalize(recipient)
        hub = self._hub
        group = hub.registry.groups.get(self.room_id)
        if group is None:  # not this node's: another node's, or none (raises)
            hub.backplane.room_send(self.room_id, recipient_head(recipient), data)
            return
        portal = hub.portal
        if portal.in_trio_thread():
            group.deliver(recipient, data)
            return
        present, missing = select(recipient, group.member_ids())
        if missing:
            raise missing_error(self.room_id, missing, bool(present))
        # Counted against max_thread_queue until the Trio thread takes it.
        portal.run_soon(self._deliver, recipient, data, size=byte_size(data))

    def broadcast(self, msg: Sendable) -> None:
        """``send(Everyone, msg)``."""
        self.send(Everyone, msg)

    def _group(self) -> Group:
        group = self._hub.registry.groups.get(self.room_id)
        if group is None:
            raise room_closed(self.room_id)
        return group

    def _deliver(self, recipient: Recipient, data: str | bytes) -> None:
        self._group().deliver(recipient, data)

    def __repr__(self) -> str:
        return f"<wskit.RoomComms {self.room_id!r}>"


def missing_error(room_id: str, missing: list[int], some_sent: bool) -> Error:
    """The error for recipients that are not in the room."""
    names = ", ".join(map(str, missing))
    plural = "s" if len(missing) > 1 else ""
    sent = " (sent to the others)" if some_sent else ""
    return Error(f"client{plural} {names} not in room {room_id!r} (left, or never joined): "
                 f"message not sent to {'them' if plural else 'it'}{sent}",
                 ErrorKind.QUEUE, connection_id=missing[0] if len(missing) == 1 else None)
