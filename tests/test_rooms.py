"""Rooms through real sockets: ``wskit.Rooms`` served by a real
``WebSocket`` on 127.0.0.1, ``websockets`` clients (and a raw socket that
never reads) as peers. Every wait is bounded by ``trio.fail_after``.

Comms are in ``test_rooms_comms``, slow consumers in ``test_rooms_slow``,
the helpers in ``_rooms_helpers``.
"""

from __future__ import annotations

import json

import pytest
import trio
import websockets
import websockets.trio.client
from _rooms_helpers import TIMEOUT, Client, Probe, http_get, join, probe_rooms, recv, recv_until

import wskit


async def test_clients_in_two_rooms_are_isolated(serve, ws_connect, log) -> None:
    server = await serve(probe_rooms(log))
    async with ws_connect(server.url("/ws/red")) as a1, \
            ws_connect(server.url("/ws/red")) as a2, \
            ws_connect(server.url("/ws/blue")) as b1, \
            ws_connect(server.url("/ws/blue")) as b2:
        ida1 = await join(a1)
        ida2 = await join(a2)
        assert await recv(a1) == f"joined {ida2}"
        idb1 = await join(b1)
        idb2 = await join(b2)
        assert await recv(b1) == f"joined {idb2}"
        assert len({ida1, ida2, idb1, idb2}) == 4

        await a1.send("say in red")
        assert await recv(a1) == f"{ida1}: in red"
        assert await recv(a2) == f"{ida1}: in red"
        await b2.send("say in blue")
        # The next thing blue hears is blue's own line: nothing leaked from red.
        assert await recv(b1) == f"{idb2}: in blue"
        assert await recv(b2) == f"{idb2}: in blue"

        # State is per room.
        await a1.send("inc")
        assert await recv(a1) == "value=1"
        await b1.send("inc")
        assert await recv(b1) == "value=1"
        await a2.send("inc")
        assert await recv(a2) == "value=2"

        # Sending to a client of another room is refused, naming it.
        await a1.send(f"to {idb1} psst")
        reply = await recv(a1)
        assert isinstance(reply, str) and reply.startswith(f"error: client {idb1} not in "
                                                           "room 'red'")
    assert sorted(args[0] for args in log.of("created")) == ["blue", "red"]


async def test_default_room_and_paths(serve, ws_connect, log) -> None:
    server = await serve(probe_rooms(log, default_room="lobby"))
    async with ws_connect(server.url("/ws")) as a, ws_connect(server.url("/ws/lobby")) as b, \
            ws_connect(server.url("/ws/caf%C3%A9?x=1")) as c:
        await join(a)
        hello = await recv(b)
        assert isinstance(hello, str) and hello.endswith(" lobby value=0")
        hello = await recv(c)
        assert isinstance(hello, str) and hello.endswith(" café value=0")
    for path in ("/ws/a/b", "/elsewhere", "/ws/" + "x" * 129):
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with ws_connect(server.url(path)):
                pass
        assert refused.value.response.status_code == 404


async def test_ordering_within_a_room(serve, ws_connect, log) -> None:
    # Two senders at once, an async on_message that yields at every message:
    # every member sees one and the same order, each sender's order kept.
    server = await serve(probe_rooms(log))
    count = 60
    async with ws_connect(server.url("/ws/order")) as a, \
            ws_connect(server.url("/ws/order")) as b, \
            ws_connect(server.url("/ws/order")) as c:
        ida, idb, idc = await join(a), await join(b), await join(c)
        await recv_until(a, lambda m: m == f"joined {idc}")
        await recv_until(b, lambda m: m == f"joined {idc}")
        seen: dict[int, list[str | bytes]] = {}

        async def send_all(client: Client, name: str) -> None:
            for i in range(count):
                await client.send(f"say {name}{i}")

        async def read_all(client: Client, client_id: int) -> None:
            got = seen.setdefault(client_id, [])
            with trio.fail_after(TIMEOUT):
                while len(got) < 2 * count:
                    got.append(await client.recv())

        async with trio.open_nursery() as nursery:
            for client, client_id in ((a, ida), (b, idb), (c, idc)):
                nursery.start_soon(read_all, client, client_id)
            nursery.start_soon(send_all, a, "a")
            nursery.start_soon(send_all, b, "b")
    assert seen[ida] == seen[idb] == seen[idc]
    lines = [str(m) for m in seen[idc]]
    assert [x for x in lines if x.startswith(f"{ida}: ")] == [
        f"{ida}: a{i}" for i in range(count)]
    assert [x for x in lines if x.startswith(f"{idb}: ")] == [
        f"{idb}: b{i}" for i in range(count)]


