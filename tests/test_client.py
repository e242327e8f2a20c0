"""wskit's client against a ``websockets`` server."""

from __future__ import annotations

import os

import pytest
import trio
import websockets.exceptions

import wskit


async def echo_server(conn):
    async for message in conn:
        await conn.send(message)


async def test_client_echo_and_handshake(ws_server, log, Recorder):
    server = await ws_server(echo_server)
    async with wskit.WebSocket(lambda out: Recorder(out, log)) as ws:
        out = await ws.connect(server.url("/echo?room=1"))
        assert isinstance(out, wskit.Sender) and out.connection_id > 0
        (hs,), = log.of("open")  # connect() returns after on_open
        assert hs.request.path == "/echo?room=1"
        assert hs.response.status == 101
        assert hs.peer_addr == (server.host, server.port)
        assert hs.subprotocol is None
        assert tuple(hs.extensions) == ("permessage-deflate",)
        out.send("héllo")
        out.send(b"\x00\x01")
        out.send(bytearray(b"ba"))
        out.send(memoryview(b"mv"))
        out.send(wskit.Message.text("msg"))
        received = await log.wait("message", 5)
        out.close()
    assert [args[0] for args in received] == ["héllo", b"\x00\x01", b"ba", b"mv", "msg"]
    assert [args[0].is_text for args in received] == [True, False, False, False, True]
    assert log.of("close") == [(wskit.CloseCode.NORMAL, "")]


async def test_client_without_compression(ws_server, log, Recorder):
    server = await ws_server(echo_server)
    settings = wskit.Settings(compression=None)
    async with wskit.WebSocket(lambda out: Recorder(out, log), settings) as ws:
        out = await ws.connect(server.url())
        (hs,), = log.of("open")
        assert tuple(hs.extensions) == ()
        assert "Sec-WebSocket-Extensions" not in hs.request.headers
        out.close()


async def test_client_joins_fragments_and_handles_one_mib(ws_server, log, Recorder):
    size = 2**20
    payload = os.urandom(size)

    async def server_handler(conn):
        await conn.send(["frag", "men", "ted"])
        await conn.send([b"\x01", b"\x02"])
        echoed = await conn.recv()
        log("server got", len(echoed), echoed == payload)
        await conn.send(echoed)
        await conn.send("x" * size)
        await conn.recv()

    server = await ws_server(server_handler, max_size=2 * size)
    async with wskit.WebSocket(lambda out: Recorder(out, log)) as ws:
        out = await ws.connect(server.url())
        out.send(payload)
        received = await log.wait("message", 4)
        out.close()
    assert received[0] == ("fragmented",) and received[1] == (b"\x01\x02",)
    assert received[2][0] == payload and len(received[2][0]) == size
    assert received[3][0] == "x" * size
    assert log.of("server got") == [(size, True)]


async def test_build_request_and_on_response(ws_server, log, Recorder):
    async def server_handler(conn):
        request = conn.request
        log("server saw", request.headers.get("X-Token"),
            request.headers.get("Sec-WebSocket-Protocol"), conn.subprotocol)
        await conn.send("hi")
        await conn.wait_closed()

    class Client(Recorder):
        def build_request(self, url):
            self.log("build_request", url)
            return wskit.Request.for_url(url, headers={"X-Token": "secret"},
                                         subprotocols=["v1", "v2"])

        def on_response(self, response):
            self.log("response", response)

    server = await ws_server(server_handler, subprotocols=["v2"])
    url = server.url("/api")
    async with wskit.WebSocket(lambda out: Client(out, log)) as ws:
        out = await ws.connect(url)
        await log.wait("message")
        out.close()
    assert log.of("build_request") == [(url,)]
    assert log.of("server saw") == [("secret", "v1, v2", "v2")]
    (response,), = log.of("response")
    assert response.status == 101
    assert response.subprotocol == "v2"
    assert response.headers["sec-websocket-protocol"] == "v2"
    (hs,), = log.of("open")
    assert hs.subprotocol == "v2"
    assert hs.request.subprotocols == ["v1", "v2"]
    hooks = [name for name in log.names() if name != "server saw"]
    assert hooks[:3] == ["build_request", "response", "open"]


async def test_on_response_raising_rejects(ws_server, log, Recorder):
    async def server_handler(conn):
        try:
            await conn.recv()
        except websockets.exceptions.ConnectionClosed:
            log("server closed", conn.close_code)

    class Picky(Recorder):
        def on_response(self, response):
            raise ValueError("not this server")

    server = await ws_server(server_handler)
    with pytest.raises(wskit.Error):
        async with wskit.WebSocket(lambda out: Picky(out, log)) as ws:
            await ws.connect(server.url())
    (err,), = log.of("error")
    assert err.kind is wskit.ErrorKind.CUSTOM
    assert isinstance(err.__cause__, ValueError)
    assert log.of("open") == []
    await log.wait("server closed")


