"""Benchmark server: websockets on asyncio (the default event loop)."""

from __future__ import annotations

import asyncio

from _common import BCAST, HOST, MAX_MESSAGE_SIZE, parse_port, raise_nofile_limit
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed


async def handler(ws: ServerConnection) -> None:
    try:
        async for message in ws:
            if isinstance(message, str) and message.startswith(BCAST):
                # Synchronous: writes to every transport without awaiting.
                broadcast(ws.server.connections, message[len(BCAST) :])
            else:
                await ws.send(message)
    except ConnectionClosed:
        pass


async def main(port: int) -> None:
    async with serve(
        handler,
        HOST,
        port,
        compression=None,
        ping_interval=None,
        max_size=MAX_MESSAGE_SIZE,
    ) as server:
        await server.serve_forever()


if __name__ == "__main__":
    raise_nofile_limit()
    asyncio.run(main(parse_port(__doc__ or "")))
