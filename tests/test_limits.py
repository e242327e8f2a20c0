"""Limits through real sockets: message size, queues, admission, origins, headers.

Each limit is checked with its default and with a custom value, and a peer
that breaks one never disturbs another connection.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import websockets
import websockets.exceptions

import wskit

TIMEOUT = 5.0
NO_PING = wskit.Settings(ping_interval=None)


def echo(out: wskit.Sender) -> Any:
    return out.send


async def test_default_max_message_size_is_1_mib(serve: Any, ws_connect: Any) -> None:
    server = await serve(echo, NO_PING)
    async with ws_connect(server.url(), max_size=None, compression=None) as client:
        await client.send(b"x" * 2**20)
        assert await client.recv() == b"x" * 2**20
        await client.send(b"x" * (2**20 + 1))
        with pytest.raises(websockets.exceptions.ConnectionClosedError) as info:
            await client.recv()
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1009


async def test_custom_max_message_size_and_others_unaffected(
    serve: Any, ws_connect: Any, log: Any, Recorder: Any
) -> None:
    class Echo(Recorder):  # type: ignore[misc,valid-type]
        def on_message(self, msg: wskit.Message) -> None:
            self.out.send(msg)

    settings = wskit.Settings(max_message_size=1000, ping_interval=None)
    server = await serve(lambda out: Echo(out, log), settings)
    async with ws_connect(server.url()) as good, ws_connect(server.url()) as bad:
        await bad.send("é" * 501)  # 1002 UTF-8 bytes, 501 characters
        with pytest.raises(websockets.exceptions.ConnectionClosedError) as info:
            await bad.recv()
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 1009
        await good.send("y" * 1000)
        assert await good.recv() == "y" * 1000
    errors = await log.wait("error")
    assert errors[0][0].kind is wskit.ErrorKind.CAPACITY
    assert "1000 bytes" in str(errors[0][0])
    closes = await log.wait("close", 2)
    assert (wskit.CloseCode.SIZE, "message larger than 1000 bytes") in closes


async def test_unlimited_message_size(serve: Any, ws_connect: Any) -> None:
    server = await serve(echo, wskit.Settings(max_message_size=None, ping_interval=None))
    async with ws_connect(server.url(), max_size=None) as client:
        await client.send(b"z" * (3 * 2**20))
        assert await client.recv() == b"z" * (3 * 2**20)


async def test_compressed_bomb_refused_over_a_socket(serve: Any, ws_connect: Any) -> None:
    # websockets compresses by default; 20 MiB of zeros is ~20 KiB on the wire.
    server = await serve(echo, NO_PING)
    async with ws_connect(server.url(), max_size=None) as client:
        await client.send(b"\x00" * (20 * 2**20))
        with pytest.raises(websockets.exceptions.ConnectionClosedError) as info:
            await client.recv()
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1009


@pytest.mark.parametrize("limit", [None, 64 * 1024])
async def test_send_queue_bounded_against_a_peer_that_never_reads(
    serve: Any, raw: Any, ws_connect: Any, limit: int | None
) -> None:
    settings = wskit.Settings(ping_interval=None, compression=None,
                              **({} if limit is None else {"max_send_queue": limit}))
    effective = settings.max_send_queue
    assert effective is not None
    outcome: dict[str, Any] = {}
    finished = trio.Event()
    chunk = b"q" * 16384

    class Flooder(wskit.Handler):
        def on_message(self, msg: wskit.Message) -> None:
            if msg != "flood":
                self.out.send(msg)
                return
            sent = 0
            try:
                for _ in range(100_000):  # bounded: 1.6 GB if nothing stopped it
                    self.out.send(chunk)
                    sent += len(chunk)
            except wskit.Error as err:
                outcome["error"] = err
            outcome["sent"] = sent
            outcome["queued"] = self.out.queued_bytes
            finished.set()

    server = await serve(Flooder, settings)
    stream, _ = await raw.handshake(server.host, server.port)
    async with stream:
        await stream.send_all(raw.frame(0x1, b"flood"))
        with trio.fail_after(TIMEOUT):
            await finished.wait()
        err = outcome["error"]
        assert err.kind is wskit.ErrorKind.QUEUE
        assert "max_send_queue" in str(err)
        # Memory held for this peer is the limit plus at most one message.
        assert outcome["queued"] <= effective + len(chunk) + 16
        # Another client keeps its round trips while the flooded peer sits.
        async with ws_connect(server.url()) as other:
            with trio.fail_after(TIMEOUT):
                for i in range(20):
                    await other.send(f"ping {i}")
                    assert await other.recv() == f"ping {i}"


async def test_flush_waits_for_room(serve: Any, ws_connect: Any) -> None:
    done = trio.Event()
    settings = wskit.Settings(max_send_queue=32 * 1024, ping_interval=None, compression=None)

    class Bulk(wskit.Handler):
        async def on_message(self, msg: wskit.Message) -> None:
            for _ in range(200):  # 3.2 MB through a 32 KiB queue
                self.out.send(b"b" * 16384)
                await self.out.flush()
            done.set()

    server = await serve(Bulk, settings)
    async with ws_connect(server.url(), compression=None) as client:
        await client.send("go")
        with trio.fail_after(TIMEOUT):
            for _ in range(200):
                assert await client.recv() == b"b" * 16384
            await done.wait()


async def test_slow_handler_stops_reading(serve: Any, raw: Any) -> None:
    """A handler that doesn't return makes TCP push back on the sender."""
    release = trio.Event()

    class Slow(wskit.Handler):
        async def on_message(self, msg: wskit.Message) -> None:
            await release.wait()

    server = await serve(Slow, wskit.Settings(ping_interval=None, max_message_size=None))
    stream, _ = await raw.handshake(server.host, server.port)
    frame = raw.frame(0x2, b"s" * 2**20)
    total = 64
    sent = 0
    async with stream:
        for _ in range(total):
            # Without backpressure each 1 MiB send returns at once; with it,
            # one stays blocked once the kernel buffers (a few MiB) are full.
            with trio.move_on_after(1) as blocked:
                await stream.send_all(frame)
            if blocked.cancelled_caught:
                break
            sent += 1
        assert sent < total // 4, f"{sent} MiB went in: the server kept reading"
        release.set()


