"""Handler hooks and Factory callbacks, through real sockets (peer: websockets)."""

from __future__ import annotations

import logging
import random

import pytest
import trio
import websockets.exceptions

import wskit


class Boom(Exception):
    pass


# ----------------------------------------------------------------------
# Every hook, sync and async


async def test_every_server_hook_sync(serve, ws_connect, log, Recorder):
    class All(Recorder):
        def on_request(self, request):
            self.log("request", request.path)
            return request.accept()

        def on_open(self, handshake):
            super().on_open(handshake)
            self.out.ping(b"server-ping")
            self.out.timeout(0.01, "t1")

        def on_message(self, msg):
            super().on_message(msg)
            self.out.send(msg)

    server = await serve(lambda out: All(out, log))
    async with ws_connect(server.url("/all")) as client:
        await log.wait("pong")
        await log.wait("timeout")
        pong = await client.ping(b"client-ping")
        with trio.fail_after(5):
            await pong.wait()
        await client.send("hi")
        assert await client.recv() == "hi"
        await client.aclose(4001, "done")
    await log.wait("close")
    server.ws.shutdown()
    with trio.fail_after(5):
        await server.exited.wait()
    assert log.of("request") == [("/all",)]
    assert log.of("pong") == [(b"server-ping",)]
    assert log.of("ping") == [(b"client-ping",)]
    assert log.of("timeout") == [("t1",)]
    assert log.of("message") == [("hi",)]
    assert log.of("close") == [(4001, "done")]
    assert log.of("error") == []
    assert log.of("shutdown") == []  # closed before the shutdown
    assert log.names()[0] == "request" and log.names()[1] == "open"
    assert log.names()[-1] == "close"


async def test_every_server_hook_async(serve, ws_connect, log):
    class Async(wskit.Handler):
        async def on_request(self, request):
            await trio.lowlevel.checkpoint()
            log("request", request.path)
            return request.accept(subprotocol="p")

        async def on_open(self, handshake):
            await trio.lowlevel.checkpoint()
            log("open", handshake.subprotocol)
            self.out.ping(b"sp")
            self.out.timeout(0, "t")

        async def on_message(self, msg):
            await trio.lowlevel.checkpoint()
            log("message", msg)
            self.out.send(msg)

        async def on_ping(self, data):
            await trio.lowlevel.checkpoint()
            log("ping", data)

        async def on_pong(self, data):
            await trio.lowlevel.checkpoint()
            log("pong", data)

        async def on_timeout(self, token):
            await trio.lowlevel.checkpoint()
            log("timeout", token)

        async def on_shutdown(self):
            await trio.lowlevel.checkpoint()
            log("shutdown")

        async def on_close(self, code, reason):
            await trio.lowlevel.checkpoint()
            log("close", code, reason)

        async def on_error(self, err):
            log("error", err)

    server = await serve(Async)  # a Handler subclass is a factory
    async with ws_connect(server.url("/a"), subprotocols=["p"]) as client:
        await log.wait("pong")
        await log.wait("timeout")
        pong = await client.ping(b"cp")
        with trio.fail_after(5):
            await pong.wait()
        await client.send(b"bin")
        assert await client.recv() == b"bin"
        server.ws.shutdown()
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await client.recv()
        assert client.close_code == 1001
    with trio.fail_after(5):
        await server.exited.wait()
    assert log.of("request") == [("/a",)]
    assert log.of("open") == [("p",)]
    assert log.of("pong") == [(b"sp",)]
    assert log.of("ping") == [(b"cp",)]
    assert log.of("timeout") == [("t",)]
    assert log.of("message") == [(b"bin",)]
    assert log.of("shutdown") == [()]
    assert log.of("close") == [(wskit.CloseCode.AWAY, log.of("close")[0][1])]
    assert log.of("error") == []
    assert log.names().index("shutdown") < log.names().index("close")


