"""The thread bridge: order, the byte bound on hand-offs, and its end.

Threads need real time; every wait is bounded and short.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
import trio

import wskit
from wskit._io.portal import Portal

TIMEOUT = 10.0
CHUNK = 64 * 1024


class Quiet(wskit.RoomService):
    """A room that only lets clients in."""


async def test_hand_offs_keep_order_and_stay_under_the_bound() -> None:
    portal = Portal(max_pending=100)
    portal.start()
    seen: list[int] = []
    peaks: list[int] = []

    done = trio.Event()

    def producer() -> None:
        for i in range(200):
            portal.run_soon(seen.append, i, size=30)
            peaks.append(portal.pending_bytes)
        portal.run_soon(seen.append, -1, size=500)  # larger than the bound: alone
        peaks.append(portal.pending_bytes)
        portal.run_soon(done.set)

    with trio.fail_after(TIMEOUT):
        await trio.to_thread.run_sync(producer)
        await done.wait()
    assert seen == [*range(200), -1]
    assert max(peaks[:-1]) <= 100
    assert peaks[-1] == 500  # went through once nothing else was pending
    assert portal.pending_bytes == 0
    portal.stop()


async def test_a_waiting_thread_is_released_with_an_error_when_the_portal_stops() -> None:
    portal = Portal(max_pending=100)
    portal.start()
    outcome: list[Any] = []

    def producer() -> None:
        try:
            portal.run_soon(outcome.append, "first", size=80)
            portal.run_soon(outcome.append, "second", size=80)  # waits: 160 > 100
            outcome.append("not blocked")
        except wskit.Error as err:
            outcome.append(err)

    thread = threading.Thread(target=producer)
    thread.start()
    _hold_the_trio_thread(portal)
    assert outcome == [] and thread.is_alive()
    portal.stop()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], wskit.Error)
    assert outcome[0].kind is wskit.ErrorKind.QUEUE
    with pytest.raises(wskit.Error, match="not running"):
        portal.run_soon(outcome.append, "late")
    await trio.lowlevel.checkpoint()


def _hold_the_trio_thread(portal: Portal) -> None:
    """Block the Trio thread without yielding (on purpose: the first call
    cannot run, so the second hand-off has to wait)."""
    deadline = time.monotonic() + TIMEOUT
    while portal.pending_bytes < 80 and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(0.1)  # time for the second hand-off to reach its wait


@pytest.mark.slow
async def test_a_thread_flooding_a_room_with_a_member_that_never_reads_stays_bounded(
        serve, ws_connect) -> None:
    """The issue's scenario: 2,000 x 64 KiB from a plain thread into a room
    whose one member never reads. What waits for the Trio thread stays under
    max_thread_queue; the room's slow-client policy bounds the rest."""
    limit = 2 * 2**20
    rooms = wskit.Rooms(Quiet, max_client_queue=2**20)
    server = await serve(rooms, wskit.Settings(max_thread_queue=limit))
    comms = server.ws.comms
    stalled = socket.create_connection((server.host, server.port))
    try:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(b"GET /ws/flood HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        b"Sec-WebSocket-Version: 13\r\n\r\n")
        with trio.fail_after(TIMEOUT):
            while not comms.room("flood").clients:  # noqa: ASYNC110 - a state the server owns
                await trio.sleep(0.01)
        peaks: list[int] = []
        payload = b"x" * CHUNK

        def flood() -> None:
            room = comms.room("flood")
            for _ in range(2000):
                room.send(wskit.Everyone, payload)
                peaks.append(server.ws.hub.portal.pending_bytes)

        with trio.fail_after(60):
            await trio.to_thread.run_sync(flood)
        assert len(peaks) == 2000 and max(peaks) <= limit
        # The server still serves everyone else.
        async with ws_connect(server.url("/ws/other")) as client:
            await client.ping()
        stats = {room["room_id"]: room for room in rooms.summary()["rooms"]}
        assert stats["flood"]["queued_bytes"] <= 2**20 + CHUNK + 2**16
    finally:
        stalled.close()
