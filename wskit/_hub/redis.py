"""The Redis backplane: the nodes of a cluster meet in one Redis database.

Theory of operation
-------------------

A node starts by taking a *node number*: ``INCR wskit:node-counter``, then
claiming ``wskit:node:{n}`` with a random token (``SET NX``; taken: next
number). Its connection ids are ``n << 32 | k`` (``k`` counts from 1), so
any node reads from an id which node holds it (``id >> 32``), and a send to
a remote id is a ``PUBLISH`` to that node's channel, no lookup. Node
numbers stay below 2**21, so ids stay below 2**53: exact in JavaScript.

Channels: each node subscribes to ``wskit:n:{n}`` (what is for it alone)
and ``wskit:all`` (broadcasts). What a node sends goes through one
publisher task (``outbox.py``), which puts what one round trip has for a
node into one ``PUBLISH``: what one node sends reaches each other node in
the order it was sent, and the receiving node (``inbox.py``) writes the
frame a ``SEND`` carries as it is, and encodes a broadcast's frame once for
all its clients.

Keys, renewed every ``lease / 5`` seconds by the heartbeat: ``wskit:node:{n}``
(the claim, ``PX lease``), ``wskit:ids:{n}`` and ``wskit:members:{n}`` (its
connection ids and rooms, for the other nodes' ``view.View``),
``wskit:nodes`` (the set of node numbers; one that lost its ids key is dead
and removed). A node that is killed leaves its keys to expire within
``lease`` seconds. The layers' tick hooks (rooms renew their own leases)
run every tick in a task of their own: round trips are slow on a loaded node, and a heartbeat that
waited for them let the node's keys expire while it was alive (other
nodes then took it for dead). A renewal later than the lease is logged.

Faults: an unreachable Redis at start (or one that refuses the password,
or a failed TLS handshake: ``connect.py``) raises ``Error(BACKPLANE)`` from
the ``async with WebSocket`` block. Once serving, losing Redis makes the node
*degraded*: it logs that once, keeps delivering locally, raises
``Error(BACKPLANE)`` from ``comms.send`` to remote ids, delivers broadcasts
locally only, and reports messages that were in flight to
``comms.on_error``. The subscriber reconnects with exponential backoff (0.1
to 2 s, jittered) and re-subscribes; the heartbeat re-claims the node number
(raising the counter above it, since a Redis without persistence restarts
empty). A command that times out (``max(2 s, lease)``: Redis stalled, or
the node too loaded to read the answer in time) makes the node degraded
too; if the subscription held, the node is back once the heartbeat is
answered again. Delivery across an outage is at most once: nothing is
replayed.

Every method runs in the WebSocket's Trio thread unless it says otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import trio

from .._errors import Error, ErrorKind
from .._io.portal import Portal
from .._settings import redact
from .backplane import gone
from .connect import explain, open_client
from .delivery import fan_out
from .health import State, failure
from .inbox import receive
from .leases import CLAIM as _CLAIM
from .leases import RELEASE as _RELEASE
from .leases import text as _text
from .outbox import MAX_OUTBOX, Outbox
from .registry import Registry
from .view import View
from .wire import NODE_SHIFT, Kind, Packet, batch_head, node_of, pack, pack_send

__all__ = ["NODE_SHIFT", "RedisBackplane", "State", "node_of"]

log = logging.getLogger("wskit.cluster")

#: Node numbers wrap below this (ids stay under 2**53).
MAX_NODE = 2**21 - 1
#: A node's channel is this and its number.
_CHANNEL = "wskit:n:"
#: Reconnection backoff bounds, seconds.
BACKOFF_MIN, BACKOFF_MAX = 0.1, 2.0



class RedisBackplane:
    """The cluster backplane on one Redis database (module docstring)."""

    def __init__(self, url: str, *, lease: float, registry: Registry, portal: Portal,
                 report: Callable[[Error], None]) -> None:
        self.url = url
        self.lease = lease
        self.registry = registry
        self.portal = portal
        #: ``on_error`` (``Hub.report``): a delivery failed after its send returned.
        self.report = report
        #: This node's number (0 until registered).
        self.node = 0
        self.state = State.CONNECTING
        #: What this node knows of the others.
        self.view = View(lease)
        #: Handlers of the packet kinds that layers above add (rooms).
        self.handlers: dict[Kind, Callable[[Packet], None]] = {}
        #: Called after every heartbeat while up (rooms renew their leases).
        self.tick_hooks: list[Callable[[], Awaitable[None]]] = []
        #: Called once the node is stopping, while Redis may still answer.
        self.stop_hooks: list[Callable[[], Awaitable[None]]] = []
        #: Cross-node messages not sent since start (outages).
        self.lost = 0
        self.client: Any = None
        self._token = secrets.token_hex(8)
        self.outbox = Outbox(prefix=_CHANNEL, everyone=self.key("all"), report=report,
                             lost=self._lost_message)
        # Shielded: the WebSocket's nursery being cancelled must not cancel
        # coredis' own tasks (its pub/sub fails while cleaning up after a
        # cancellation); stop() ends the node's tasks instead, in order.
        self._scope = trio.CancelScope(shield=True)
        self._lost_in_outage = 0
        self._down_since = 0.0
        self._next_id = 0
        self._stopping = False
        self._listening = False  # the subscriber's subscription is live
        self._scopes: set[trio.CancelScope] = set()

    # -- keys and channels ---------------------------------------------------------

    @staticmethod
    def channel(node: int) -> str:
        return f"{_CHANNEL}{node}"

    def key(self, *parts: object) -> str:
        return "wskit:" + ":".join(map(str, parts))

    # -- lifecycle ---------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Connect, take a node number, subscribe; ``started()`` once serving,
        then run until :meth:`stop`. Raises ``Error(BACKPLANE)`` before
        ``started()`` if Redis cannot be reached."""
        started = False
        with self._scope:
            client = open_client(self.url, lease=self.lease)
            try:
                async with client:
                    self.client = client
                    await self._register()
                    try:
                        async with trio.open_nursery() as nursery:
                            await nursery.start(self._subscriber)
                            nursery.start_soon(self._stoppable, self._publisher)
                            nursery.start_soon(self._stoppable, lambda: _heartbeat(self))
                            nursery.start_soon(self._stoppable, lambda: _ticker(self))
                            self.state = State.UP
                            log.info("backplane %s: this is node %d", redact(self.url),
                                     self.node)
                            started = True
                            task_status.started()
                    finally:
                        await self._leave()
            except BaseException as exc:
                cause = failure(exc)
                if started or cause is None:
                    raise
                raise explain(self.url, cause) from cause

    def stop(self) -> None:
        """Leave the cluster now (idempotent): its keys are deleted.

        The node's own tasks are cancelled, never coredis' (a pub/sub
        cancelled from outside fails while cleaning up): the subscription
        and the client then close the way they were opened."""
        self._stopping = True
        for scope in list(self._scopes):
            scope.cancel()

    @contextlib.contextmanager
    def _stoppable_scope(self) -> Iterator[trio.CancelScope]:
        scope = trio.CancelScope()
        if self._stopping:
            scope.cancel()
        self._scopes.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._scopes.discard(scope)

    async def _stoppable(self, task: Callable[[], Awaitable[None]]) -> None:
        with self._stoppable_scope():
            await task()

    def next_id(self) -> int:
        """The next connection id of this node (the registry's allocator)."""
        self._next_id += 1
        return self.node << NODE_SHIFT | self._next_id

    async def _register(self) -> None:
        ms = int(self.lease * 1000)
        while True:
            number = int(await self.client.incr(self.key("node-counter")))
            node = (number - 1) % MAX_NODE + 1
            holder = await self.client.eval(_CLAIM, keys=[self.key("node", node)],
                                            args=[self._token, ms])
            if _text(holder) == self._token:
                break
        self.node = node
        self.outbox.head = batch_head(node)
        await self.client.set(self.key("ids", node), self.view.own_ids(frozenset()), px=ms)
        await self.client.sadd(self.key("nodes"), [node])
        self.view.live = frozenset((node,))

    async def _leave(self) -> None:
        was_up = self.state is State.UP
        self.state = State.STOPPED
        with trio.move_on_after(2) as scope:
            scope.shield = True
            for hook in self.stop_hooks:
                try:
                    await hook()
                except Exception as exc:
                    if failure(exc) is None:
                        log.exception("backplane stop hook raised")
            try:
                batch = self.outbox.take()
                if batch and was_up:  # the last words: leaves of rooms, closes
                    await self.outbox.publish(self.client, batch)
                await self.client.delete([self.key("ids", self.node),
                                          self.key("members", self.node)])
                await self.client.srem(self.key("nodes"), [self.node])
                await self.client.eval(_RELEASE, keys=[self.key("node", self.node)],
                                       args=[self._token])
            except Exception as exc:
                if failure(exc) is None:
                    raise
                log.debug("backplane: could not remove node %d's keys (%s): they expire",
                          self.node, exc)

    # -- health ----------------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self.state is State.UP

    def health(self) -> str:
        """``"ok"`` while connected, ``"degraded"`` otherwise."""
        return "ok" if self.state is State.UP else "degraded"

    def _lost(self, exc: BaseException) -> None:
        """Redis failed: degraded until the subscriber is back, or, if its
        subscription held, until the heartbeat is answered (logged once)."""
        if self.state is not State.UP:
            return
        self.state = State.DOWN
        self.view.outage()
        self._down_since = trio.current_time()
        self._lost_in_outage = 0
        log.warning("backplane %s unreachable (%s): node %d is degraded; local delivery "
                    "goes on, messages for other nodes are not sent until it is back",
                    redact(self.url), str(exc).rpartition("caused error: ")[2] or repr(exc),
                    self.node)  # (coredis names a pipeline's command: a whole message)

    def _back(self, how: str) -> None:
        if self.state is not State.DOWN:
            return
        self.state = State.UP
        log.warning("backplane %s back after %.1f s: node %d %s; %d messages for other nodes "
                    "were not sent meanwhile", redact(self.url),
                    trio.current_time() - self._down_since, self.node, how, self._lost_in_outage)

    def _drop(self, error: Error) -> None:
        """One cross-node message not sent: counted, handed to ``on_error``."""
        self.lost += 1
        self._lost_in_outage += 1
        self.report(error)

    def _lost_message(self, what: str, client_id: int | None) -> None:
        self._drop(self._unreachable(what, client_id))

    def _unreachable(self, what: str, client_id: int | None = None) -> Error:
        return Error(f"{what} not sent: the backplane ({redact(self.url)}) is unreachable "
                     "(delivery to other nodes resumes when it is back)",
                     ErrorKind.BACKPLANE, connection_id=client_id)

    # -- Backplane -------------------------------------------------------------------

    def broadcast(self, data: str | bytes, exclude: frozenset[int]) -> None:
        fan_out(self.registry.open.values(), data, exclude)
        if self.state is not State.UP:
            self._drop(self._unreachable("broadcast to other nodes"))
            return
        self.post(self.key("all"), pack(Kind.BROADCAST, {"except": list(exclude)}, data))

    def send(self, client_id: int, data: str | bytes) -> None:
        """To a connection that is not open here; safe from any thread.
        Raises ``Error(QUEUE)`` for an id of this node, ``Error(BACKPLANE)``
        while degraded; other failures are reported to ``on_error``."""
        node = client_id >> NODE_SHIFT
        if node == self.node or node == 0:
            raise gone(client_id)
        if self.state is not State.UP:
            error = self._unreachable(f"message to client {client_id}", client_id)
            self.portal.call(self._count_lost)
            raise error
        if self.outbox.size > MAX_OUTBOX:
            raise Error(f"message to client {client_id} not sent: {self.outbox.size} bytes "
                        "wait for the backplane", ErrorKind.BACKPLANE, connection_id=client_id)
        record = pack_send(client_id, data)
        if self.portal.in_trio_thread():
            self.outbox.post(self.channel(node), record, client_id)
        else:
            self.portal.run_soon(self.outbox.post, self.channel(node), record, client_id,
                                 size=len(record))

    def _count_lost(self) -> None:
        self.lost += 1
        self._lost_in_outage += 1

    @property
    def live(self) -> frozenset[int]:
        """Live node numbers (this one included), as of the last heartbeat."""
        return self.view.live

    def ids(self) -> frozenset[int]:
        return frozenset(self.registry.open) | self.view.ids()

    def knows(self, client_id: int) -> bool:
        return self.view.knows(client_id)

    def count(self) -> int:
        return len(self.registry.open) + self.view.count()

    def rooms(self) -> Mapping[str, tuple[int, ...]]:
        return self.view.rooms

    def room_send(self, room_id: str, recipient: dict[str, Any], data: str | bytes) -> None:
        """To a room this node does not own, through its owner; safe from any
        thread. Raises ``Error(BACKPLANE)`` while degraded; the room open
        nowhere, or ids not in it, are reported to ``on_error``."""
        if self.state is not State.UP:
            error = self._unreachable(f"message to room {room_id!r}")
            self.portal.call(self._count_lost)
            raise error
        if self.outbox.size > MAX_OUTBOX:
            raise Error(f"message to room {room_id!r} not sent: {self.outbox.size} bytes wait "
                        "for the backplane", ErrorKind.BACKPLANE)
        record = pack(Kind.ROOM, {"room": room_id, **recipient}, data)
        if self.portal.in_trio_thread():
            self.outbox.post_room(self.key("room", room_id), record, room_id)
        else:
            self.portal.run_soon(self.outbox.post_room, self.key("room", room_id), record,
                                 room_id, size=len(record))

    def close(self, client_id: int, code: int, reason: str) -> None:
        """Close a connection of another node (rooms' ``ctx.close``)."""
        if self.state is State.UP:
            self.post(self.channel(client_id >> NODE_SHIFT),
                      pack(Kind.CLOSE, {"id": client_id, "code": code, "reason": reason}))

    # -- publishing ------------------------------------------------------------------

    def post(self, channel: str, record: bytes, client_id: int = 0) -> None:
        """Queue one record (``Outbox.post``)."""
        self.outbox.post(channel, record, client_id)

    def post_to(self, node: int, kind: Kind, head: dict[str, Any],
                data: str | bytes | None = None) -> None:
        """Queue a record for one node (replies; layers above: rooms)."""
        self.outbox.post(self.channel(node), pack(kind, head, data))

    async def _publisher(self) -> None:
        outbox = self.outbox
        while True:
            batch = await outbox.next_batch()
            if self.state is not State.UP:
                outbox.fail(batch)
                continue
            try:
                await outbox.publish(self.client, batch)
            except Exception as exc:
                cause = failure(exc)
                if cause is None:
                    raise
                self._lost(cause)
                outbox.fail(batch)

    # -- receiving ---------------------------------------------------------------------

    async def _subscriber(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                          ) -> None:
        first = True
        delay = BACKOFF_MIN
        while not self._stopping:
            try:
                async with self.client.pubsub(
                    channels=[self.channel(self.node), self.key("all")], retry_policy=None,
                    ignore_subscribe_messages=True,
                ) as pubsub:
                    if first:
                        first = False
                        task_status.started()
                    else:
                        self._back("re-subscribed")
                    delay = BACKOFF_MIN
                    self._listening = True
                    with self._stoppable_scope():
                        async for message in pubsub:
                            if message["type"] == "message":
                                receive(self, message["data"])
                if self._stopping:
                    return
                cause: BaseException = ConnectionError("subscription ended")
            except Exception as exc:
                found = failure(exc)
                if first or found is None:
                    raise
                cause = found
            self._listening = False
            self._lost(cause)
            with self._stoppable_scope():
                await trio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, BACKOFF_MAX)

    def heard_from(self, node: int) -> None:
        """A packet came from ``node``: alive, even before a heartbeat saw it."""
        self.view.heard_from(node)

    # -- heartbeat -----------------------------------------------------------------------


    # -- keys for layers above -------------------------------------------------------

    async def claim(self, key: str, holder: str, ms: int) -> str | None:
        """Claim ``key`` for ``holder`` for ``ms`` ms unless another holds it;
        returns the holder afterwards."""
        return _text(await self.client.eval(_CLAIM, keys=[key], args=[holder, ms]))

    async def claim_all(self, keys: list[str], holder: str, ms: int) -> list[str | None]:
        """:meth:`claim` for each of ``keys``, in one round trip."""
        if not keys:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            replies = [pipe.eval(_CLAIM, keys=[key], args=[holder, ms]) for key in keys]
        return [_text(await reply) for reply in replies]

    async def release(self, key: str, holder: str) -> None:
        """Delete ``key`` if ``holder`` holds it."""
        await self.client.eval(_RELEASE, keys=[key], args=[holder])

    def __repr__(self) -> str:
        return f"<wskit Redis backplane {redact(self.url)} node {self.node} {self.state.value}>"


