"""Helpers of the rooms tests (``test_rooms``, ``test_rooms_comms``,
``test_rooms_slow``): the ``Probe`` room service, bounded receives, a raw
HTTP GET."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import trio
import websockets
import websockets.trio.client

import wskit

TIMEOUT = 5.0
Client = websockets.trio.client.ClientConnection


class Probe(wskit.RoomService):
    """A room driven by text commands, recording what it sees in ``log``.

    ``say T`` to everyone, ``to ID T``, ``except ID T``, ``list ID,ID T``;
    ``inc`` (room state), ``timer S``, ``cancel``, ``pending``, ``close ID``,
    ``boom`` (raises), ``blob N`` (N bytes to everyone, binary), ``stats``.
    Failures of ``ctx`` calls are answered as ``error: …``.
    """

    def __init__(self, room_id: str, ctx: wskit.RoomContext, log: Any) -> None:
        super().__init__(room_id, ctx)
        self.log = log
        self.value = 0
        self.fired = 0
        self.busy = False
        log("created", room_id)

    def on_join(self, client: wskit.ClientId, ctx: wskit.RoomContext) -> None:
        self.log("join", self.room_id, client)
        ctx.send(client, f"hello {client} {self.room_id} value={self.value}")
        ctx.send(wskit.Except(client), f"joined {client}")

    async def on_message(self, client: wskit.ClientId, msg: wskit.Message,
                         ctx: wskit.RoomContext) -> None:
        # Async, and yielding: the room must still run one callback at a time.
        assert not self.busy, "two callbacks of one room overlapped"
        self.busy = True
        try:
            await trio.lowlevel.checkpoint()
            self.handle(client, str(msg), ctx)
        finally:
            self.busy = False

    def handle(self, client: wskit.ClientId, text: str, ctx: wskit.RoomContext) -> None:
        command, _, rest = text.partition(" ")
        self.log("message", self.room_id, client, text)
        try:
            if command == "say":
                ctx.send(wskit.Everyone, f"{client}: {rest}")
            elif command == "to":
                target, _, body = rest.partition(" ")
                ctx.send(int(target), f"to {target} from {client}: {body}")
            elif command == "except":
                target, _, body = rest.partition(" ")
                ctx.send(wskit.Except(int(target)), f"except {target}: {body}")
            elif command == "list":
                targets, _, body = rest.partition(" ")
                ctx.send([int(t) for t in targets.split(",")], f"list: {body}")
            elif command == "inc":
                self.value += 1
                ctx.send(client, f"value={self.value}")
            elif command == "timer":
                ctx.set_timer(float(rest))
                ctx.send(client, "timer set")
            elif command == "cancel":
                ctx.cancel_timer()
                ctx.send(client, "timer cancelled")
            elif command == "pending":
                ctx.send(client, f"pending={ctx.timer_pending} fired={self.fired}")
            elif command == "close":
                ctx.close(int(rest), 4000, "closed by the room")
            elif command == "boom":
                raise RuntimeError("boom")
            elif command == "blob":
                ctx.send(wskit.Everyone, b"x" * int(rest))
                self.log("queued", ctx.stats.queued_bytes)
            elif command == "stats":
                ctx.send(client, json.dumps(ctx.stats.as_dict()))
        except wskit.Error as err:
            ctx.send(client, f"error: {err}")

    def on_leave(self, client: wskit.ClientId, ctx: wskit.RoomContext) -> None:
        self.log("leave", self.room_id, client, client.close_code, client.close_reason)
        ctx.send(wskit.Everyone, f"left {client} {client.close_code}")

    def on_timer(self, ctx: wskit.RoomContext) -> None:
        self.fired += 1
        self.log("timer", self.room_id, self.fired)
        ctx.send(wskit.Everyone, f"fired {self.fired}")


def probe_rooms(log: Any, **options: Any) -> wskit.Rooms:
    return wskit.Rooms(lambda room_id, ctx: Probe(room_id, ctx, log), **options)


async def recv(client: Client, seconds: float = TIMEOUT) -> str | bytes:
    with trio.fail_after(seconds):
        message: str | bytes = await client.recv()
        return message


async def recv_until(client: Client, predicate: Callable[[str | bytes], bool]) -> str | bytes:
    """The first message matching ``predicate`` (others are skipped)."""
    with trio.fail_after(TIMEOUT):
        while True:
            message: str | bytes = await client.recv()
            if predicate(message):
                return message


async def join(client: Client) -> int:
    """Read the room's hello; the client's id."""
    hello = await recv(client)
    assert isinstance(hello, str) and hello.startswith("hello "), hello
    return int(hello.split()[1])


async def http_get(host: str, port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    with trio.fail_after(TIMEOUT):
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            await stream.send_all(request.encode("ascii"))
            data = b""
            while chunk := await stream.receive_some(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body