async def test_three_recipient_kinds_and_lists(serve, ws_connect, log) -> None:
    server = await serve(probe_rooms(log))
    async with ws_connect(server.url("/ws/r")) as a, ws_connect(server.url("/ws/r")) as b, \
            ws_connect(server.url("/ws/r")) as c:
        ida, idb, idc = await join(a), await join(b), await join(c)
        await recv_until(a, lambda m: m == f"joined {idc}")
        await recv_until(b, lambda m: m == f"joined {idc}")

        # One client.
        await a.send(f"to {idb} one")
        assert await recv(b) == f"to {idb} from {ida}: one"
        # Everyone except one: b and c hear it, a does not (a's next message
        # is the broadcast below).
        await a.send(f"except {ida} not you")
        assert await recv(b) == f"except {ida}: not you"
        assert await recv(c) == f"except {ida}: not you"
        # A list of ids.
        await c.send(f"list {ida},{idc} some")
        assert await recv(a) == "list: some"
        assert await recv(c) == "list: some"
        # Everyone.
        await b.send("say all")
        for client in (a, b, c):
            assert await recv(client) == f"{idb}: all"
        # A list with an id that is not here: the others get it, the error names it.
        await c.send(f"list {ida},999999 partial")
        assert await recv(a) == "list: partial"
        reply = await recv(c)
        assert reply == ("error: client 999999 not in room 'r' (left, or never joined): "
                         "message not sent to it (sent to the others)")


async def test_timer_is_replaced_cancelled_and_fires(serve, ws_connect, log) -> None:
    server = await serve(probe_rooms(log))
    async with ws_connect(server.url("/ws/t")) as a, ws_connect(server.url("/ws/t")) as b:
        await join(a)
        await join(b)
        await recv(a)  # joined b
        # A 60 s timer replaced by a short one: it fires now, once.
        await a.send("timer 60")
        assert await recv(a) == "timer set"
        await a.send("timer 0.01")
        assert await recv(a) == "timer set"
        assert await recv(a) == "fired 1"
        assert await recv(b) == "fired 1"
        # Nothing pending: the 60 s timer was cancelled when replaced.
        await a.send("pending")
        assert await recv(a) == "pending=False fired=1"
        # Set, then cancelled.
        await a.send("timer 60")
        assert await recv(a) == "timer set"
        await a.send("pending")
        assert await recv(a) == "pending=True fired=1"
        await a.send("cancel")
        assert await recv(a) == "timer cancelled"
        await a.send("pending")
        assert await recv(a) == "pending=False fired=1"
        # A timer set from the timer callback (a clock), replaced mid-way.
        await a.send("timer 0")
        assert await recv(a) == "timer set"
        assert await recv(a) == "fired 2"
    assert [args[1] for args in log.of("timer")] == [1, 2]


