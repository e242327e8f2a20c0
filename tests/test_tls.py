"""TLS (wss://) and permessage-deflate, with the websockets library on the other end.

Certificates come from ``trustme``: a throwaway CA, a server certificate for
``localhost`` and 127.0.0.1, and a client context that trusts only that CA.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trustme

import wskit

TIMEOUT = 5.0
NO_PING = wskit.Settings(ping_interval=None)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
    return ctx


@pytest.fixture(scope="module")
def client_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.fixture
async def tls_server(nursery: trio.Nursery, server_ctx: ssl.SSLContext
                     ) -> AsyncIterator[tuple[wskit.WebSocket, int]]:
    async def run(task_status: trio.TaskStatus[tuple[wskit.WebSocket, int]]) -> None:
        async with wskit.WebSocket(lambda out: out.send, NO_PING) as ws:
            _, port = await ws.listen("127.0.0.1:0", ssl_context=server_ctx)
            task_status.started((ws, port))

    ws, port = await nursery.start(run)
    yield ws, port
    ws.shutdown()


async def test_websockets_client_to_wskit_wss_server(
    tls_server: tuple[wskit.WebSocket, int], ws_connect: Any, client_ctx: ssl.SSLContext
) -> None:
    _, port = tls_server
    with trio.fail_after(TIMEOUT):
        async with ws_connect(f"wss://localhost:{port}/", ssl=client_ctx) as client:
            await client.send("secret")
            assert await client.recv() == "secret"
            await client.send(b"\x00" * 100_000)
            assert await client.recv() == b"\x00" * 100_000


async def test_wskit_client_to_wskit_wss_server(
    tls_server: tuple[wskit.WebSocket, int], client_ctx: ssl.SSLContext, log: Any,
    Recorder: Any
) -> None:
    _, port = tls_server

    class Hello(Recorder):  # type: ignore[misc,valid-type]
        def on_open(self, handshake: wskit.Handshake) -> None:
            super().on_open(handshake)
            self.out.send("over tls")

        def on_message(self, msg: wskit.Message) -> None:
            super().on_message(msg)
            self.out.close()

    with trio.fail_after(TIMEOUT):
        async with wskit.WebSocket(lambda out: Hello(out, log), NO_PING) as ws:
            await ws.connect(f"wss://localhost:{port}/", ssl_context=client_ctx)
    assert log.of("message") == [("over tls",)]
    assert log.of("close") == [(wskit.CloseCode.NORMAL, "")]


async def test_wskit_client_to_websockets_wss_server(
    ws_server: Any, server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, log: Any,
    Recorder: Any
) -> None:
    async def echo(conn: Any) -> None:
        async for message in conn:
            await conn.send(message)

    server = await ws_server(echo, ssl=server_ctx)

    class Hello(Recorder):  # type: ignore[misc,valid-type]
        def on_open(self, handshake: wskit.Handshake) -> None:
            self.out.send("hello tls")

        def on_message(self, msg: wskit.Message) -> None:
            super().on_message(msg)
            self.out.close(4002, "done")

    with trio.fail_after(TIMEOUT):
        async with wskit.WebSocket(lambda out: Hello(out, log), NO_PING) as ws:
            await ws.connect(f"wss://localhost:{server.port}/", ssl_context=client_ctx)
    assert log.of("message") == [("hello tls",)]
    assert log.of("close") == [(4002, "done")]


async def test_untrusted_certificate_is_an_ssl_error(
    tls_server: tuple[wskit.WebSocket, int]
) -> None:
    _, port = tls_server
    stranger = ssl.create_default_context()
    trustme.CA().configure_trust(stranger)  # trusts some other CA
    with trio.fail_after(TIMEOUT), pytest.raises(wskit.Error) as info:
        async with wskit.WebSocket(lambda out: out.send, NO_PING) as ws:
            await ws.connect(f"wss://localhost:{port}/", ssl_context=stranger)
    assert info.value.kind is wskit.ErrorKind.SSL
    assert "certificate" in str(info.value).lower()
    assert "ssl_context=" in str(info.value) and "--ca-file" in str(info.value)


async def test_plain_client_against_tls_port_does_not_hurt_the_server(
    tls_server: tuple[wskit.WebSocket, int], ws_connect: Any, client_ctx: ssl.SSLContext
) -> None:
    _, port = tls_server
    with trio.fail_after(TIMEOUT):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # not TLS
            while await stream.receive_some(1024):
                pass
        async with ws_connect(f"wss://localhost:{port}/", ssl=client_ctx) as client:
            await client.send("fine")
            assert await client.recv() == "fine"


# ----------------------------------------------------------------------
# permessage-deflate


async def test_deflate_negotiated_with_websockets_client(serve: Any, ws_connect: Any,
                                                         log: Any, Recorder: Any) -> None:
    class Echo(Recorder):  # type: ignore[misc,valid-type]
        def on_message(self, msg: wskit.Message) -> None:
            self.out.send(msg)

    server = await serve(lambda out: Echo(out, log), NO_PING)
    async with ws_connect(server.url()) as client:
        assert [type(e).__name__ for e in client.protocol.extensions] == ["PerMessageDeflate"]
        for text in ("a" * 50_000, "b" * 50_000, "héllo wörld " * 1000):
            await client.send(text)
            assert await client.recv() == text
    (handshake,) = (await log.wait("open"))[0]
    assert handshake.extensions == ("permessage-deflate",)


async def test_deflate_off_is_not_offered_or_accepted(serve: Any, ws_connect: Any,
                                                      log: Any, Recorder: Any) -> None:
    server = await serve(lambda out: Recorder(out, log),
                         wskit.Settings(compression=None, ping_interval=None))
    async with ws_connect(server.url()) as client:
        assert client.protocol.extensions == []
    (handshake,) = (await log.wait("open"))[0]
    assert handshake.extensions == ()


@pytest.mark.parametrize("no_context_takeover", [False, True])
async def test_wskit_client_deflate_with_websockets_server(
    ws_server: Any, log: Any, Recorder: Any, no_context_takeover: bool
) -> None:
    seen: list[list[str]] = []

    async def echo(conn: Any) -> None:
        seen.append([type(e).__name__ for e in conn.protocol.extensions])
        async for message in conn:
            await conn.send(message)

    server = await ws_server(echo)
    payload = "compress me " * 5000

    class Hello(Recorder):  # type: ignore[misc,valid-type]
        def on_open(self, handshake: wskit.Handshake) -> None:
            super().on_open(handshake)
            self.out.send(payload)
            self.out.send(payload)

        def on_message(self, msg: wskit.Message) -> None:
            super().on_message(msg)
            if len(self.log.of("message")) == 2:
                self.out.close()

    settings = wskit.Settings(ping_interval=None, deflate_no_context_takeover=no_context_takeover)
    with trio.fail_after(TIMEOUT):
        async with wskit.WebSocket(lambda out: Hello(out, log), settings) as ws:
            await ws.connect(server.url())
    assert seen == [["PerMessageDeflate"]]
    assert log.of("message") == [(payload,), (payload,)]
    (handshake,) = log.of("open")[0]
    assert handshake.extensions == ("permessage-deflate",)
    ext_header = handshake.response.headers["Sec-WebSocket-Extensions"]
    assert ("client_no_context_takeover" in ext_header) == no_context_takeover


async def test_a_ws_client_to_a_tls_server_is_told_to_use_wss(
    tls_server: tuple[wskit.WebSocket, int],
) -> None:
    _, port = tls_server
    with trio.fail_after(TIMEOUT):
        async with wskit.WebSocket(lambda out: lambda msg: None, NO_PING) as ws:
            with pytest.raises(wskit.Error) as info:
                await ws.connect(f"ws://127.0.0.1:{port}/")
            ws.shutdown()
    assert "connect with wss://" in str(info.value), str(info.value)
