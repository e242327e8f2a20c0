"""Timeouts and keepalive, on both sides.

Timing here is only ever an upper bound (``trio.fail_after``) on something
that must happen, never an assertion that something is fast.

Server-side timeouts run over in-memory streams (``WebSocket.serve_stream``
and ``wskit.testing``) under pytest-trio's ``autojump_clock``: a 10 s
timeout passes in no real time, and nothing sleeps in real time. Tests that
need a real socket keep real time, and each says why: under an autojump
clock, a task waiting for the kernel to deliver bytes counts as blocked, so
the clock would jump past the timeout before the data arrives.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import trio
import trio.testing

import wskit
import wskit.testing

TIMEOUT = 5.0


def accept_token(key: bytes) -> str:
    """Sec-WebSocket-Accept for ``key`` (RFC 6455 section 4.2.2), written
    here so that the test needs none of wskit's internals."""
    guid = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    return base64.b64encode(hashlib.sha1(key + guid).digest()).decode("ascii")


async def test_handshake_timeout_drops_a_slow_client(
    autojump_clock: trio.testing.MockClock
) -> None:
    settings = wskit.Settings(handshake_timeout=0.3, shutdown_on_interrupt=False)
    async with wskit.WebSocket(lambda out: out.send, settings) as ws:
        stream, server_stream = trio.testing.memory_stream_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ws.serve_stream, server_stream)
            with trio.fail_after(TIMEOUT):
                async with stream:
                    await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
                    assert await stream.receive_some(1024) == b""  # the server hung up


# Real sockets: a hundred half-open TCP connections against the listener's
# accept loop is what this is about (no timer is waited for).
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
    autojump_clock: trio.testing.MockClock, log: Any, Recorder: Any
) -> None:
    class Closer(Recorder):  # type: ignore[misc,valid-type]
        def on_message(self, msg: wskit.Message) -> None:
            self.out.close(4001, "leaving")

    settings = wskit.Settings(close_timeout=0.3, ping_interval=None)
    async with wskit.testing.connect(lambda out: Closer(out, log), settings=settings,
                                     answer_close=False) as client:
        await client.send("close please")
        # The server's close frame came (4001); we never answer it, and the
        # server gives up and ends the stream.
        with trio.fail_after(TIMEOUT):
            assert await client.wait_closed() == (4001, "leaving")
    closes = await log.wait("close")
    assert closes == [(wskit.CloseCode.ABNORMAL, "")]


async def test_server_keepalive_closes_a_silent_peer(
    autojump_clock: trio.testing.MockClock, log: Any, Recorder: Any
) -> None:
    settings = wskit.Settings(ping_interval=0.2, ping_timeout=0.2, close_timeout=1)
    async with wskit.testing.connect(lambda out: Recorder(out, log), settings=settings,
                                     answer_pings=False, answer_close=False) as client:
        with trio.fail_after(TIMEOUT):
            code, _ = await client.wait_closed()
        assert len(client.pings) == 1  # a ping, which we ignored
        assert code == 1011
    closes = await log.wait("close")
    assert closes == [(wskit.CloseCode.ABNORMAL, "")]


async def test_server_keepalive_keeps_a_live_peer(
    autojump_clock: trio.testing.MockClock, log: Any, Recorder: Any
) -> None:
    settings = wskit.Settings(ping_interval=0.1, ping_timeout=0.5)
    async with wskit.testing.connect(lambda out: Recorder(out, log),
                                     settings=settings) as client:  # answers pings
        await log.wait("pong", 3)
        await client.send("still here")
        await log.wait("message")
    assert await log.wait("close") == [(wskit.CloseCode.NORMAL, "")]


# Real sockets: there is no public way to run wskit's *client* side over an
# in-memory stream (``WebSocket.connect`` dials a URL), so this one keeps
# real time.
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


async def test_no_keepalive_when_disabled(autojump_clock: trio.testing.MockClock) -> None:
    settings = wskit.Settings(ping_interval=None)
    async with wskit.testing.connect(lambda out: out.send, settings=settings) as client:
        await trio.sleep(3600)  # virtual: an hour of silence
        assert client.pings == []
        assert client.receive_nowait() is None
        assert not client.closed
