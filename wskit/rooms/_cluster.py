"""Rooms across the nodes of a cluster (``Settings.backplane``).

Theory of operation
-------------------

A room lives on exactly one node at a time, its *owner*: the node that
holds the key ``wskit:room:{room_id}`` in Redis, a lease of
``Settings.backplane_lease`` seconds renewed by the owner's heartbeat
while the room exists. The first client to join a room anywhere makes its
node claim the key (``SET`` if free, atomically); the node that gets it
creates the room and its service object, as without a cluster.

A client that lands on another node joins *remotely*: that node keeps a
:class:`Proxy` of the room (its own clients in it, and who owns it) and
forwards the client's join, messages and leave to the owner, in order
(one publisher per node, and Redis keeps a connection's order). On the
owner each remote client is a :class:`RemoteMember` of the room; its
events go through one queue per room, and each runs in the room's turn
(``Room.run``): the service's callbacks run one at a time, in each
client's order, wherever the clients are. What the service sends to
remote members goes, one publish per node, to their node, which writes
the frame (encoded once) to its clients, applying the room's
``slow_client`` policy there.

Failures: a node that dies stops renewing its keys. Within about two
leases (its keys expire, then stay missing for a lease), an owner drops
the remote members of a dead node (``on_leave`` with 1006), and a node
whose proxy finds its room's key free for a lease claims it: the room is
created again there, with fresh state, and every member still connected
joins it again (``on_join`` runs again for each, on whichever node won the
claim). State kept only in the dead node's memory is lost:
``RoomService.on_persist`` is where a service saves what must survive.
Timers belong to the room, so ``on_timer`` fires on its owner, once.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol

import trio

from .._core.http import Handshake, Headers, Request, Response
from .._core.messages import CloseCode, Message
from .._errors import Error, ErrorKind
from .._hub.delivery import send_shared
from .._hub.registry import Registry
from .._hub.wire import Kind, Packet
from ._member import Member, MemberState
from ._values import ClientId

log = logging.getLogger("wskit.rooms")

NODE_SHIFT = 32  # as in _hub/redis.py: a client's node is id >> 32


class Link(Protocol):
    """What rooms use of the Redis backplane (``_hub.redis.RedisBackplane``)."""

    node: int
    lease: float
    handlers: dict[Kind, Callable[[Packet], None]]
    tick_hooks: list[Callable[[], Awaitable[None]]]
    stop_hooks: list[Callable[[], Awaitable[None]]]
    client: Any

    @property
    def live(self) -> frozenset[int]: ...
    def key(self, *parts: object) -> str: ...
    def post_to(self, node: int, kind: Kind, head: dict[str, Any],
                data: str | bytes | None = None) -> None: ...
    def close(self, client_id: int, code: int, reason: str) -> None: ...
    async def claim(self, key: str, holder: str, ms: int) -> str | None: ...
    async def claim_all(self, keys: list[str], holder: str, ms: int) -> list[str | None]: ...
    async def release(self, key: str, holder: str) -> None: ...
    def health(self) -> str: ...


class OwnedRoom(Protocol):
    """A room this node owns (``_room.Room``), as the cluster drives it."""

    id: str
    disposed: bool
    members: dict[int, Any]
    version: int
    persisted: int

    def run(self, fn: Callable[..., Any], args: tuple[Any, ...],
            after: Callable[[], None] | None = None) -> Awaitable[None] | None: ...
    def persist_step(self) -> Any: ...
    def join_step(self, member: Any) -> Any: ...
    def message_step(self, member: Any, msg: Message) -> Any: ...
    def leave(self, member: Any, code: CloseCode | int, reason: str
              ) -> Awaitable[None] | None: ...
    def reuse(self) -> None: ...
    def dispose(self) -> None: ...
    def stats(self) -> Any: ...


class Host(Protocol):
    """The ``wskit.Rooms`` a cluster serves."""

    dropped: int
    slow_disconnects: int

    @property
    def slow_client(self) -> str: ...
    @property
    def max_client_queue(self) -> int: ...
    def local_room(self, room_id: str) -> OwnedRoom | None: ...
    def local_rooms(self) -> Sequence[OwnedRoom]: ...
    def join_local(self, member: Member, handshake: Handshake) -> Awaitable[None] | None: ...


class RemoteOut:
    """``member.out`` of a remote member: closing goes to its node."""

    __slots__ = ("_link", "client_id")

    def __init__(self, link: Link, client_id: int) -> None:
        self._link = link
        self.client_id = client_id

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        self._link.close(self.client_id, int(code), reason)


class RemoteMember:
    """A client of a room this node owns, connected to another node."""

    __slots__ = ("client", "node", "out", "state")

    def __init__(self, client: ClientId, node: int, out: RemoteOut) -> None:
        self.client: ClientId | None = client
        self.node = node
        self.out = out
        self.state = MemberState.JOINING


class Proxy:
    """A room another node owns, on a node with clients in it: what those
    clients' handlers (``Member``) talk to instead of a ``Room``."""

    __slots__ = ("cluster", "id", "members", "owner")

    def __init__(self, cluster: RoomsCluster, room_id: str, owner: int) -> None:
        self.cluster = cluster
        self.id = room_id
        self.owner = owner
        self.members: dict[int, Member] = {}

    def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Awaitable[None] | None:
        fn(*args)
        return None

    def message_step(self, member: Member, msg: Message) -> None:
        self.cluster.link.post_to(self.owner, Kind.ROOM_MESSAGE,
                                  {"room": self.id, "id": member.out.connection_id}, msg.data)

    def leave(self, member: Member, code: CloseCode | int, reason: str) -> None:
        member.state = MemberState.GONE
        client_id = member.out.connection_id
        if self.members.pop(client_id, None) is None:
            return
        self.cluster.link.post_to(self.owner, Kind.ROOM_LEAVE, {
            "room": self.id, "id": client_id, "code": int(code), "reason": reason})
        if not self.members and self.cluster.proxies.get(self.id) is self:
            del self.cluster.proxies[self.id]