async def test_timer_callbacks_are_serialized_with_messages(serve, ws_connect, log) -> None:
    class Clock(wskit.RoomService):
        def __init__(self, room_id: str, ctx: wskit.RoomContext) -> None:
            super().__init__(room_id, ctx)
            self.ticks = 0
            self.inside = False
            ctx.set_timer(0)  # from __init__, like Stateroom's clock

        async def on_timer(self, ctx: wskit.RoomContext) -> None:
            assert not self.inside
            self.inside = True
            await trio.sleep(0.001)
            self.inside = False
            self.ticks += 1
            if self.ticks < 20:
                ctx.set_timer(0)
            ctx.send(wskit.Everyone, f"tick {self.ticks}")

        async def on_message(self, client: wskit.ClientId, msg: wskit.Message,
                             ctx: wskit.RoomContext) -> None:
            assert not self.inside
            self.inside = True
            await trio.sleep(0.001)
            self.inside = False
            ctx.send(client, f"echo {msg}")

    server = await serve(wskit.Rooms(Clock))
    async with ws_connect(server.url("/ws/clock")) as a:
        for i in range(20):
            await a.send(str(i))
        got = [await recv(a) for _ in range(40)]
    assert [m for m in got if str(m).startswith("echo")] == [f"echo {i}" for i in range(20)]
    ticks = [m for m in got if str(m).startswith("tick")]
    assert ticks[-1] == "tick 20" and len(ticks) <= 20


async def test_grace_period_keeps_state_for_a_quick_rejoin(serve, ws_connect, log) -> None:
    rooms = probe_rooms(log, grace=1.0)
    server = await serve(rooms)
    async with ws_connect(server.url("/ws/g")) as a:
        await join(a)
        for expected in (1, 2, 3):
            await a.send("inc")
            assert await recv(a) == f"value={expected}"
    await log.wait("leave")
    assert rooms.room_ids == ["g"]  # empty, in its grace period
    # A quick rejoin finds the room and its state.
    async with ws_connect(server.url("/ws/g")) as a:
        hello = await recv(a)
        assert isinstance(hello, str) and hello.endswith(" g value=3")
    await log.wait("leave", 2)
    # After the grace period the room is disposed of; a new one starts at 0.
    with trio.fail_after(TIMEOUT):
        while rooms.room_ids:  # noqa: ASYNC110 (polls the server's state; no event to wait on)
            await trio.sleep(0.02)
    async with ws_connect(server.url("/ws/g")) as a:
        hello = await recv(a)
        assert isinstance(hello, str) and hello.endswith(" g value=0")
    assert [args[0] for args in log.of("created")] == ["g", "g"]


async def test_no_grace_disposes_at_once_and_leave_reports_codes(serve, ws_connect,
                                                                 log) -> None:
    rooms = probe_rooms(log, grace=0)
    server = await serve(rooms)
    async with ws_connect(server.url("/ws/z")) as a, ws_connect(server.url("/ws/z")) as b:
        ida, idb = await join(a), await join(b)
        await recv(a)  # joined b
        await a.send(f"close {idb}")  # the room closes b with 4000
        with pytest.raises(websockets.exceptions.ConnectionClosedError):
            await recv(b)
        assert b.close_code == 4000 and b.close_reason == "closed by the room"
        assert await recv(a) == f"left {idb} 4000"
    (leave_b, leave_a) = await log.wait("leave", 2)
    assert leave_b == ("z", idb, 4000, "closed by the room")
    assert leave_a == ("z", ida, 1000, "")
    assert rooms.room_ids == []


