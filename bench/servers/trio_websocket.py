"""Benchmark server: trio-websocket (Trio + wsproto)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import trio
from _common import BCAST, HOST, MAX_MESSAGE_SIZE, parse_port, raise_nofile_limit

# This script shares its name with the library it benchmarks: take its own
# directory off the path so the import below finds the package, not itself.
_here = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]

from trio_websocket import (  # noqa: E402
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    serve_websocket,
)

# trio-websocket has no broadcast helper and no registry of connections.
clients: set[WebSocketConnection] = set()


async def handler(request: WebSocketRequest) -> None:
    ws = await request.accept()
    clients.add(ws)
    try:
        while True:
            message = await ws.get_message()
            if isinstance(message, str) and message.startswith(BCAST):
                await send_to_all(message[len(BCAST) :])
            else:
                await ws.send_message(message)
    except ConnectionClosed:
        pass
    finally:
        clients.discard(ws)


async def send_to_all(payload: str) -> None:
    # The plain loop a user would write: one awaited send per client. A
    # client that closed meanwhile is skipped, as websockets' broadcast does.
    for ws in list(clients):
        with contextlib.suppress(ConnectionClosed):
            await ws.send_message(payload)


async def main(port: int) -> None:
    # trio-websocket never compresses and sends no keepalive pings.
    await serve_websocket(handler, HOST, port, ssl_context=None, max_message_size=MAX_MESSAGE_SIZE)


if __name__ == "__main__":
    raise_nofile_limit()
    trio.run(main, parse_port(__doc__ or ""))
