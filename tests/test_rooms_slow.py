"""Slow consumers in rooms, through real sockets: a raw client that never
reads, the "disconnect" and "drop" policies (helpers in ``_rooms_helpers``)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import trio
from _rooms_helpers import Client, http_get, join, probe_rooms, recv, recv_until

import wskit


async def open_slow_client(raw: Any, server: Any, path: str) -> trio.SocketStream:
    """A raw WebSocket client that never reads, with a small receive buffer
    so that the server's queue for it grows soon."""
    stream, _ = await raw.handshake(server.host, server.port, path)
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return stream


async def flood(sender: Client, readers: list[Client], size: int,
                until: Callable[[], bool], most: int = 2000) -> int:
    """Lock-step: one broadcast of ``size`` bytes per round, every fast
    reader gets it before the next; until ``until()``. Returns the rounds."""
    for rounds in range(1, most + 1):
        await sender.send(f"blob {size}")
        for reader in readers:
            blob = await recv_until(reader, lambda m: isinstance(m, bytes))
            assert len(blob) == size
        if until():
            return rounds
    raise AssertionError(f"still not there after {most} rounds")


async def test_slow_client_is_disconnected_others_keep_receiving(serve, ws_connect, raw,
                                                                  log) -> None:
    limit, size = 64 * 2**10, 16 * 2**10
    settings = wskit.Settings(close_timeout=1, compression=None)
    rooms = probe_rooms(log, max_client_queue=limit)
    server = await serve(rooms, settings)
    async with ws_connect(server.url("/ws/f"), compression=None) as a, \
            ws_connect(server.url("/ws/f"), compression=None) as b:
        ida, idb = await join(a), await join(b)
        slow = await open_slow_client(raw, server, "/ws/f")
        (slow_id,) = [args[1] for args in await log.wait("join", 3)
                      if args[1] not in (ida, idb)]
        rounds = await flood(a, [a, b], size, lambda: bool(log.of("leave")))
        # The slow client left the room with 1008 and the reason; the others
        # heard it and keep receiving.
        (room_id, client, code, reason), = log.of("leave")
        assert (room_id, client, code) == ("f", slow_id, 1008)
        assert reason.startswith("slow client: ") and reason.endswith(" bytes queued")
        await recv_until(a, lambda m: m == f"left {slow_id} 1008")
        await flood(a, [a, b], size, lambda: True)
        await a.send("stats")
        stats = json.loads(await recv_until(a, lambda m: str(m).startswith("{")))
        assert stats["clients"] == 2 and stats["slow_disconnects"] == 1
        assert stats["dropped"] == 0
        assert rooms.summary()["slow_disconnects"] == 1
        await trio.aclose_forcefully(slow)
    # Memory stayed bounded: what the room had queued, slow client included,
    # never went beyond the threshold plus one message (and frame headers).
    queued = [args[0] for args in log.of("queued")]
    assert len(queued) == rounds + 1
    assert max(queued) <= limit + size + 64, (max(queued), limit)


async def test_slow_client_with_drop_policy_is_counted(serve, ws_connect, raw, log) -> None:
    limit, size = 64 * 2**10, 16 * 2**10
    settings = wskit.Settings(close_timeout=1, compression=None)
    rooms = probe_rooms(log, max_client_queue=limit, slow_client="drop")
    server = await serve(rooms, settings)
    async with ws_connect(server.url("/ws/d"), compression=None) as a, \
            ws_connect(server.url("/ws/d"), compression=None) as b:
        await join(a)
        await join(b)
        slow = await open_slow_client(raw, server, "/ws/d")
        await log.wait("join", 3)
        await flood(a, [a, b], size, lambda: rooms.summary()["dropped"] >= 20)
        await a.send("stats")
        stats = json.loads(await recv_until(a, lambda m: str(m).startswith("{")))
        # The slow client is still in the room; what it missed is counted.
        assert stats["clients"] == 3 and stats["dropped"] >= 20
        assert stats["slow_disconnects"] == 0
        summary = json.loads((await http_get(server.host, server.port, "/rooms"))[2])
        assert summary["dropped"] >= 20 and summary["rooms"][0]["dropped"] >= 20
        assert log.of("leave") == []
        await trio.aclose_forcefully(slow)
    queued = [args[0] for args in log.of("queued")]
    assert max(queued) <= limit + size + 64, (max(queued), limit)


async def test_a_client_flooding_itself_is_not_judged_slow(serve, ws_connect, log) -> None:
    # Replies made while a connection dispatches a read wait for the end of
    # that read: the room hands them to the kernel before judging.
    class Burst(wskit.RoomService):
        def on_message(self, client: wskit.ClientId, msg: wskit.Message,
                       ctx: wskit.RoomContext) -> None:
            for _ in range(8):
                ctx.send(client, b"y" * 16384)

    limit = 64 * 2**10
    server = await serve(wskit.Rooms(Burst, max_client_queue=limit),
                         wskit.Settings(compression=None))
    async with ws_connect(server.url("/ws/b"), compression=None) as a:
        await a.send("go")
        for _ in range(8):
            assert len(await recv(a)) == 16384