async def test_max_connections_503_then_reopens(serve: Any, ws_connect: Any) -> None:
    server = await serve(echo, wskit.Settings(max_connections=2, ping_interval=None))
    async with ws_connect(server.url()) as first, ws_connect(server.url()):
        with pytest.raises(websockets.exceptions.InvalidStatus) as info:
            async with ws_connect(server.url()):
                pass
        assert info.value.response.status_code == 503
        await first.send("still served")
        assert await first.recv() == "still served"
    # Both closed: slots are free again.
    with trio.fail_after(TIMEOUT):
        while server.ws.slots_in_use:  # noqa: ASYNC110 - polling a counter the server owns
            await trio.sleep(0.01)
    async with ws_connect(server.url()) as again:
        await again.send("in")
        assert await again.recv() == "in"


async def test_default_max_connections_is_generous() -> None:
    assert (wskit.Settings().max_connections or 0) >= 1000


async def test_allowed_origins(serve: Any, ws_connect: Any) -> None:
    settings = wskit.Settings(allowed_origins={"https://good.example"}, ping_interval=None)
    server = await serve(echo, settings)
    with pytest.raises(websockets.exceptions.InvalidStatus) as info:
        async with ws_connect(server.url(), origin="https://evil.example"):
            pass
    assert info.value.response.status_code == 403
    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with ws_connect(server.url()):  # no Origin header
            pass
    async with ws_connect(server.url(), origin="https://good.example") as client:
        await client.send("hi")
        assert await client.recv() == "hi"


async def test_allowed_origins_with_empty_allows_non_browsers(serve: Any, ws_connect: Any) -> None:
    server = await serve(echo, wskit.Settings(allowed_origins={"", "https://a"},
                                              ping_interval=None))
    async with ws_connect(server.url()) as client:
        await client.send("ok")
        assert await client.recv() == "ok"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: h\r\n" + b"X-N: 1\r\n" * 129 + b"\r\n", 431),
        (b"GET /" + b"p" * 9000 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414),
        (b"BLAH\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         b"Sec-WebSocket-Version: 13\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 7\r\n\r\n", 426),
    ],
    ids=["header-too-big", "too-many-headers", "target-too-long", "garbage", "no-key",
         "bad-version"],
)
async def test_bad_requests_get_the_right_status(
    serve: Any, raw: Any, ws_connect: Any, request_bytes: bytes, status: int
) -> None:
    server = await serve(echo, NO_PING)
    got, headers, _ = await raw.http(server.host, server.port, request_bytes)
    assert got == status
    if status == 426:
        assert headers["sec-websocket-version"] == "13"
    async with ws_connect(server.url()) as client:  # the server still serves
        await client.send("fine")
        assert await client.recv() == "fine"


async def test_custom_max_header_size(serve: Any, raw: Any) -> None:
    server = await serve(echo, wskit.Settings(max_header_size=1024, ping_interval=None))
    status, _, _ = await raw.http(
        server.host, server.port, b"GET / HTTP/1.1\r\nHost: h\r\nX-A: " + b"a" * 2000 + b"\r\n\r\n"
    )
    assert status == 431


async def test_remote_addr_trusts_proxy_only_when_told(
    serve: Any, ws_connect: Any, log: Any, Recorder: Any
) -> None:
    headers = {"X-Forwarded-For": "203.0.113.7"}
    plain = await serve(lambda out: Recorder(out, log), NO_PING)
    trusting = await serve(lambda out: Recorder(out, log),
                           wskit.Settings(trust_proxy_headers=True, ping_interval=None))
    for server in (plain, trusting):
        async with ws_connect(server.url(), additional_headers=headers):
            pass
    opens = await log.wait("open", 2)
    assert opens[0][0].remote_addr() == "127.0.0.1"
    assert opens[1][0].remote_addr() == "203.0.113.7"