async def test_every_client_hook(ws_server, log):
    async def server_handler(conn):
        await conn.send("welcome")
        log("server-request", conn.request.path, conn.request.headers.get("X-Token"))
        async for message in conn:
            await conn.send(message)

    class Client(wskit.Handler):
        async def build_request(self, url):
            log("build_request", url)
            return wskit.Request.for_url(url, headers={"X-Token": "t0k"})

        def on_response(self, response):
            log("response", response.status)

        def on_open(self, handshake):
            log("open", handshake.request.path)

        def on_message(self, msg):
            log("message", msg)
            if msg == "welcome":
                self.out.send("back")
            else:
                self.out.close()

        def on_close(self, code, reason):
            log("close", code, reason)

    server = await ws_server(server_handler)
    url = server.url("/c?x=1")
    async with wskit.WebSocket(Client) as ws:
        await ws.connect(url)
    assert log.of("build_request") == [(url,)]
    assert log.of("response") == [(101,)]
    assert log.of("open") == [("/c?x=1",)]
    assert log.of("server-request") == [("/c?x=1", "t0k")]
    assert log.of("message") == [("welcome",), ("back",)]
    assert log.of("close") == [(wskit.CloseCode.NORMAL, "")]


async def test_handler_init_stores_the_sender(serve, ws_connect, log):
    class H(wskit.Handler):
        def __init__(self, out):
            super().__init__(out)
            log("made", out)

        def on_open(self, handshake):
            log("open", self.out)

    server = await serve(H)
    async with ws_connect(server.url()), ws_connect(server.url()):
        await log.wait("open", 2)
    made = [args[0] for args in log.of("made")]
    assert [args[0] for args in log.of("open")] == made or \
        [args[0] for args in log.of("open")] == made[::-1]
    assert all(isinstance(out, wskit.Sender) for out in made)
    assert made[0].connection_id != made[1].connection_id


async def test_plain_object_with_some_hooks(serve, ws_connect, log):
    class Partial:  # not a wskit.Handler: only the hooks it has are called
        def __init__(self, out):
            self.out = out

        def on_message(self, msg):
            self.out.send(f"got {msg}")

        def on_close(self, code, reason):
            log("close", code, reason)

    server = await serve(Partial)
    async with ws_connect(server.url()) as client:
        await client.send("x")
        assert await client.recv() == "got x"
    assert await log.wait("close") == [(wskit.CloseCode.NORMAL, "")]


# ----------------------------------------------------------------------
# A hook that raises


async def test_raising_handler_is_isolated(serve, ws_connect, log, Recorder, caplog):
    class Fragile(Recorder):
        def on_message(self, msg):
            super().on_message(msg)
            if msg == "boom":
                raise Boom("kaboom")
            self.out.send(msg)

    caplog.set_level(logging.DEBUG, logger="wskit")
    server = await serve(lambda out: Fragile(out, log))
    async with ws_connect(server.url()) as healthy, ws_connect(server.url()) as victim:
        await healthy.send("before")
        assert await healthy.recv() == "before"
        await victim.send("boom")
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await victim.recv()
        assert victim.close_code == 1011
        # The other connection noticed nothing.
        for i in range(5):
            await healthy.send(f"after {i}")
            assert await healthy.recv() == f"after {i}"

        (err,), = await log.wait("error")
        assert isinstance(err, wskit.Error)
        assert err.kind is wskit.ErrorKind.CUSTOM
        assert isinstance(err.__cause__, Boom) and str(err.__cause__) == "kaboom"
        (code, _reason), = await log.wait("close")
        assert code is wskit.CloseCode.ERROR

    records = [r for r in caplog.records
               if r.name.split(".")[0] == "wskit" and r.exc_info
               and isinstance(r.exc_info[1], Boom)]
    assert records, [r.getMessage() for r in caplog.records]
    assert records[0].levelno >= logging.ERROR


