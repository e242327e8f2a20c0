"""Timeouts and keepalive through real sockets, on both sides.

Timing here is only ever an upper bound (``trio.fail_after``) on something
that must happen, never an assertion that something is fast.
"""

from __future__ import annotations

import struct
from typing import Any

import trio

import wskit
from wskit._core.handshake import accept_token

TIMEOUT = 5.0


async def test_handshake_timeout_drops_a_slow_client(serve: Any) -> None:
    server = await serve(lambda out: out.send, wskit.Settings(handshake_timeout=0.3))
    with trio.fail_after(TIMEOUT):
        stream = await trio.open_tcp_stream(server.host, server.port)
        async with stream:
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
            assert await stream.receive_some(1024) == b""  # the server hung up


async def test_slowloris_does_not_block_other_clients(serve: Any, ws_connect: Any) -> None:
    server = await serve(lambda out: out.send, wskit.Settings(handshake_timeout=10))
    streams = []
    try:
        for _ in range(100):
            stream = await trio.open_tcp_stream(server.host, server.port)
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            streams.append(stream)
        with trio.fail_after(TIMEOUT):
            async with ws_connect(server.url()) as client:
                await client.send("through")
                assert await client.recv() == "through"
    finally:
        for stream in streams:
            await stream.aclose()


async def test_close_timeout_drops_a_peer_that_never_answers(
    serve: Any, raw: Any, log: Any, Recorder: Any
) -> None:
    class Closer(Recorder):  # type: ignore[misc,valid-type]
        def on_message(self, msg: wskit.Message) -> None:
            self.out.close(4001, "leaving")

    settings = wskit.Settings(close_timeout=0.3, ping_interval=None)
    server = await serve(lambda out: Closer(out, log), settings)
    stream, rest = await raw.handshake(server.host, server.port)
    async with stream:
        await stream.send_all(raw.frame(0x1, b"close please"))
        buffer = bytearray(rest)
        opcode, payload = await raw.read_frame(stream, buffer)
        assert opcode == 0x8
        assert struct.unpack("!H", payload[:2])[0] == 4001
        # We never answer: the server gives up and ends the connection.
        with trio.fail_after(TIMEOUT):
            while await stream.receive_some(1024):
                pass
    closes = await log.wait("close")
    assert closes == [(wskit.CloseCode.ABNORMAL, "")]


async def test_server_keepalive_closes_a_silent_peer(
    serve: Any, raw: Any, log: Any, Recorder: Any
) -> None:
    settings = wskit.Settings(ping_interval=0.2, ping_timeout=0.2, close_timeout=1)
    server = await serve(lambda out: Recorder(out, log), settings)
    stream, rest = await raw.handshake(server.host, server.port)
    buffer = bytearray(rest)
    async with stream:
        opcode, _ = await raw.read_frame(stream, buffer)
        assert opcode == 0x9  # a ping, which we ignore
        opcode, payload = await raw.read_frame(stream, buffer)
        assert opcode == 0x8
        assert struct.unpack("!H", payload[:2])[0] == 1011
    closes = await log.wait("close")
    assert closes == [(wskit.CloseCode.ABNORMAL, "")]


async def test_server_keepalive_keeps_a_live_peer(serve: Any, ws_connect: Any,
                                                  log: Any, Recorder: Any) -> None:
    settings = wskit.Settings(ping_interval=0.1, ping_timeout=0.5)
    server = await serve(lambda out: Recorder(out, log), settings)
    async with ws_connect(server.url()) as client:  # websockets answers pings
        await log.wait("pong", 3)
        await client.send("still here")
        await log.wait("message")
    assert await log.wait("close") == [(wskit.CloseCode.NORMAL, "")]


async def test_client_keepalive_closes_a_silent_server(log: Any, Recorder: Any) -> None:
    async def silent_server(stream: trio.SocketStream) -> None:
        # A hand-made server: answers the handshake, then ignores everything.
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(4096)
        key = next(line.split(b": ")[1] for line in data.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key"))
        await stream.send_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
            + accept_token(key).encode() + b"\r\n\r\n"
        )
        while await stream.receive_some(4096):
            pass

    settings = wskit.Settings(ping_interval=0.2, ping_timeout=0.2, close_timeout=0.5,
                              compression=None)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, silent_server, 0)
        port = listeners[0].socket.getsockname()[1]
        with trio.fail_after(TIMEOUT):
            async with wskit.WebSocket(lambda out: Recorder(out, log), settings) as ws:
                await ws.connect(f"ws://127.0.0.1:{port}/")
        nursery.cancel_scope.cancel()
    assert log.of("close") == [(wskit.CloseCode.ABNORMAL, "")]


async def test_no_keepalive_when_disabled(serve: Any, raw: Any) -> None:
    server = await serve(lambda out: out.send, wskit.Settings(ping_interval=None))
    stream, rest = await raw.handshake(server.host, server.port)
    async with stream:
        with trio.move_on_after(0.5):
            data = await stream.receive_some(1024)
            raise AssertionError(f"unexpected data with keepalive off: {rest + data!r}")
