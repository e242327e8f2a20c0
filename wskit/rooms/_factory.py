"""Rooms: the :class:`wskit.Factory` that serves stateful rooms on one port."""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, Literal
from urllib.parse import unquote

from .._core.http import Handshake, Request, Response
from .._core.messages import CloseCode
from .._errors import Error, ErrorKind
from .._handler import Factory, Handler
from .._hub.comms import Comms
from .._hub.hub import Hub
from .._sender import Sender
from ._cluster import RoomsCluster, check_link
from ._context import RoomContext
from ._http import plain_response
from ._member import Member, MemberState
from ._room import Room
from ._values import ClientId

log = logging.getLogger("wskit.rooms")

SlowClientPolicy = Literal["disconnect", "drop"]

#: Longest room id accepted from a path, in characters (longer: 404).
MAX_ROOM_ID = 128


def check_service(service: object) -> None:
    """Refuse, at start-up, what cannot make room services: a per-connection
    factory (a ``Handler`` class, a ``wskit.Factory``) given by mistake would
    otherwise be accepted and fail with a ``TypeError`` at the first join."""
    name = getattr(service, "__qualname__", type(service).__name__)
    if isinstance(service, type) and issubclass(service, Handler):
        raise Error(f"{name} is a wskit.Handler (one per connection), not a room service: "
                    "Rooms takes a wskit.RoomService subclass (one per room, with "
                    "on_join / on_message(client, msg, ctx) / on_leave); serve a Handler "
                    "on its own, without Rooms or --rooms", ErrorKind.USAGE)
    if isinstance(service, Factory):
        raise Error(f"{type(service).__name__} is a wskit.Factory, not a room service: "
                    "Rooms takes a wskit.RoomService subclass; serve a Factory on its "
                    "own, without Rooms or --rooms", ErrorKind.USAGE)
    if not callable(service):
        raise Error(f"a room service must be callable (room_id, ctx) -> service, got "
                    f"{service!r}", ErrorKind.USAGE)
    try:
        signature = inspect.signature(service)
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return
    try:
        signature.bind("room", None)
    except TypeError:
        params = ", ".join(signature.parameters)
        raise Error(f"{name}({params}) cannot make room services: Rooms calls "
                    "service(room_id, ctx) when a room's first client joins (a "
                    "wskit.RoomService subclass does; a connection factory taking one "
                    "Sender does not)", ErrorKind.USAGE) from None


