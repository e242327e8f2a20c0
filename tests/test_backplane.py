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
from wskit._hub.redis import RedisBackplane
from wskit._hub.wire import Kind, pack, unpack


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
    packet = unpack(pack(Kind.SEND, 7, {"to": 2**52 + 1}, data))
    assert packet == (Kind.SEND, 7, {"to": 2**52 + 1}, data)


@pytest.mark.parametrize("raw", [b"", b"\x01\x00", pack(Kind.GONE, 1, {})[:-1],
                                 b"\x63" + pack(Kind.GONE, 1, {})[1:]])
def test_wire_refuses_garbage(raw: bytes) -> None:
    with pytest.raises(ValueError, match="not a backplane packet"):
        unpack(raw)


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

        errors: list[wskit.Error] = []
        a.comms.on_error = errors.append
        a.comms.send(on_b[0] + 1000, "nobody")
        await wait_until(lambda: errors, "a late error")
        assert errors[0].kind is wskit.ErrorKind.QUEUE
        assert errors[0].connection_id == on_b[0] + 1000
        assert f"reported by node {b.comms.node}" in str(errors[0])
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