async def _heartbeat(bp: RedisBackplane) -> None:
    """Renew the node's keys every tick. The layers' tick hooks run in
    :func:`_ticker`: however long they take (round trips are slow on a
    loaded node), they cannot make this node miss its lease."""
    tick, renewed = bp.lease / 5, trio.current_time()
    while True:
        await trio.sleep(tick)
        if bp.state is not State.UP and not bp._listening:
            continue  # the subscriber reconnects, then says it is back
        if not await _guarded(bp, _beat, bp):
            continue
        now = trio.current_time()
        if now - renewed > bp.lease and bp._down_since < renewed:
            log.warning("backplane: node %d renewed its lease %.1f s after the previous "
                        "renewal (lease %g s): other nodes may have taken it for dead "
                        "meanwhile, moved its rooms and dropped its clients from theirs; "
                        "this node or Redis is overloaded", bp.node, now - renewed, bp.lease)
        renewed = now
        if bp._listening:  # a command timed out (Redis busy), the subscription held
            bp._back("answers again")


async def _ticker(bp: RedisBackplane) -> None:
    """The layers' tick hooks (rooms renew their leases), every tick while up."""
    while True:
        await trio.sleep(bp.lease / 5)
        for hook in list(bp.tick_hooks) if bp.state is State.UP else ():
            if not await _guarded(bp, hook):
                break