def handshake_head(handshake: Handshake | None) -> dict[str, Any]:
    """What a remote member's ``ClientId.handshake`` carries to the owner."""
    if handshake is None:
        return {}
    return {"path": handshake.request.path,
            "headers": [list(pair) for pair in handshake.request.headers.raw_items()],
            "peer": list(handshake.peer_addr) if handshake.peer_addr else None,
            "sub": handshake.subprotocol, "client": handshake.client_addr}


def handshake_from(head: dict[str, Any]) -> Handshake | None:
    if "path" not in head:
        return None
    peer = head.get("peer")
    return Handshake(
        request=Request("GET", str(head["path"]),
                        Headers([(str(k), str(v)) for k, v in head.get("headers", [])])),
        response=Response(101), peer_addr=(str(peer[0]), int(peer[1])) if peer else None,
        local_addr=None, subprotocol=head.get("sub"), extensions=(),
        client_addr=head.get("client"))


class RoomsCluster:
    """The rooms of one ``wskit.Rooms`` across the cluster (module docstring)."""

    def __init__(self, host: Host, link: Link, registry: Registry,
                 spawn: Callable[..., None]) -> None:
        self.host = host
        self.link = link
        self.registry = registry
        self.spawn = spawn  # a task in the WebSocket's nursery
        self.node = link.node
        #: Rooms other nodes own, with clients here.
        self.proxies: dict[str, Proxy] = {}
        #: Remote members of the rooms this node owns, by (room, client id).
        self.remote: dict[tuple[str, int], RemoteMember] = {}
        #: Every node's rooms (``GET /rooms``), as of the last heartbeat.
        self.rooms_by_node: dict[int, list[dict[str, Any]]] = {}
        self._vacant: dict[str, float] = {}  # proxied rooms whose key is free: since when
        self._queues: dict[str, trio.MemorySendChannel[tuple[Callable[..., Any],
                                                              tuple[Any, ...]]]] = {}
        link.handlers.update({Kind.ROOM_JOIN: self._on_join, Kind.ROOM_MESSAGE: self._on_message,
                              Kind.ROOM_LEAVE: self._on_leave, Kind.ROOM_SEND: self._on_send,
                              Kind.ROOM_MOVED: self._on_moved})
        link.tick_hooks.append(self._tick)
        link.stop_hooks.append(self._stop)

    @property
    def _ms(self) -> int:
        return int(self.link.lease * 1000)

    def _key(self, room_id: str) -> str:
        return self.link.key("room", room_id)

    # -- joining (the node the client connected to) -----------------------------------

    async def join(self, member: Member, handshake: Handshake) -> None:
        """Join ``member`` to its room wherever the room lives; claims it
        for this node if nobody has it."""
        room_id = member.room_id
        assert room_id is not None
        owner = self._owner_here(room_id)
        if owner is None:
            try:
                holder = await self.link.claim(self._key(room_id), str(self.node), self._ms)
            except Exception as exc:
                log.warning("room %r: cannot reach the backplane to find its owner (%s): "
                            "client %d refused with 1013", room_id, exc,
                            member.out.connection_id)
                member.out.close(CloseCode.AGAIN, "backplane unreachable, try again")
                return
            owner = self._owner_here(room_id)  # another join may have settled it meanwhile
            if owner is None:
                owner = int(holder) if holder is not None else self.node
        outlet = self.registry.open.get(member.out.connection_id)
        if member.state is MemberState.GONE or outlet is None or not outlet.is_open:
            return  # closed while we asked Redis (or while the room moved)
        if owner == self.node:
            result = self.host.join_local(member, handshake)
            if result is not None:
                await result
            return
        proxy = self.proxies.get(room_id)
        if proxy is None:
            proxy = self.proxies[room_id] = Proxy(self, room_id, owner)
        client = ClientId(member.out.connection_id, room_id, handshake)
        member.room, member.client, member.state = proxy, client, MemberState.JOINED
        proxy.members[int(client)] = member
        self.link.post_to(owner, Kind.ROOM_JOIN, {"room": room_id, "id": int(client),
                                                  "hs": handshake_head(handshake)})

    def _owner_here(self, room_id: str) -> int | None:
        room = self.host.local_room(room_id)
        if room is not None and not room.disposed:
            return self.node
        proxy = self.proxies.get(room_id)
        return proxy.owner if proxy is not None else None

    async def _rehome(self, room_id: str) -> None:
        """The room's owner changed (it died, or gave the room up): join this
        node's members of it again, wherever it lives now."""
        proxy = self.proxies.pop(room_id, None)
        if proxy is None:
            return
        for member in list(proxy.members.values()):
            if member.state is not MemberState.JOINED or member.client is None:
                continue
            handshake = member.client.handshake
            member.state, member.room, member.client = MemberState.NEW, None, None
            if handshake is not None:
                await self.join(member, handshake)

    # -- the owner's side ---------------------------------------------------------------

    def room_created(self, room: OwnedRoom) -> None:
        """A room this node owns was created: its queue of remote events."""
        send, receive = trio.open_memory_channel[tuple[Callable[..., Any], tuple[Any, ...]]](
            float("inf"))
        self._queues[room.id] = send
        self.spawn(self._pump, room, receive)

    def room_disposed(self, room: OwnedRoom) -> None:
        send = self._queues.pop(room.id, None)
        if send is not None:
            send.close()
        for key in [k for k in self.remote if k[0] == room.id]:
            del self.remote[key]
        self.spawn(self._release, room.id)

    async def _release(self, room_id: str) -> None:
        if self.host.local_room(room_id) is None:
            try:
                await self.link.release(self._key(room_id), str(self.node))
            except Exception as exc:
                log.debug("room %r: lease not released (%s): it expires", room_id, exc)

    async def _pump(self, room: OwnedRoom, receive: trio.MemoryReceiveChannel[
            tuple[Callable[..., Any], tuple[Any, ...]]]) -> None:
        async with receive:
            async for fn, args in receive:
                try:
                    result = fn(*args)
                    if result is not None and inspect.isawaitable(result):
                        await result
                except Exception:
                    flat = [*args[:1], *(args[1] if len(args) > 1 else ())]
                    member = next((m for m in flat if isinstance(m, RemoteMember)), None)
                    if member is None:
                        log.exception("room %r: a callback raised", room.id)
                        continue
                    # As for a local client: logged, and that client closed with 1011.
                    log.exception("room %r: a callback raised for client %s", room.id,
                                  member.client)
                    member.out.close(CloseCode.ERROR, "room callback failed")

    def _queue(self, room_id: str, fn: Callable[..., Any], *args: Any) -> None:
        send = self._queues.get(room_id)
        if send is not None:
            send.send_nowait((fn, args))

    def _on_join(self, packet: Packet) -> None:
        room_id, client_id = str(packet.head["room"]), int(packet.head["id"])
        room = self.host.local_room(room_id)
        if room is None or room.disposed:
            self.link.post_to(packet.origin, Kind.ROOM_MOVED, {"room": room_id})
            return
        if (room_id, client_id) in self.remote:
            return  # joined already (a join sent again while the room moved)
        client = ClientId(client_id, room_id, handshake_from(packet.head.get("hs", {})))
        member = RemoteMember(client, packet.origin, RemoteOut(self.link, client_id))
        self.remote[(room_id, client_id)] = member
        room.reuse()
        self._queue(room_id, room.run, room.join_step, (member,))

    def _on_message(self, packet: Packet) -> None:
        room_id, client_id = str(packet.head["room"]), int(packet.head["id"])
        member = self.remote.get((room_id, client_id))
        room = self.host.local_room(room_id)
        if member is None or room is None or packet.data is None:
            # Not (or no longer) a member here: the room moved, or this node
            # lost track of its members (taken for dead during an outage).
            # Its node joins its members again, wherever the room is now.
            self.link.post_to(packet.origin, Kind.ROOM_MOVED, {"room": room_id})
            return
        self._queue(room_id, room.run, room.message_step, (member, Message(packet.data)))

    def _on_leave(self, packet: Packet) -> None:
        head = packet.head
        room_id, client_id = str(head["room"]), int(head["id"])
        self._remote_left(room_id, client_id, int(head["code"]), str(head["reason"]))

    def _remote_left(self, room_id: str, client_id: int, code: int, reason: str) -> None:
        member = self.remote.pop((room_id, client_id), None)
        room = self.host.local_room(room_id)
        if member is not None and room is not None:
            self._queue(room_id, room.leave, member, _close_code(code), reason)

    def deliver(self, room_id: str, by_node: dict[int, list[int]], data: str | bytes) -> None:
        """What the owner sends to remote members: one publish per node."""
        for node, ids in by_node.items():
            self.link.post_to(node, Kind.ROOM_SEND, {"room": room_id, "ids": ids}, data)

    # -- a member's node ----------------------------------------------------------------

    def _on_send(self, packet: Packet) -> None:
        if packet.data is not None:
            self.deliver_here(map(int, packet.head["ids"]), packet.data)

    def deliver_here(self, ids: Iterable[int], data: str | bytes) -> None:
        """To this node's clients of a remote room, with the room's
        slow-client policy (as ``Room`` applies it to its own)."""
        host = self.host
        limit = host.max_client_queue
        open_ = self.registry.open
        frame: bytes | None = None
        for client_id in ids:
            conn = open_.get(client_id)
            if conn is None or not conn.is_open:
                continue
            if conn.queued_bytes >= limit:
                conn.write_pending()
            queued = conn.queued_bytes
            if queued < limit:
                try:
                    frame = send_shared(conn, data, frame)
                    continue
                except Error:
                    queued = conn.queued_bytes
            if host.slow_client == "disconnect":
                host.slow_disconnects += 1
                log.warning("client %d is too slow (%d bytes queued): closing it with 1008",
                            client_id, queued)
                conn.close(CloseCode.POLICY, f"slow client: {queued} bytes queued")
            else:
                host.dropped += 1

    def _on_moved(self, packet: Packet) -> None:
        room_id = str(packet.head["room"])
        proxy = self.proxies.get(room_id)
        if proxy is not None and proxy.owner == packet.origin:
            self.spawn(self._rehome, room_id)

    # -- the heartbeat -------------------------------------------------------------------

    async def _tick(self) -> None:
        # One round trip for all the leases, one for all the vacancies: on
        # a loaded node each round trip is slow, and a lease renewed a room
        # at a time expired while its owner was alive (the room moved).
        link, node, ms = self.link, self.node, self._ms
        mine = str(node)
        rooms = list(self.host.local_rooms())
        holders = await link.claim_all([self._key(room.id) for room in rooms], mine, ms)
        for room, holder in zip(rooms, holders, strict=True):
            if holder != mine and holder is not None:
                self._abdicate(room, int(holder))
            else:
                self._queue(room.id, room.run, room.persist_step, ())
        for (room_id, client_id), member in list(self.remote.items()):
            if member.node not in link.live:
                log.info("room %r: client %d's node %d is gone", room_id, client_id,
                         member.node)
                self._remote_left(room_id, client_id, CloseCode.ABNORMAL, "node gone")
        proxies = list(self.proxies.items())
        found = await link.client.mget([self._key(room_id) for room_id, _ in proxies]
                                       ) if proxies else ()
        for (room_id, proxy), value in zip(proxies, found, strict=True):
            if not proxy.members:  # its last member left meanwhile
                if self.proxies.get(room_id) is proxy:
                    del self.proxies[room_id]
                continue
            holder = await self._vacated(room_id, value)
            if holder is not None and int(holder) != proxy.owner:
                log.info("room %r: its owner changed from node %d to node %s", room_id,
                         proxy.owner, holder)
                await self._rehome(room_id)
        await self._share_stats()

    async def _vacated(self, room_id: str, holder: object) -> str | None:
        """The room's holder (``holder``: its key's value, just read); this
        node if it took the room over, which it does once the key has been
        free for a whole lease: a live owner re-claims its rooms within a
        heartbeat after Redis restarted empty, so only a dead owner's rooms
        move."""
        key, now = self._key(room_id), trio.current_time()
        if holder is not None:
            self._vacant.pop(room_id, None)
            return holder.decode() if isinstance(holder, bytes) else str(holder)
        since = self._vacant.get(room_id)
        if since is None or now - since > 2 * self.link.lease:  # a fresh vacancy
            self._vacant[room_id] = now
            return None
        if now - since < self.link.lease:
            return None
        del self._vacant[room_id]
        return await self.link.claim(key, str(self.node), self._ms)

    def _abdicate(self, room: OwnedRoom, owner: int) -> None:
        """Another node took this room (after Redis lost its keys): hand
        every member over to it; the state here is dropped."""
        if room.disposed:
            return  # gone meanwhile: nothing to hand over
        log.warning("room %r: node %d owns it now; its members here join it there", room.id,
                    owner)
        members = list(room.members.values())
        room.persisted = room.version  # the new owner's state wins: not saved from here
        room.dispose()
        proxy = self.proxies[room.id] = Proxy(self, room.id, owner)
        for member in members:
            if isinstance(member, RemoteMember):
                self.link.post_to(member.node, Kind.ROOM_MOVED, {"room": room.id})
            elif isinstance(member, Member) and member.client is not None:
                member.room, member.state = proxy, MemberState.JOINED
                proxy.members[int(member.client)] = member
                self.link.post_to(owner, Kind.ROOM_JOIN, {
                    "room": room.id, "id": int(member.client),
                    "hs": handshake_head(member.client.handshake)})

    async def _share_stats(self) -> None:
        rooms = [dict(room.stats().as_dict(), node=self.node)
                 for room in self.host.local_rooms()]
        client = self.link.client
        await client.set(self.link.key("rooms", self.node), json.dumps(rooms), px=self._ms)
        nodes = sorted(self.link.live)
        values = await client.mget([self.link.key("rooms", n) for n in nodes])
        self.rooms_by_node = {n: json.loads(v) for n, v in zip(nodes, values, strict=True)
                              if v is not None}

    async def _stop(self) -> None:
        # This node stops: members on other nodes leave its rooms (on_leave,
        # 1001), so the rooms end and so can the node (it waited for them
        # forever), and their nodes are told to join them again elsewhere.
        for room_id, node in {(room_id, m.node) for (room_id, _), m in self.remote.items()}:
            self.link.post_to(node, Kind.ROOM_MOVED, {"room": room_id})
        for room_id, client_id in list(self.remote):
            self._remote_left(room_id, client_id, CloseCode.AWAY, "room's node stopped")
        for room in self.host.local_rooms():  # on_persist ran when they were disposed of
            await self.link.release(self._key(room.id), str(self.node))
        await self.link.client.delete([self.link.key("rooms", self.node)])

    # -- GET /rooms -------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Every node's rooms as of the last heartbeat; this node's now."""
        mine = [dict(room.stats().as_dict(), node=self.node)
                for room in self.host.local_rooms()]
        # A room this node owns now is listed once, as this node sees it
        # (a dead owner's last report may not have expired yet).
        owned = {room["room_id"] for room in mine}
        by_node = {node: [room for room in rooms if room["room_id"] not in owned]
                   for node, rooms in self.rooms_by_node.items()
                   if node != self.node and node in self.link.live}
        by_node[self.node] = mine
        rooms = [room for node in sorted(by_node) for room in by_node[node]]
        return {"node": self.node, "backplane": self.link.health(), "rooms": rooms,
                "clients": sum(int(room["clients"]) for room in rooms),
                "nodes": [{"node": n, "rooms": len(by_node[n]),
                           "clients": sum(int(r["clients"]) for r in by_node[n])}
                          for n in sorted(by_node)]}


def _close_code(code: int) -> CloseCode | int:
    try:
        return CloseCode(code)
    except ValueError:
        return code


def check_link(link: object) -> Link:
    if not getattr(link, "node", 0):
        raise Error("not a cluster backplane", ErrorKind.INTERNAL)
    return link  # type: ignore[return-value]