@pytest.mark.parametrize("hook", ["on_open", "on_timeout", "on_ping"])
async def test_raise_in_other_hooks_closes_with_1011(serve, ws_connect, log, Recorder, hook):
    class Fragile(Recorder):
        def on_open(self, handshake):
            super().on_open(handshake)
            self.out.timeout(0.01, "tick")
            if hook == "on_open":
                raise Boom(hook)

        def on_timeout(self, token):
            super().on_timeout(token)
            if hook == "on_timeout":
                raise Boom(hook)

        def on_ping(self, data):
            super().on_ping(data)
            if hook == "on_ping":
                raise Boom(hook)

    server = await serve(lambda out: Fragile(out, log))
    async with ws_connect(server.url()) as client:
        if hook == "on_ping":
            await log.wait("timeout")
            await client.ping(b"p")
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            with trio.fail_after(5):
                await client.recv()
        assert client.close_code == 1011
    (err,), = await log.wait("error")
    assert err.kind is wskit.ErrorKind.CUSTOM
    assert isinstance(err.__cause__, Boom) and str(err.__cause__) == hook
    assert await log.wait("close") == [(wskit.CloseCode.ERROR, log.of("close")[0][1])]


async def test_raising_on_error_is_only_logged(serve, ws_connect, log, caplog):
    class Worse(wskit.Handler):
        def on_message(self, msg):
            raise Boom("first")

        def on_error(self, err):
            log("error", err)
            raise Boom("second")

        def on_close(self, code, reason):
            log("close", code)

    caplog.set_level(logging.DEBUG, logger="wskit")
    server = await serve(Worse)
    async with ws_connect(server.url()) as client:
        await client.send("x")
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await client.recv()
        assert client.close_code == 1011
    assert await log.wait("close") == [(wskit.CloseCode.ERROR,)]
    assert len(log.of("error")) == 1
    causes = {str(r.exc_info[1]) for r in caplog.records if r.exc_info and
              isinstance(r.exc_info[1], Boom)}
    assert causes == {"first", "second"}


# ----------------------------------------------------------------------
# Async hooks keep a connection's events in order


async def test_async_on_message_keeps_order(serve, ws_connect):
    class Slow(wskit.Handler):
        async def on_message(self, msg):
            await trio.sleep(random.uniform(0, 0.005))
            self.out.send(f"re: {msg}")

    server = await serve(Slow)
    async with ws_connect(server.url()) as client:
        for i in range(50):
            await client.send(str(i))
        with trio.fail_after(5):
            replies = [await client.recv() for _ in range(50)]
    assert replies == [f"re: {i}" for i in range(50)]


async def test_timer_waits_for_a_running_async_hook(serve, ws_connect, log):
    class Serial(wskit.Handler):
        active = 0

        async def enter(self, name):
            if self.active:
                log("overlap", name)
            self.active += 1
            log("enter", name)

        def leave(self, name):
            self.active -= 1
            log("exit", name)

        async def on_message(self, msg):
            await self.enter("message")
            self.out.timeout(0.01, "tick")
            await trio.sleep(0.2)  # the timer is due meanwhile
            self.leave("message")

        async def on_timeout(self, token):
            await self.enter("timeout")
            await trio.lowlevel.checkpoint()
            self.leave("timeout")
            self.out.send("done")

        async def on_ping(self, data):
            await self.enter("ping")
            self.leave("ping")

    server = await serve(Serial)
    async with ws_connect(server.url()) as client:
        await client.send("go")
        await log.wait("enter")
        await client.ping(b"meanwhile")
        with trio.fail_after(5):
            assert await client.recv() == "done"
    assert log.of("overlap") == []
    assert log.snapshot() == [
        ("enter", "message"), ("exit", "message"),
        ("enter", "ping"), ("exit", "ping"),
        ("enter", "timeout"), ("exit", "timeout"),
    ] or log.snapshot() == [
        ("enter", "message"), ("exit", "message"),
        ("enter", "timeout"), ("exit", "timeout"),
        ("enter", "ping"), ("exit", "ping"),
    ]