class Rooms(Factory):
    """A factory that serves stateful rooms (Stateroom's model) on one port.

    ``service`` is a :class:`RoomService` subclass, or any callable
    ``(room_id, ctx) -> service``, called when a room's first client joins::

        wskit.listen("127.0.0.1:3012", wskit.Rooms(SharedCounter))

    Paths, on the same port:

    - ``/ws/{room}`` opens a WebSocket in that room (one path segment,
      percent-decoded, at most 128 characters); ``/ws`` and ``/ws/`` open
      one in ``default_room``. ``path`` changes the prefix; override
      :meth:`room_for` to choose rooms otherwise (query, headers).
    - ``GET /status`` answers ``ok`` (a health check); ``GET /rooms`` a JSON
      summary: every room's counters and the totals since start.
      ``status_path`` / ``rooms_path`` move them, ``None`` turns them off.
    - ``GET /`` serves ``page`` (HTML) when given; override
      :meth:`on_request` to answer anything else, or to refuse requests.
    - Anything else: 404.

    Options:

    - ``grace``: seconds an empty room is kept for a client to rejoin
      (10; 0 disposes of it at once).
    - ``slow_client``: ``"disconnect"`` (default; close 1008) or ``"drop"``
      (skip messages, counted), for a client with ``max_client_queue``
      bytes or more waiting to be sent (256 KiB: dozens of full-screen
      updates, and 10,000 clients stuck at it still fit in 2.5 GiB; the
      per-connection ``Settings.max_send_queue``, 4 MiB, is the hard limit).
    - ``max_rooms``: rooms open at once; a handshake for a new room beyond
      it gets 503 (10,000, like ``max_connections``).

    One Rooms serves one WebSocket at a time (it may be reused once that
    one has shut down). Server connections only.
    """

    def __init__(
        self,
        service: Callable[[str, RoomContext], Any],
        *,
        path: str = "/ws",
        default_room: str | None = "default",
        grace: float = 10.0,
        slow_client: SlowClientPolicy = "disconnect",
        max_client_queue: int = 256 * 2**10,
        max_rooms: int | None = 10_000,
        page: str | bytes | None = None,
        status_path: str | None = "/status",
        rooms_path: str | None = "/rooms",
    ) -> None:
        check_service(service)
        if not path.startswith("/") or path.endswith("/"):
            raise Error(f"Rooms path must start with '/' and not end with one, got {path!r}",
                        ErrorKind.USAGE)
        if slow_client not in ("disconnect", "drop"):
            raise Error(f"slow_client must be 'disconnect' or 'drop', got {slow_client!r}",
                        ErrorKind.USAGE)
        if not grace >= 0 or math.isinf(grace):
            raise Error(f"grace must be a number of seconds >= 0, got {grace!r}",
                        ErrorKind.USAGE)
        if max_client_queue <= 0:
            raise Error(f"max_client_queue must be positive, got {max_client_queue!r}",
                        ErrorKind.USAGE)
        if max_rooms is not None and max_rooms <= 0:
            raise Error(f"max_rooms must be positive or None, got {max_rooms!r}",
                        ErrorKind.USAGE)
        self.service = service
        self.path = path
        self.default_room = default_room
        self.grace = float(grace)
        self.slow_client: SlowClientPolicy = slow_client
        self.max_client_queue = max_client_queue
        self.max_rooms = max_rooms
        self.page = page
        self.status_path = status_path
        self.rooms_path = rooms_path
        #: Totals since start, disposed rooms included.
        self.messages_in = self.messages_out = self.dropped = self.slow_disconnects = 0
        self._rooms: dict[str, Room] = {}
        self._hub: Hub | None = None
        self._comms: Comms | None = None
        #: Rooms across the nodes of a cluster (``Settings.backplane``), else None.
        self.cluster: RoomsCluster | None = None

    # -- overridable -------------------------------------------------------------

    def on_request(self, request: Request) -> Response | Awaitable[Response | None] | None:
        """Called first for every request (plain HTTP and upgrades), ``def``
        or ``async def``: return a :class:`Response` to answer it yourself
        (a page, a redirect, ``request.reject(403)``), ``None`` to let Rooms
        route it."""
        return None

    def room_for(self, request: Request) -> str | None:
        """The room a WebSocket request joins, or ``None`` (404). By default
        from the path: ``{path}/{room}``, ``{path}`` for ``default_room``."""
        path = request.path.partition("?")[0]
        prefix = self.path
        if path in (prefix, prefix + "/"):
            return self.default_room
        if not path.startswith(prefix + "/"):
            return None
        raw = path[len(prefix) + 1:]
        if "/" in raw:
            return None
        room_id = unquote(raw)
        return room_id if 0 < len(room_id) <= MAX_ROOM_ID else None

    # -- what you can ask ----------------------------------------------------

    @property
    def room_ids(self) -> list[str]:
        """The rooms open now."""
        return list(self._rooms)

    def summary(self) -> dict[str, Any]:
        """What ``GET /rooms`` answers: each room's :class:`RoomStats` and
        the totals since start (disposed rooms included). In a cluster,
        every node's rooms (each with its ``node``; other nodes' as of
        their last heartbeat), ``nodes``, this ``node`` and ``backplane``
        (``"ok"`` or ``"degraded"``); the totals are this node's."""
        rooms = [room.stats().as_dict() for room in list(self._rooms.values())]
        totals = {
            "rooms": rooms,
            "clients": sum(room["clients"] for room in rooms),
            "messages_in": self.messages_in,
            "messages_out": self.messages_out,
            "dropped": self.dropped,
            "slow_disconnects": self.slow_disconnects,
            "slow_client": self.slow_client,
            "max_client_queue": self.max_client_queue,
        }
        if self.cluster is not None:
            totals.update(self.cluster.summary())
        return totals

    def health(self) -> str:
        """``"ok"``, or ``"degraded"`` while the backplane is unreachable."""
        return self._hub.backplane.health() if self._hub is not None else "ok"

    # -- what the cluster drives (``_cluster.Host``) --------------------------

    def local_room(self, room_id: str) -> Room | None:
        return self._rooms.get(room_id)

    def local_rooms(self) -> list[Room]:
        return list(self._rooms.values())

    def send_remote(self, room_id: str, by_node: dict[int, list[int]],
                    data: str | bytes) -> None:
        if self.cluster is not None:
            self.cluster.deliver(room_id, by_node, data)

    # -- the Factory side --------------------------------------------------------

    def server_connected(self, out: Sender) -> Handler:
        """The handler of a connection: routes, joins, forwards, leaves."""
        self._bind(out.hub, out.comms)
        return Member(self, out, route=self._route, join=self._join)

    def client_connected(self, out: Sender) -> Handler:
        """Rooms serve server connections only."""
        raise Error("wskit.Rooms serves incoming connections only; connect with another "
                    "factory", ErrorKind.USAGE)

    def on_shutdown(self) -> None:
        """The WebSocket shuts down: timers are cancelled, empty rooms are
        disposed of now, the others as soon as their clients have left."""
        for room in list(self._rooms.values()):
            room.cancel_timer()
            if not room.active:
                room.dispose()
            else:
                room.end_grace()

    # -- internals -----------------------------------------------------------------

    def _bind(self, hub: Hub, comms: Comms) -> None:
        if self._hub is hub:
            return
        if self._hub is not None and not (self._hub.closing and not self._rooms):
            raise Error("this wskit.Rooms already serves another WebSocket; make one Rooms "
                        "per WebSocket", ErrorKind.USAGE)
        self._hub, self._comms = hub, comms
        if hub.backplane.node:
            self.cluster = RoomsCluster(self, check_link(hub.backplane), hub.registry, hub.spawn)

    def _route(self, request: Request, member: Member) -> Response | None:
        path = request.path.partition("?")[0]
        if not request.is_websocket:
            plain = plain_response(self, path)
            if plain is not None:
                return plain
        room_id = self.room_for(request)
        if room_id is None:
            return Response(404, "not found\n")
        if not request.is_websocket:
            return None  # wskit answers 426: this path speaks WebSocket
        groups = member.out.hub.registry.groups
        if room_id not in self._rooms:
            if self.max_rooms is not None and len(self._rooms) >= self.max_rooms:
                log.warning("room %r refused: %d rooms open (max_rooms)", room_id,
                            len(self._rooms))
                return Response(503, "too many rooms, try again later\n",
                                [("Retry-After", "1")])
            if room_id in groups:
                return Response(409, f"room {room_id!r} belongs to another wskit.Rooms\n")
        member.room_id = room_id
        return None

    def _join(self, member: Member, handshake: Handshake) -> Awaitable[None] | None:
        if member.room_id is None:  # on_request was bypassed: not ours to serve
            member.out.close(CloseCode.POLICY, "no room")
            return None
        if self.cluster is not None:
            return self.cluster.join(member, handshake)
        return self.join_local(member, handshake)

    def join_local(self, member: Member, handshake: Handshake) -> Awaitable[None] | None:
        """Join a room of this node (created if need be)."""
        room_id = member.room_id
        assert room_id is not None
        room = self._rooms.get(room_id)
        if room is None:
            hub, comms = self._hub, self._comms
            assert hub is not None and comms is not None
            if room_id in hub.registry.groups:
                raise Error(f"room {room_id!r} belongs to another wskit.Rooms",
                            ErrorKind.USAGE)
            room = Room(self, room_id, hub, comms, self._forget)
            hub.registry.add_group(room_id, room)
            self._rooms[room_id] = room
            log.debug("room %r: created", room_id)
            if self.cluster is not None:
                self.cluster.room_created(room)
        room.reuse()
        member.room = room
        member.client = ClientId(member.out.connection_id, room_id, handshake)
        member.state = MemberState.JOINING
        return room.run(room.join_step, (member,))

    def _forget(self, room: Room) -> None:
        if self._rooms.get(room.id) is room:
            del self._rooms[room.id]
            if self.cluster is not None:
                self.cluster.room_disposed(room)
        if self._hub is not None:
            self._hub.registry.remove_group(room.id, room)

    def __repr__(self) -> str:
        name = getattr(self.service, "__name__", type(self.service).__name__)
        return f"<wskit.Rooms {name} at {self.path}, {len(self._rooms)} rooms>"
