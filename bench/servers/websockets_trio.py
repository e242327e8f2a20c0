"""Benchmark server: websockets (>= 17) on Trio, ``websockets.trio``."""

from __future__ import annotations

import trio
from _common import BCAST, HOST, MAX_MESSAGE_SIZE, parse_port, raise_nofile_limit
from websockets.exceptions import ConnectionClosed
from websockets.trio.server import ServerConnection, broadcast, serve


async def handler(ws: ServerConnection) -> None:
    try:
        async for message in ws:
            if isinstance(message, str) and message.startswith(BCAST):
                # The library's own broadcast: one send task per connection.
                await broadcast(ws.server.connections, message[len(BCAST) :])
            else:
                await ws.send(message)
    except ConnectionClosed:
        pass


async def main(port: int) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: serve(
                handler,
                port,
                host=HOST,
                compression=None,
                ping_interval=None,
                max_size=MAX_MESSAGE_SIZE,
                task_status=task_status,
            )
        )


if __name__ == "__main__":
    raise_nofile_limit()
    trio.run(main, parse_port(__doc__ or ""))
