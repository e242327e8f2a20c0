"""The backplane in one process: two WebSockets on one real ``redis-server``
are two nodes (fast to start; ``test_cluster`` runs separate processes).

Also the pieces without Redis: the setting's checks, the wire format, and
the local path (no backplane: node 0, always healthy).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio
from _procs import free_port
from _redis import RedisServer, redis_server

import wskit
from wskit._hub.outbox import MAX_PUBLISH, Entry, coalesce
from wskit._hub.redis import RedisBackplane
from wskit._hub.wire import (
    SEND_TO,
    Kind,
    batch_head,
    frame_payload,
    pack,
    pack_send,
    records,
    unpack,
)


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(Path(tmp_path_factory.mktemp("redis"))) as server:
        yield server


# -- without Redis -----------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379/0", "127.0.0.1:6379", ""])
def test_backplane_takes_a_redis_url(url: str) -> None:
    with pytest.raises(wskit.Error, match="redis://") as caught:
        wskit.Settings(backplane=url)
    assert caught.value.kind is wskit.ErrorKind.USAGE


def test_backplane_url_password_never_shown() -> None:
    with pytest.raises(wskit.Error) as caught:
        wskit.Settings(backplane="http://:hunter2@host:1/0")
    assert "hunter2" not in str(caught.value)


def test_lease_bounds() -> None:
    with pytest.raises(wskit.Error, match="backplane_lease") as caught:
        wskit.Settings(backplane_lease=0.1)
    assert caught.value.kind is wskit.ErrorKind.USAGE


@pytest.mark.parametrize("data", ["héllo", b"\x00\xff", None, "", b""])
def test_wire_round_trip(data: str | bytes | None) -> None:
    record = pack(Kind.GONE, {"id": 2**52 + 1}, data)
    raw = batch_head(7) + record + record  # two records in one batch
    origin, found = records(raw)
    walked = list(found)
    assert origin == 7 and len(walked) == 2
    for kind, start, end in walked:
        assert unpack(kind, origin, raw[start:end]) == (Kind.GONE, 7, {"id": 2**52 + 1}, data)


@pytest.mark.parametrize("data", ["héllo", b"\x00\xff", "", b"", "x" * 200, b"y" * 70_000])
def test_wire_send_carries_the_frame(data: str | bytes) -> None:
    raw = batch_head(3) + pack_send(2**40 + 5, data) + pack(Kind.CLOSE, {"id": 1})
    origin, found = records(raw)
    (kind, start, end), (last, _, _) = list(found)
    assert (origin, kind, last) == (3, Kind.SEND, Kind.CLOSE)
    assert SEND_TO.unpack_from(raw, start) == (2**40 + 5,)
    frame = raw[start + SEND_TO.size:end]
    payload = data.encode() if isinstance(data, str) else data
    assert frame.endswith(payload) and frame[0] == (0x81 if isinstance(data, str) else 0x82)
    assert frame_payload(frame) == data


@pytest.mark.parametrize("raw", [b"", batch_head(1), batch_head(1) + b"\x03\x00\x00\x00\x09ab",
                                 b"\x63" + (batch_head(1) + pack(Kind.GONE, {}))[1:],
                                 batch_head(1) + pack(Kind.GONE, {})[:-1],
                                 batch_head(1) + pack(Kind.GONE, {}) + b"\x01"])
def test_wire_refuses_garbage(raw: bytes) -> None:
    with pytest.raises(ValueError, match="not a backplane batch"):
        list(records(raw)[1])


@pytest.mark.parametrize("body", [b"", b"\x00\x00\x00\x02[]", b"\x00\x00\x00\x05{\"a\":"])
def test_wire_refuses_a_bad_record(body: bytes) -> None:
    with pytest.raises(ValueError, match="not a backplane record"):
        unpack(Kind.GONE, 1, body)
    with pytest.raises(ValueError, match="not a backplane record"):
        unpack(99, 1, pack(Kind.GONE, {})[5:])  # no such kind


@pytest.mark.parametrize("frame", [b"", b"\x81", b"\x89\x00", b"\x81\x85abcd", b"\x81\x05abc"])
def test_frame_payload_refuses_other_frames(frame: bytes) -> None:
    with pytest.raises(ValueError, match="not a frame from a backplane SEND"):
        frame_payload(frame)


def test_coalesce_keeps_each_nodes_order() -> None:
    """Records for one node share a publish up to a fence (a broadcast, a
    room's record); broadcasts in a row share one; a full publish is closed."""
    batch: list[Entry] = [
        ("n:2", b"a", 7, None), ("n:3", b"b", 0, None), ("n:2", b"c", 8, None),
        ("all", b"d", 0, None), ("all", b"e", 0, None), ("n:2", b"f", 0, None),
        ("room:x", b"g", 0, "x"), ("n:2", b"h", 0, None),
        ("n:3", b"i" * MAX_PUBLISH, 0, None), ("n:3", b"j", 0, None),
    ]
    found = [(p.channel, p.room, b"".join(p.records)[:3], p.clients)
             for p in coalesce(batch, "all")]
    assert found == [("n:2", None, b"ac", [7, 8]), ("n:3", None, b"b", []),
                     ("all", None, b"de", []), ("n:2", None, b"f", []),
                     ("room:x", "x", b"g", []),
                     # Full: closed at once (no order between nodes 2 and 3).
                     ("n:3", None, b"iii", []), ("n:2", None, b"h", []),
                     ("n:3", None, b"j", [])]


async def test_local_path_has_no_node() -> None:
    async with wskit.WebSocket(lambda out: None) as ws:
        assert ws.comms.node == 0
        assert ws.comms.health == "ok"
        with pytest.raises(wskit.Error) as caught:
            ws.comms.send(2**40 + 1, "nobody")  # an id of another node: no cluster
        assert caught.value.kind is wskit.ErrorKind.QUEUE


# coredis 6.9 leaves the memory streams of a connection that never
# connected unclosed (a ResourceWarning when collected): collected here, so
# that the warning belongs to this test and no later one.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_unreachable_redis_at_start() -> None:
    settings = wskit.Settings(backplane=f"redis://:pw@127.0.0.1:{free_port()}/0")
    with pytest.raises(wskit.Error) as caught:
        async with wskit.WebSocket(lambda out: None, settings):
            pytest.fail("entered without a backplane")
    assert caught.value.kind is wskit.ErrorKind.BACKPLANE
    assert "cannot reach the backplane at redis://:***@127.0.0.1" in str(caught.value)
    assert "pw@" not in str(caught.value)
    del caught  # its traceback holds coredis' connection
    gc.collect()


# -- two nodes in one process ---------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.got: dict[int, list[str]] = {}

    def factory(self, out: wskit.Sender) -> object:
        mine = self.got.setdefault(out.connection_id, [])
        return lambda msg: mine.append(str(msg))


def on_b_client(inbox: Inbox, marker: str) -> int:
    """The client-side id of the one client that received ``marker``."""
    (found,) = [cid for cid, got in inbox.got.items() if marker in got]
    return found


async def wait_until(check: Callable[[], object], what: str) -> None:
    """Poll: what is awaited happens in other nodes' heartbeats (no event here)."""
    with trio.fail_after(10):
        while not check():  # noqa: ASYNC110
            await trio.sleep(0.02)


async def test_two_nodes_in_one_process(redis: RedisServer) -> None:
    settings = wskit.Settings(backplane=redis.url, backplane_lease=0.5)
    inbox = Inbox()
    echo = wskit.Settings()
    async with wskit.WebSocket(wskit.Handler, settings) as a, \
            wskit.WebSocket(wskit.Handler, settings) as b, \
            wskit.WebSocket(inbox.factory, echo) as clients:
        assert a.comms.node != b.comms.node and a.comms.node and b.comms.node
        _, port_a = await a.listen("127.0.0.1:0")
        _, port_b = await b.listen("127.0.0.1:0")
        for port in (port_a, port_a, port_b):
            await clients.connect(f"ws://127.0.0.1:{port}/")
        # Server-side ids carry their node in the high bits.
        await wait_until(lambda: len(a.comms.ids) == 3 and len(b.comms) == 3, "3 ids on both")
        on_a = [i for i in a.comms.ids if i >> 32 == a.comms.node]
        on_b = [i for i in b.comms.ids if i >> 32 == b.comms.node]
        assert len(on_a) == 2 and len(on_b) == 1
        assert on_b[0] in a.comms and on_a[0] in b.comms and 12345 not in a.comms

        a.comms.send(on_b[0], "a to b")
        b.comms.broadcast("b to all", exclude=on_a[0])
        a.broadcaster().send("a to all")
        await wait_until(lambda: sum(map(len, inbox.got.values())) == 6, "6 messages")
        received = sorted(sorted(v) for v in inbox.got.values())
        assert received == [["a to all"], ["a to all", "a to b", "b to all"],
                            ["a to all", "b to all"]]

        # From another thread too: handed to the Trio thread, in order.
        await trio.to_thread.run_sync(a.comms.send, on_b[0], "from a thread")
        await wait_until(lambda: sum(map(len, inbox.got.values())) == 7, "the 7th")
        assert ["a to all", "a to b", "b to all", "from a thread"] in [
            sorted(v) for v in inbox.got.values()]

        # One sender's order across kinds: sends and a broadcast in one round.
        before = list(inbox.got[on_b_client(inbox, "from a thread")])
        a.comms.send(on_b[0], "1")
        a.comms.broadcast("2", exclude=on_a)
        a.comms.send(on_b[0], "3")
        await wait_until(lambda: len(inbox.got[on_b_client(inbox, "from a thread")])
                         == len(before) + 3, "3 more")
        assert inbox.got[on_b_client(inbox, "from a thread")][len(before):] == ["1", "2", "3"]

        errors: list[wskit.Error] = []
        a.comms.on_error = errors.append
        a.comms.send(on_b[0] + 1000, "nobody")
        await wait_until(lambda: errors, "a late error")
        assert errors[0].kind is wskit.ErrorKind.QUEUE
        assert errors[0].connection_id == on_b[0] + 1000
        assert f"reported by node {b.comms.node}" in str(errors[0])
        # Two ids of a node nobody has, in one publish: each reported.
        dead = (2**20 + 3) << 32
        a.comms.send(dead | 1, "x")
        a.comms.send(dead | 2, "y")
        await wait_until(lambda: len(errors) == 3, "two more late errors")
        assert [e.connection_id for e in errors[1:]] == [dead | 1, dead | 2]
        assert all("its node 1048579 is gone" in str(e) for e in errors[1:])
        a.shutdown()
        b.shutdown()
        clients.shutdown()


async def test_slow_tick_hooks_leave_the_node_alive(redis: RedisServer) -> None:
    """The layers' tick hooks (rooms renew their leases there) are slow on a
    loaded node: the node's own keys are renewed every tick all the same,
    so another node never takes it for dead meanwhile (it did once: the
    heartbeat waited for the hooks, and a soak lost most of its messages)."""
    settings = wskit.Settings(backplane=redis.url, backplane_lease=1.0)
    async with wskit.WebSocket(wskit.Handler, settings) as a, \
            wskit.WebSocket(wskit.Handler, settings) as b, \
            wskit.WebSocket(wskit.Handler, wskit.Settings()) as clients:
        _, port = await a.listen("127.0.0.1:0")
        await clients.connect(f"ws://127.0.0.1:{port}/")
        await wait_until(lambda: len(b.comms) == 1, "a's client seen by b")
        (on_a,) = b.comms.ids
        backplane = a.comms.hub.backplane
        assert isinstance(backplane, RedisBackplane)
        stuck = trio.Event()

        async def slow_hook() -> None:  # five leases
            stuck.set()
            await trio.sleep(5)

        backplane.tick_hooks.append(slow_hook)
        with trio.fail_after(10):
            await stuck.wait()
        # Taken for dead = keys missing for a lease after they expire: two
        # leases of silence. Watch for four.
        with trio.move_on_after(4):
            while True:
                assert on_a in b.comms, "b took a for dead while a's hooks ran"
                await trio.sleep(0.05)
        a.shutdown()
        b.shutdown()
        clients.shutdown()


async def test_on_persist_when_a_room_is_disposed_of() -> None:
    """Also without a cluster: the last state, once, as the room goes."""
    saved: list[tuple[str, int]] = []

    class Counter(wskit.RoomService):
        def __init__(self, room_id: str, ctx: wskit.RoomContext) -> None:
            super().__init__(room_id, ctx)
            self.value = 0

        def on_message(self, client: wskit.ClientId, msg: wskit.Message,
                       ctx: wskit.RoomContext) -> None:
            self.value += 1

        def on_persist(self, ctx: wskit.RoomContext) -> None:
            saved.append((self.room_id, self.value))

    rooms = wskit.Rooms(Counter, grace=0)
    async with wskit.WebSocket(rooms) as server, wskit.WebSocket(wskit.Handler) as clients:
        _, port = await server.listen("127.0.0.1:0")
        out = await clients.connect(f"ws://127.0.0.1:{port}/ws/kept")
        out.send("one")
        out.send("two")
        out.close()
        await wait_until(lambda: saved, "on_persist")
        assert saved == [("kept", 2)]
        server.shutdown()
        clients.shutdown()


async def test_a_room_of_another_node(redis: RedisServer) -> None:
    """``b.comms.room(...)`` reaches a room node a owns (node b serves no
    rooms): from the Trio thread and from another thread, in order; late
    failures go to b's ``on_error`` with the message a local send raises."""

    class Hello(wskit.RoomService):
        def on_join(self, client: wskit.ClientId, ctx: wskit.RoomContext) -> None:
            ctx.send(client, f"you are {int(client)}")

    settings = wskit.Settings(backplane=redis.url, backplane_lease=0.5)
    got: dict[int, list[str]] = {}

    def member(out: wskit.Sender) -> object:
        def on_message(msg: wskit.Message) -> None:
            text = str(msg)
            if text.startswith("you are "):
                got[int(text[8:])] = mine
            else:
                mine.append(text)
        mine: list[str] = []
        return on_message

    async with wskit.WebSocket(wskit.Rooms(Hello, grace=0), settings) as a, \
            wskit.WebSocket(wskit.Handler, settings) as b, \
            wskit.WebSocket(member) as clients:
        _, port = await a.listen("127.0.0.1:0")
        for _ in range(2):
            await clients.connect(f"ws://127.0.0.1:{port}/ws/lobby")
        room = b.comms.room("lobby")
        await wait_until(lambda: len(room.clients) == 2 and len(got) == 2, "b sees 2 members")
        first, second = room.clients
        assert room.exists and b.comms.rooms == {"lobby"} and not b.comms.room("x").exists
        assert set(got) == {first, second}

        errors: list[wskit.Error] = []
        b.comms.on_error = errors.append
        room.send(wskit.Everyone, "everyone")
        room.send(wskit.Except(first), "not first")
        room.send((i for i in [second, 12345]), "a list")  # 12345: reported later
        room.send(first, "one")
        await trio.to_thread.run_sync(room.broadcast, "from a thread")
        b.comms.room("nowhere").send(wskit.Everyone, "hello?")
        await wait_until(lambda: len(got[first]) == 3 and len(got[second]) == 4
                         and len(errors) == 2, "every message and both errors")
        assert got[first] == ["everyone", "one", "from a thread"]
        assert got[second] == ["everyone", "not first", "a list", "from a thread"]
        missing, nowhere = sorted(errors, key=lambda e: e.connection_id is None)
        assert missing.kind is wskit.ErrorKind.QUEUE and missing.connection_id == 12345
        assert str(missing) == (f"client 12345 not in room 'lobby' (left, or never joined): "
                                f"message not sent to it (sent to the others); reported "
                                f"by node {a.comms.node}")
        assert nowhere.kind is wskit.ErrorKind.QUEUE and nowhere.connection_id is None
        assert str(nowhere).startswith("room 'nowhere' is not open on any node")

        # A node without the room and without a backplane raises at once, as before.
        with pytest.raises(wskit.Error, match="room 'lobby' is not open") as caught:
            clients.comms.room("lobby").send(wskit.Everyone, "local only")
        assert caught.value.kind is wskit.ErrorKind.QUEUE
        for ws in (a, b, clients):
            ws.shutdown()
