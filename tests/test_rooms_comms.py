"""Comms through real sockets: ``ws.comms`` and ``ctx`` from rooms, threads,
background tasks and plain handlers (helpers in ``_rooms_helpers``)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import websockets
import websockets.trio.client
from _rooms_helpers import TIMEOUT, join, probe_rooms, recv

import wskit


async def test_comms_from_a_thread_and_a_background_task(serve, ws_connect, log) -> None:
    server = await serve(probe_rooms(log))
    comms = server.ws.comms
    async with ws_connect(server.url("/ws/c")) as a, ws_connect(server.url("/ws/c")) as b:
        ida, idb = await join(a), await join(b)
        await recv(a)  # joined b
        assert {ida, idb} <= comms.ids and ida in comms and len(comms) >= 2
        assert comms.room("c").clients == (ida, idb) and comms.rooms == {"c"}

        # From other threads: by id, to a room, to everyone but one.
        def from_thread() -> None:
            comms.send(ida, "thread to a")
            comms.room("c").send(wskit.Everyone, "thread to room")
            comms.room("c").send((i for i in [idb]), "thread to b")  # read twice
            comms.broadcast("thread to all but a", exclude=ida)

        with trio.fail_after(TIMEOUT):
            await trio.to_thread.run_sync(from_thread)
        assert [await recv(a) for _ in range(2)] == ["thread to a", "thread to room"]
        assert [await recv(b) for _ in range(3)] == [
            "thread to room", "thread to b", "thread to all but a"]

        # From a background task of the server's own Trio run.
        async def pusher(task_status: trio.TaskStatus[None]) -> None:
            task_status.started()
            for i in range(3):
                comms.send(idb, f"push {i}")
                await trio.lowlevel.checkpoint()
            comms.room("c").broadcast(b"\x00bin")

        async with trio.open_nursery() as nursery:
            await nursery.start(pusher)
        assert [await recv(b) for _ in range(4)] == ["push 0", "push 1", "push 2", b"\x00bin"]
        assert await recv(a) == b"\x00bin"


async def test_send_to_a_gone_id_raises(serve, ws_connect, log) -> None:
    server = await serve(probe_rooms(log, grace=0))
    comms = server.ws.comms
    async with ws_connect(server.url("/ws/gone")) as a:
        ida = await join(a)
    await log.wait("leave")
    for send in (lambda: comms.send(ida, "late"),
                 lambda: comms.send(4_000_000, "never")):
        with pytest.raises(wskit.Error) as raised:
            send()
        assert raised.value.kind is wskit.ErrorKind.QUEUE
        assert "is not connected" in str(raised.value)
    with pytest.raises(wskit.Error, match=f"client {ida} is not connected"):
        await trio.to_thread.run_sync(comms.send, ida, "from a thread")
    # The room is gone too (grace=0).
    with pytest.raises(wskit.Error, match="room 'gone' is not open") as raised:
        comms.room("gone").send(wskit.Everyone, "anyone?")
    assert raised.value.kind is wskit.ErrorKind.QUEUE
    with pytest.raises(wskit.Error, match="room 'gone' is not open"):
        await trio.to_thread.run_sync(comms.room("gone").broadcast, "anyone?")
    # A room that is open, an id that is not in it, from a thread.
    async with ws_connect(server.url("/ws/here")) as b:
        idb = await join(b)
        with pytest.raises(wskit.Error, match=f"client {ida} not in room 'here'"):
            await trio.to_thread.run_sync(comms.room("here").send, ida, "x")
        comms.room("here").send([idb], "still fine")
        assert await recv(b) == "still fine"


async def test_comms_on_a_plain_websocket(serve, ws_connect, log) -> None:
    # Comms needs no rooms: any handler's connection is reachable by id.
    class Echo(wskit.Handler):
        def on_open(self, handshake: wskit.Handshake) -> None:
            self.out.send(f"id {self.out.connection_id}")

    server = await serve(Echo)
    async with ws_connect(server.url()) as a, ws_connect(server.url()) as b:
        ida = int(str(await recv(a)).split()[1])
        idb = int(str(await recv(b)).split()[1])
        server.ws.comms.broadcast("to everyone")
        server.ws.comms.send(idb, "to b")
        assert await recv(a) == "to everyone"
        assert [await recv(b) for _ in range(2)] == ["to everyone", "to b"]
        assert server.ws.comms.rooms == frozenset()
        with pytest.raises(wskit.Error, match="room 'x' is not open"):
            server.ws.comms.room("x").broadcast("nobody")
        assert not server.ws.comms.room("x").exists and ida in server.ws.comms


async def test_ctx_from_another_thread(serve, ws_connect, log) -> None:
    contexts: list[wskit.RoomContext] = []

    class Keeper(wskit.RoomService):
        def on_join(self, client: wskit.ClientId, ctx: wskit.RoomContext) -> None:
            contexts.append(ctx)
            ctx.send(client, "in")

        def on_timer(self, ctx: wskit.RoomContext) -> None:
            ctx.send(wskit.Everyone, "timer from a thread")

    server = await serve(wskit.Rooms(Keeper))
    async with ws_connect(server.url("/ws/k")) as a:
        assert await recv(a) == "in"
        ctx = contexts[0]

        def in_thread() -> None:
            ctx.send(wskit.Everyone, "ctx from a thread")
            ctx.set_timer(0)

        await trio.to_thread.run_sync(in_thread)
        assert [await recv(a) for _ in range(2)] == ["ctx from a thread", "timer from a thread"]


async def test_a_plain_handler_reaches_comms_through_its_sender(serve: Any,
                                                                ws_connect: Any) -> None:
    """``out.comms``: a handler sends to another connection by its id."""
    ids: list[int] = []

    class Relay(wskit.Handler):
        def on_open(self, handshake: wskit.Handshake) -> None:
            ids.append(self.out.connection_id)

        def on_message(self, msg: wskit.Message) -> None:
            target, _, text = msg.as_text().partition(" ")
            self.out.comms.send(int(target), f"from {self.out.connection_id}: {text}")

    server = await serve(Relay, wskit.Settings(ping_interval=None))
    async with ws_connect(server.url()) as a, ws_connect(server.url()) as b:
        with trio.fail_after(5):
            while len(ids) < 2:  # noqa: ASYNC110 - polling the handlers' list
                await trio.sleep(0.01)
        await a.send(f"{ids[1]} hello")
        with trio.fail_after(5):
            assert await b.recv() == f"from {ids[0]}: hello"
        await b.send("999999 nobody")  # a gone id: that handler fails, closing with 1011
        with pytest.raises(websockets.exceptions.ConnectionClosedError) as info:
            with trio.fail_after(5):
                await b.recv()
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 1011