# ----------------------------------------------------------------------
# Factory subclasses


async def test_factory_subclass_lifecycle(serve, ws_server, ws_connect, raw, log):
    class Side(wskit.Handler):
        def __init__(self, out, side):
            super().__init__(out)
            self.side = side

        def on_request(self, request):
            if request.path == "/reject":
                return request.reject(403)
            if request.path == "/page":
                return wskit.Response(200, "page")
            return None

        def on_message(self, msg):
            self.out.send(f"{self.side}: {msg}")

    class Counting(wskit.Factory):
        def server_connected(self, out):
            handler = Side(out, "server")
            log("server_connected", handler)
            return handler

        def client_connected(self, out):
            handler = Side(out, "client")
            log("client_connected", handler)
            return handler

        def connection_lost(self, handler):
            log("connection_lost", handler)

        def on_shutdown(self):
            log("on_shutdown")

    async def peer(conn):
        await conn.send("from websockets")
        log("peer got", await conn.recv())

    target = await ws_server(peer)
    server = await serve(Counting())
    # An accepted server connection.
    async with ws_connect(server.url()) as client:
        await client.send("hello")
        assert await client.recv() == "server: hello"
    # A rejected handshake and a plain HTTP request.
    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with ws_connect(server.url("/reject")):
            pass
    status, _headers, body = await raw.http(
        server.host, server.port, b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, body) == (200, b"page")
    # A client connection from the same WebSocket.
    await server.ws.connect(target.url())
    assert await log.wait("peer got") == [("client: from websockets",)]

    await log.wait("connection_lost", 4)
    server.ws.shutdown()
    with trio.fail_after(5):
        await server.exited.wait()
    made = [args[0] for args in log.of("server_connected") + log.of("client_connected")]
    lost = [args[0] for args in log.of("connection_lost")]
    assert len(log.of("server_connected")) == 3
    assert len(log.of("client_connected")) == 1
    assert sorted(map(id, lost)) == sorted(map(id, made))  # once per handler made
    assert log.of("on_shutdown") == [()]


async def test_connection_lost_comes_after_on_close(serve, ws_connect, log):
    class H(wskit.Handler):
        def on_close(self, code, reason):
            log("on_close", self)

    class F(wskit.Factory):
        def connection_made(self, out):  # the default for both sides
            return H(out)

        def connection_lost(self, handler):
            log("connection_lost", handler)

    server = await serve(F())
    async with ws_connect(server.url()):
        pass
    await log.wait("connection_lost")
    (closed,), = log.of("on_close")
    assert log.snapshot() == [("on_close", closed), ("connection_lost", closed)]


# ----------------------------------------------------------------------
# on_error for the peer's faults


@pytest.mark.parametrize(("frame", "code", "kind"), [
    # A text frame that is not UTF-8.
    ("invalid utf-8", wskit.CloseCode.INVALID, wskit.ErrorKind.ENCODING),
    # A client frame without a mask (RFC 6455 section 5.1).
    ("unmasked", wskit.CloseCode.PROTOCOL, wskit.ErrorKind.PROTOCOL),
])
async def test_peer_faults_reach_on_error(serve, raw, log, Recorder, frame, code, kind):
    server = await serve(lambda out: Recorder(out, log))
    stream, rest = await raw.handshake(server.host, server.port)
    buffer = bytearray(rest)
    if frame == "unmasked":
        await stream.send_all(b"\x81\x02hi")
    else:
        await stream.send_all(raw.frame(0x1, b"\xff\xfe bad"))
    opcode, payload = await raw.read_frame(stream, buffer)
    assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == code
    with trio.fail_after(5):  # the server closes the TCP connection without waiting
        assert await stream.receive_some(100) == b""
    await stream.aclose()
    (err,), = await log.wait("error")
    assert isinstance(err, wskit.Error) and err.kind is kind
    ((closed, _reason),) = await log.wait("close")
    assert closed == code
    assert log.of("message") == []