async def _guarded(bp: RedisBackplane, fn: Callable[..., Awaitable[None]], *args: Any) -> bool:
    """``await fn(*args)``; a Redis failure makes the node degraded (False)."""
    try:
        await fn(*args)
    except Exception as exc:
        cause = failure(exc)
        if cause is None:
            raise
        bp._lost(cause)
        return False
    return True


async def _beat(bp: RedisBackplane) -> None:
    """One heartbeat: renew this node's keys, read the others'."""
    ms = int(bp.lease * 1000)
    node, view, registry = bp.node, bp.view, bp.registry
    ids = view.own_ids(frozenset(registry.open))
    rooms = view.own_rooms({room_id: group.member_ids()
                            for room_id, group in registry.groups.items()})
    async with bp.client.pipeline(transaction=False) as pipe:
        claim = pipe.eval(_CLAIM, keys=[bp.key("node", node), bp.key("node-counter")],
                          args=[bp._token, ms, node])
        for part, value in (("ids", ids), ("members", rooms)):
            if value is not None:
                pipe.set(bp.key(part, node), value, px=ms)
            else:
                pipe.pexpire(bp.key(part, node), ms)
        pipe.sadd(bp.key("nodes"), [node])
        members = pipe.smembers(bp.key("nodes"))
    if _text(await claim) != bp._token:
        log.error("backplane: node number %d was taken by another node while Redis was "
                  "unreachable: connection ids may collide until this node restarts", node)
    others = view.others((int(m) for m in await members), node)
    values = await bp.client.mget([bp.key(part, n) for n in others
                                   for part in ("ids", "members")]) if others else []
    dead = view.read(node, others, values[::2], values[1::2], trio.current_time())
    if dead:
        await bp.client.srem(bp.key("nodes"), dead)
        log.info("backplane: node%s %s gone", "s" if len(dead) > 1 else "",
                 ", ".join(map(str, dead)))