async def test_status_rooms_and_page(serve, ws_connect, log) -> None:
    page = "<!doctype html><title>rooms</title>"
    server = await serve(probe_rooms(log, page=page, grace=0))
    host, port = server.host, server.port
    status, headers, body = await http_get(host, port, "/status")
    assert (status, body) == (200, b"ok\n")
    status, headers, body = await http_get(host, port, "/")
    assert status == 200 and body == page.encode()
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert (await http_get(host, port, "/ws/x"))[0] == 426  # a WebSocket path
    assert (await http_get(host, port, "/nope"))[0] == 404

    async with ws_connect(server.url("/ws/one")) as a, ws_connect(server.url("/ws/one")) as b, \
            ws_connect(server.url("/ws/two")) as c:
        ida = await join(a)
        await join(b)
        await join(c)
        await a.send("say hi")  # 1 in, 2 out
        await recv_until(b, lambda m: m == f"{ida}: hi")
        status, headers, body = await http_get(host, port, "/rooms")
        assert status == 200 and headers["content-type"] == "application/json"
        summary = json.loads(body)
        by_id = {room["room_id"]: room for room in summary["rooms"]}
        assert by_id.keys() == {"one", "two"}
        assert by_id["one"]["clients"] == 2 and by_id["two"]["clients"] == 1
        assert by_id["one"]["messages_in"] == 1
        # hello x2, "joined" x1, "say" x2 in room one
        assert by_id["one"]["messages_out"] == 5
        assert summary["clients"] == 3 and summary["messages_in"] == 1
        assert summary["slow_client"] == "disconnect" and summary["dropped"] == 0
    await log.wait("leave", 3)
    summary = json.loads((await http_get(host, port, "/rooms"))[2])
    assert summary["rooms"] == [] and summary["messages_in"] == 1  # totals remain

    # Without a page, "/" is 404; the endpoints can move or go.
    bare = await serve(probe_rooms(log, status_path="/healthz", rooms_path=None))
    assert (await http_get(bare.host, bare.port, "/"))[0] == 404
    assert (await http_get(bare.host, bare.port, "/healthz"))[0] == 200
    assert (await http_get(bare.host, bare.port, "/rooms"))[0] == 404


async def test_on_request_hook_and_room_for(serve, ws_connect, log) -> None:
    class Gated(wskit.Rooms):
        def on_request(self, request: wskit.Request) -> wskit.Response | None:
            if request.path == "/hello":
                return wskit.Response(200, "hi\n")
            if request.is_websocket and "token=ok" not in request.path:
                return request.reject(403, "no token\n")
            return None

        def room_for(self, request: wskit.Request) -> str | None:
            names = request.query.get("room")
            return names[0] if names else None

    server = await serve(Gated(lambda room_id, ctx: Probe(room_id, ctx, log)))
    assert (await http_get(server.host, server.port, "/hello"))[2] == b"hi\n"
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        async with ws_connect(server.url("/?room=q")):
            pass
    assert refused.value.response.status_code == 403
    async with ws_connect(server.url("/any?room=q&token=ok")) as a:
        hello = await recv(a)
        assert isinstance(hello, str) and hello.endswith(" q value=0")


async def test_a_raising_callback_closes_only_that_client(serve, ws_connect, log) -> None:
    server = await serve(probe_rooms(log))
    async with ws_connect(server.url("/ws/e")) as a, ws_connect(server.url("/ws/e")) as b:
        ida, idb = await join(a), await join(b)
        await recv(a)  # joined b
        await b.send("boom")
        with pytest.raises(websockets.exceptions.ConnectionClosedError):
            await recv(b)
        assert b.close_code == 1011
        assert await recv(a) == f"left {idb} 1011"
        await a.send("say still here")
        assert await recv(a) == f"{ida}: still here"


async def test_max_rooms_and_options(serve, ws_connect, log) -> None:
    server = await serve(probe_rooms(log, max_rooms=1))
    async with ws_connect(server.url("/ws/only")) as a:
        await join(a)
        async with ws_connect(server.url("/ws/only")) as b:  # an existing room is fine
            await join(b)
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with ws_connect(server.url("/ws/another")):
                pass
        assert refused.value.response.status_code == 503
    for bad in ({"slow_client": "ignore"}, {"grace": -1}, {"max_client_queue": 0},
                {"path": "ws"}, {"path": "/ws/"}, {"max_rooms": 0}):
        with pytest.raises(wskit.Error):
            wskit.Rooms(Probe, **bad)
    with pytest.raises(wskit.Error):
        wskit.Rooms("not callable")  # type: ignore[arg-type]


class Chatty(wskit.Handler):
    pass


