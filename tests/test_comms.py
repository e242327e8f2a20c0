"""``ws.comms``: reaching connections by id, through real sockets.

The clients are the ``websockets`` library. A client that must *not* get a
message is checked with a marker: each connection's messages arrive in the
order they were sent, so if the next message a client reads is the marker
sent after the message under test, that message never went to it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import pytest
import trio

import wskit

TIMEOUT = 5.0


class Member(wskit.Handler):
    """Logs ``("open", id, id in comms, len(comms))`` and ``("close", id, id in comms)``."""

    def __init__(self, out: wskit.Sender, log: Any, ws: Callable[[], wskit.WebSocket]) -> None:
        super().__init__(out)
        self.log, self.ws = log, ws

    def on_open(self, handshake: wskit.Handshake) -> None:
        comms, me = self.ws().comms, self.out.connection_id
        self.log("open", me, me in comms, len(comms))

    def on_close(self, code: wskit.CloseCode | int, reason: str) -> None:
        me = self.out.connection_id
        self.log("close", me, me in self.ws().comms)


class Room:
    """One server and a helper that opens clients and learns their ids."""

    def __init__(self, serve: Any, ws_connect: Any, log: Any) -> None:
        self._serve, self._connect, self.log = serve, ws_connect, log
        self.server: Any = None

    async def start(self) -> wskit.WebSocket:
        self.server = await self._serve(lambda out: Member(out, self.log, lambda: self.ws))
        return self.ws

    @property
    def ws(self) -> wskit.WebSocket:
        ws: wskit.WebSocket = self.server.ws
        return ws

    async def join(self, stack: contextlib.AsyncExitStack) -> tuple[Any, int]:
        """Open one more client (in ``stack``, an AsyncExitStack): (client, its id)."""
        count = len(self.log.of("open"))
        client = await stack.enter_async_context(self._connect(self.server.url()))
        opens = await self.log.wait("open", count + 1)
        return client, opens[count][0]


@pytest.fixture
async def room(serve: Any, ws_connect: Any, log: Any) -> Room:
    room = Room(serve, ws_connect, log)
    await room.start()
    return room


async def recv(client: Any) -> Any:
    with trio.fail_after(TIMEOUT):
        return await client.recv()


async def test_send_reaches_only_that_id(room: Room) -> None:
    comms = room.ws.comms
    async with contextlib.AsyncExitStack() as stack:
        (a, ida), (b, idb), (c, idc) = [await room.join(stack) for _ in range(3)]
        assert len({ida, idb, idc}) == 3
        comms.send(idb, "to b")
        comms.send(idb, b"\x00binary to b")
        comms.broadcast("marker")
        assert await recv(b) == "to b"
        assert await recv(b) == b"\x00binary to b"
        assert await recv(b) == "marker"
        assert await recv(a) == "marker"
        assert await recv(c) == "marker"


async def test_broadcast_excludes_one_id_or_a_list(room: Room) -> None:
    comms = room.ws.comms
    async with contextlib.AsyncExitStack() as stack:
        (a, ida), (b, idb), (c, idc) = [await room.join(stack) for _ in range(3)]
        comms.broadcast("all but a", exclude=ida)
        comms.broadcast("only c", exclude=[ida, idb])
        comms.broadcast("only a", exclude={idb, idc})
        comms.broadcast("everyone")
        assert [await recv(a) for _ in range(2)] == ["only a", "everyone"]
        assert [await recv(b) for _ in range(2)] == ["all but a", "everyone"]
        assert [await recv(c) for _ in range(3)] == ["all but a", "only c", "everyone"]


async def test_ids_in_and_len_follow_opens_and_closes(room: Room, log: Any) -> None:
    comms = room.ws.comms
    assert comms.ids == frozenset() and len(comms) == 0
    async with contextlib.AsyncExitStack() as stack:
        a, ida = await room.join(stack)
        _, idb = await room.join(stack)
        # In on_open, the connection already counts as connected.
        assert log.of("open") == [(ida, True, 1), (idb, True, 2)]
        assert comms.ids == {ida, idb} and ida in comms and idb in comms
        assert len(comms) == 2
        assert ida + idb + 1 not in comms
        with trio.fail_after(TIMEOUT):
            await a.aclose()
        closes = await log.wait("close")
        # In on_close, it no longer does.
        assert closes == [(ida, False)]
        assert comms.ids == {idb} and ida not in comms and len(comms) == 1
    await log.wait("close", 2)
    assert comms.ids == frozenset() and len(comms) == 0


async def test_a_send_to_a_gone_id_raises_queue_naming_it(room: Room, log: Any) -> None:
    comms = room.ws.comms
    async with contextlib.AsyncExitStack() as stack:
        a, ida = await room.join(stack)
        b, idb = await room.join(stack)
        with trio.fail_after(TIMEOUT):
            await a.aclose()
        await log.wait("close")
        never = ida + idb + 1000
        for gone in (ida, never):
            with pytest.raises(wskit.Error) as caught:
                comms.send(gone, "late")
            assert caught.value.kind is wskit.ErrorKind.QUEUE
            assert str(gone) in str(caught.value)
        # The others are untouched.
        comms.send(idb, "still here")
        assert await recv(b) == "still here"


async def test_sends_from_another_thread_keep_their_order(room: Room, log: Any) -> None:
    comms = room.ws.comms
    async with contextlib.AsyncExitStack() as stack:
        a, ida = await room.join(stack)
        b, idb = await room.join(stack)

        def produce() -> None:
            for i in range(200):
                comms.send(idb, f"t{i}")
                if i % 50 == 0:
                    comms.broadcast(f"all {i}", exclude=ida)
            comms.send(ida, "a's only")

        with trio.fail_after(TIMEOUT):
            await trio.to_thread.run_sync(produce)
        expected: list[str] = []
        for i in range(200):
            expected.append(f"t{i}")
            if i % 50 == 0:
                expected.append(f"all {i}")
        assert [await recv(b) for _ in expected] == expected
        assert await recv(a) == "a's only"


async def test_a_send_from_a_thread_to_a_gone_id_raises_in_that_thread(
    room: Room, log: Any
) -> None:
    comms = room.ws.comms
    async with contextlib.AsyncExitStack() as stack:
        a, ida = await room.join(stack)
        with trio.fail_after(TIMEOUT):
            await a.aclose()
        await log.wait("close")

        def send_gone() -> tuple[int, BaseException | None]:
            try:
                comms.send(ida, "late")
            except wskit.Error as err:
                return threading.get_ident(), err
            return threading.get_ident(), None

        with trio.fail_after(TIMEOUT):
            thread, err = await trio.to_thread.run_sync(send_gone)
    assert thread != threading.get_ident()
    assert isinstance(err, wskit.Error) and err.kind is wskit.ErrorKind.QUEUE
    assert str(ida) in str(err)


async def test_a_room_that_does_not_exist_raises_queue(room: Room) -> None:
    comms = room.ws.comms
    async with contextlib.AsyncExitStack() as stack:
        a, ida = await room.join(stack)
        nowhere = comms.room("nowhere")  # a handle; sending checks
        assert not nowhere.exists and nowhere.clients == ()
        assert "nowhere" not in comms.rooms
        for send in (lambda: nowhere.send(wskit.Everyone, "x"),
                     lambda: nowhere.send(ida, "x"),
                     lambda: nowhere.broadcast("x")):
            with pytest.raises(wskit.Error) as caught:
                send()
            assert caught.value.kind is wskit.ErrorKind.QUEUE
            assert "nowhere" in str(caught.value)

        def from_thread() -> BaseException | None:
            try:
                nowhere.send(wskit.Everyone, "x")
            except wskit.Error as err:
                return err
            return None

        with trio.fail_after(TIMEOUT):
            err = await trio.to_thread.run_sync(from_thread)
        assert isinstance(err, wskit.Error) and err.kind is wskit.ErrorKind.QUEUE
        comms.send(ida, "marker")
        assert await recv(a) == "marker"  # nothing reached the client


@pytest.mark.parametrize("bad", ["7", 7.0, True, None, b"7"],
                         ids=["str", "float", "bool", "None", "bytes"])
async def test_a_non_int_id_is_a_usage_error(room: Room, bad: Any) -> None:
    comms = room.ws.comms
    async with contextlib.AsyncExitStack() as stack:
        a, ida = await room.join(stack)
        calls: list[Callable[[], object]] = [
            lambda: comms.send(bad, "x"),
            lambda: comms.broadcast("x", exclude=[ida, bad]),
        ]
        if bad is not None:  # exclude=None could fairly mean "exclude nobody"
            calls.append(lambda: comms.broadcast("x", exclude=bad))
        for call in calls:
            with pytest.raises(wskit.Error) as caught:
                call()
            assert caught.value.kind is wskit.ErrorKind.USAGE
        comms.send(ida, "marker")
        assert await recv(a) == "marker"  # no half-done broadcast reached it