async def test_connect_refused_is_io(raw, log, Recorder):
    url = f"ws://127.0.0.1:{raw.free_port()}/"
    with pytest.raises(wskit.Error) as info:
        async with wskit.WebSocket(lambda out: Recorder(out, log)) as ws:
            await ws.connect(url)
    assert type(info.value) is not BaseExceptionGroup
    assert info.value.kind is wskit.ErrorKind.IO
    assert info.value.status is None
    assert log.of("open") == []
    # One error that says what and where; no exception group anywhere in
    # what a traceback would show.
    assert str(info.value) == f"could not connect to 127.0.0.1:{url.split(':')[2][:-1]}: " \
        "Connection refused"
    seen, chain = info.value, []
    while seen is not None:
        chain.append(seen)
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    assert not any(isinstance(e, BaseExceptionGroup) for e in chain), chain


async def test_rejected_handshake_is_http_with_status(ws_server, log, Recorder):
    def forbid(conn, request):
        return conn.respond(403, "forbidden\n")

    server = await ws_server(echo_server, process_request=forbid)
    with pytest.raises(wskit.Error) as info:
        async with wskit.WebSocket(lambda out: Recorder(out, log)) as ws:
            await ws.connect(server.url())
    assert info.value.kind is wskit.ErrorKind.HTTP
    assert info.value.status == 403
    assert log.of("open") == [] and log.of("close") == []


async def test_error_can_be_caught_inside_the_block(ws_server, raw, log, Recorder):
    # connect() raises a bare wskit.Error in the block; the WebSocket goes on.
    server = await ws_server(echo_server)
    async with wskit.WebSocket(lambda out: Recorder(out, log)) as ws:
        with pytest.raises(wskit.Error) as info:
            await ws.connect(f"ws://127.0.0.1:{raw.free_port()}/")
        assert info.value.kind is wskit.ErrorKind.IO
        out = await ws.connect(server.url())
        out.send("still works")
        assert await log.wait("message") == [("still works",)]
        out.close()


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/", "ws://", "not a url",
                                 "ws://127.0.0.1:99999/", "wss:///path"])
async def test_bad_url(url, log, Recorder):
    with pytest.raises(wskit.Error) as info:
        async with wskit.WebSocket(lambda out: Recorder(out, log)) as ws:
            await ws.connect(url)
    assert isinstance(info.value, wskit.Error)
    assert log.of("open") == []


async def test_close_codes_both_ways(ws_server, log, Recorder):
    async def server_handler(conn):
        message = await conn.recv()
        if message == "you close":
            await conn.aclose(4000, "server bye")
        else:
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await conn.recv()
            log("server saw close", conn.close_code, conn.close_reason)

    server = await ws_server(server_handler)
    async with wskit.WebSocket(lambda out: Recorder(out, log)) as ws:
        first = await ws.connect(server.url())
        first.send("you close")
        await log.wait("close")
        assert log.of("close") == [(4000, "server bye")]

        second = await ws.connect(server.url())
        second.send("I close")
        second.close(4000, "client bye")
        await log.wait("close", 2)
    assert log.of("close")[1] == (4000, "client bye")  # the echo of ours
    assert await log.wait("server saw close") == [(4000, "client bye")]


async def test_client_on_close_1006_when_the_server_drops(ws_server, log, Recorder):
    async def server_handler(conn):
        await conn.send("bye")
        conn.stream.socket.close()  # no close frame
        await conn.wait_closed()

    server = await ws_server(server_handler)
    async with wskit.WebSocket(lambda out: Recorder(out, log)) as ws:
        await ws.connect(server.url())
        (code, reason), = await log.wait("close")
    assert code is wskit.CloseCode.ABNORMAL and reason == ""
    assert log.of("message") == [("bye",)]


# ----------------------------------------------------------------------
# The blocking wskit.connect


async def test_blocking_connect_returns_after_the_connection_closed(ws_server, log, Recorder):
    class Client(Recorder):
        def on_open(self, handshake):
            super().on_open(handshake)
            self.out.send("hello")

        def on_message(self, msg):
            super().on_message(msg)
            self.out.close(4000, "finished")

    server = await ws_server(echo_server)
    with trio.fail_after(5):
        result = await trio.to_thread.run_sync(
            wskit.connect, server.url(), lambda out: Client(out, log),
            abandon_on_cancel=True)
    assert result is None
    assert log.of("message") == [("hello",)]
    assert log.of("close") == [(4000, "finished")]


async def test_blocking_connect_raises_http_error(ws_server, log, Recorder):
    def forbid(conn, request):
        return conn.respond(403, "no\n")

    server = await ws_server(echo_server, process_request=forbid)
    with pytest.raises(wskit.Error) as info, trio.fail_after(5):
        await trio.to_thread.run_sync(wskit.connect, server.url(),
                                      lambda out: Recorder(out, log),
                                      abandon_on_cancel=True)
    assert info.value.kind is wskit.ErrorKind.HTTP and info.value.status == 403


async def test_blocking_connect_raises_io_error(raw, log, Recorder):
    url = f"ws://127.0.0.1:{raw.free_port()}/"
    with pytest.raises(wskit.Error) as info, trio.fail_after(5):
        await trio.to_thread.run_sync(wskit.connect, url, lambda out: Recorder(out, log),
                                      abandon_on_cancel=True)
    assert info.value.kind is wskit.ErrorKind.IO


async def test_blocking_connect_raises_on_bad_url(log, Recorder):
    with pytest.raises(wskit.Error), trio.fail_after(5):
        await trio.to_thread.run_sync(wskit.connect, "ftp://example.com/",
                                      lambda out: Recorder(out, log),
                                      abandon_on_cancel=True)