def test_rooms_refuse_what_cannot_make_room_services() -> None:
    # Issue 11, item 7: each was accepted, then failed at the first join.
    for service, words in [
        (Chatty, "Chatty is a wskit.Handler (one per connection), not a room service"),
        (lambda out: None, "<lambda>(out) cannot make room services"),
        (Probe, "Probe(room_id, ctx, log) cannot make room services"),
        (wskit.Router({}), "Router is a wskit.Factory, not a room service"),
    ]:
        with pytest.raises(wskit.Error) as info:
            wskit.Rooms(service)
        assert info.value.kind is wskit.ErrorKind.USAGE
        assert words in str(info.value)
    # What can: a RoomService class, any callable taking (room_id, ctx).
    wskit.Rooms(wskit.RoomService)
    wskit.Rooms(lambda room_id, ctx, *extra: wskit.RoomService(room_id, ctx))


async def test_rooms_refuse_client_connections(log) -> None:
    async with wskit.WebSocket(probe_rooms(log)) as ws:
        with pytest.raises(wskit.Error, match="incoming connections only"):
            await ws.connect("ws://127.0.0.1:9/ws")
        ws.shutdown()


async def test_two_rooms_factories_share_one_namespace(serve, ws_connect, log) -> None:
    router = wskit.Router({
        "/a/{room}": probe_rooms(log, path="/a"),
        "/b/{room}": probe_rooms(log, path="/b"),
    })
    server = await serve(router)
    async with ws_connect(server.url("/a/x")) as a:
        await join(a)
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with ws_connect(server.url("/b/x")):
                pass
        assert refused.value.response.status_code == 409
        async with ws_connect(server.url("/b/y")) as b:
            await join(b)
            assert server.ws.comms.rooms == {"x", "y"}


def test_client_id_is_an_int_with_details() -> None:
    client = wskit.ClientId(7, "lobby")
    assert client == 7 and hash(client) == hash(7) and {7: "x"}[client] == "x"
    assert f"user{client}" == "user7" and str(client) == "7" and repr(client) == "ClientId(7)"
    assert json.dumps([client]) == "[7]"
    assert client.room_id == "lobby" and client.close_code is None and client.dropped == 0
    assert wskit.Except(1, [2, 3]) == wskit.Except([3, 2, 1])
    assert repr(wskit.Except(2, 1)) == "wskit.Except(1, 2)" and repr(wskit.Everyone) == (
        "wskit.Everyone")
    with pytest.raises(wskit.Error):
        wskit.Except("7")  # type: ignore[arg-type]


async def test_shutdown_with_rooms_open(log) -> None:
    # Shutdown: clients get 1001, on_leave runs, rooms are disposed of at
    # once despite the grace period, pending timers do not hold it up.
    rooms = probe_rooms(log, grace=60)
    with trio.fail_after(TIMEOUT):
        async with wskit.WebSocket(rooms) as ws:
            host, port = await ws.listen("127.0.0.1:0")
            async with websockets.trio.client.connect(f"ws://{host}:{port}/ws/s",
                                                      proxy=None) as a:
                await join(a)
                await a.send("timer 60")
                assert await recv(a) == "timer set"
                ws.shutdown()
                with pytest.raises(websockets.exceptions.ConnectionClosedOK):
                    await recv(a)
                assert a.close_code == 1001
    assert rooms.room_ids == []
    (leave,) = log.of("leave")
    assert leave[2] == 1001


async def test_one_rooms_serves_one_websocket_at_a_time(serve, ws_connect, log) -> None:
    rooms = probe_rooms(log)
    first = await serve(rooms)
    second = await serve(rooms)
    async with ws_connect(first.url("/ws/one")) as a:
        await join(a)
        # The factory refuses a second WebSocket while the first one runs.
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with ws_connect(second.url("/ws/one")):
                pass
        assert refused.value.response.status_code == 500
    first.ws.shutdown()
    with trio.fail_after(TIMEOUT):
        await first.exited.wait()
    # Once that one has shut down (its rooms disposed of), it may serve another.
    assert rooms.room_ids == []
    async with ws_connect(second.url("/ws/one")) as b:
        hello = await recv(b)
        assert isinstance(hello, str) and hello.endswith(" one value=0")
