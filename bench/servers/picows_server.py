"""Benchmark server: picows (Cython, asyncio), the far anchor.

picows hands over frames, not messages: the load generator never fragments,
so each data frame is a whole message and is echoed as it came (its payload
as a memoryview, no copy). Pings are answered by picows itself
(``enable_auto_pong``); a close frame is echoed and the connection ended.
Broadcasts write to every connected transport synchronously.
"""

from __future__ import annotations

import asyncio

from _common import BCAST, HOST, MAX_MESSAGE_SIZE, parse_port, raise_nofile_limit
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

_BCAST = BCAST.encode()
_connected: set[WSTransport] = set()


class Echo(WSListener):  # type: ignore[misc]
    def on_ws_connected(self, transport: WSTransport) -> None:
        _connected.add(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        _connected.discard(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            payload = frame.get_payload_as_memoryview()
            if kind is WSMsgType.TEXT and payload[: len(_BCAST)] == _BCAST:
                body = bytes(payload[len(_BCAST):])
                for peer in _connected:
                    peer.send(WSMsgType.TEXT, body)
            else:
                transport.send(kind, payload)
        elif kind is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


def listener_factory(request: WSUpgradeRequest) -> Echo:
    return Echo()


async def main(port: int) -> None:
    server = await ws_create_server(listener_factory, HOST, port,
                                    max_frame_size=MAX_MESSAGE_SIZE)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    raise_nofile_limit()
    asyncio.run(main(parse_port(__doc__ or "")))
