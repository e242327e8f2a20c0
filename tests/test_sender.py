"""Every Sender method, through real sockets (peer: websockets or a raw socket)."""

from __future__ import annotations

import os
import threading

import pytest
import trio
import websockets.exceptions

import wskit

OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


# ----------------------------------------------------------------------
# send


async def test_send_before_open_is_delivered_right_after_open(serve, ws_connect):
    class Greeter(wskit.Handler):
        def on_open(self, handshake):
            self.out.send("from on_open")

    def factory(out):
        out.send("from the factory")  # before the handshake
        out.send(b"\x01binary too")
        return Greeter(out)

    server = await serve(factory)
    async with ws_connect(server.url()) as client:
        with trio.fail_after(5):
            received = [await client.recv() for _ in range(3)]
    assert received == ["from the factory", b"\x01binary too", "from on_open"]


async def test_client_send_before_open(ws_server, log):
    async def server_handler(conn):
        log("server got", await conn.recv())
        log("server got", await conn.recv())

    class Greeter(wskit.Handler):
        def on_open(self, handshake):
            self.out.send("on open")

    def factory(out):
        out.send("early")  # before the handshake
        return Greeter(out)

    server = await ws_server(server_handler)
    async with wskit.WebSocket(factory) as ws:
        await ws.connect(server.url())
        assert await log.wait("server got", 2) == [("early",), ("on open",)]


async def test_connection_ids_are_unique(serve, log, Recorder):
    server_outs, client_outs, returned = [], [], []
    server = await serve(lambda out: server_outs.append(out) or Recorder(out, log))

    async with wskit.WebSocket(lambda out: client_outs.append(out) or Recorder(out, log)) as ws:
        for _ in range(3):
            returned.append(await ws.connect(server.url()))
        await log.wait("open", 6)  # 3 client handlers, 3 server handlers
        for out in returned:
            out.close()
    ids = [out.connection_id for out in server_outs + client_outs]
    assert len(ids) == 6 and len(set(ids)) == 6
    assert all(isinstance(i, int) for i in ids)
    # connect() returns the Sender the factory got.
    assert [out.connection_id for out in returned] == [out.connection_id for out in client_outs]


async def test_send_from_another_thread_keeps_order(serve, ws_connect, log, Recorder):
    outs = []
    server = await serve(lambda out: outs.append(out) or Recorder(out, log))
    count = 500
    errors = []

    def worker(out):
        try:
            for i in range(count):
                out.send(f"{i}")
            out.send(b"end")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    async with ws_connect(server.url()) as client:
        await log.wait("open")
        thread = threading.Thread(target=worker, args=(outs[0],))
        thread.start()
        received = []
        with trio.fail_after(5):
            while (message := await client.recv()) != b"end":
                received.append(message)
            await trio.to_thread.run_sync(thread.join)
    assert errors == []
    assert received == [f"{i}" for i in range(count)]


async def test_sending_a_non_payload_is_a_usage_error_like_message(serve, ws_connect, log):
    """``out.send(42)`` and ``Message(42)`` are the same mistake: the same error."""
    def factory(out):
        def on_message(msg):
            for bad in (42, None, ["a"]):
                try:
                    out.send(bad)
                except wskit.Error as err:
                    log(err.kind, "str (text), bytes (binary) or a Message" in str(err))
            out.send("still open")
        return on_message

    server = await serve(factory)
    async with ws_connect(server.url()) as client:
        await client.send("go")
        with trio.fail_after(5):
            assert await client.recv() == "still open"
    assert log.snapshot() == [(wskit.ErrorKind.USAGE, True)] * 3
    with pytest.raises(wskit.Error) as info:
        wskit.Message(42)  # type: ignore[arg-type]
    assert info.value.kind is wskit.ErrorKind.USAGE


async def test_send_after_close_raises_queue(serve, ws_connect, log, Recorder):
    class Keeper(Recorder):
        def on_close(self, code, reason):
            super().on_close(code, reason)
            try:
                self.out.send("too late")
            except wskit.Error as err:
                self.log("send in on_close", err.kind)

    outs = []
    server = await serve(lambda out: outs.append(out) or Keeper(out, log))
    async with ws_connect(server.url()):
        await log.wait("open")
    await log.wait("close")
    (out,) = outs
    assert log.of("send in on_close") == [(wskit.ErrorKind.QUEUE,)]
    with pytest.raises(wskit.Error) as info:
        out.send("after close")
    assert info.value.kind is wskit.ErrorKind.QUEUE

    def from_thread():
        with pytest.raises(wskit.Error) as info:
            out.send(b"after close, from a thread")
        return info.value.kind

    assert await trio.to_thread.run_sync(from_thread) is wskit.ErrorKind.QUEUE


async def test_send_over_max_send_queue_raises_queue(serve, ws_connect, raw, log, Recorder):
    limit = 64 * 1024
    settings = wskit.Settings(max_send_queue=limit, compression=None, close_timeout=1)
    outs = []
    server = await serve(lambda out: outs.append(out) or Recorder(out, log), settings)
    stuck, _ = await raw.handshake(server.host, server.port)  # never reads
    await log.wait("open")
    (stuck_out,) = outs
    chunk = os.urandom(16 * 1024)

    async def fill() -> tuple[wskit.Error, int]:
        sent = 0
        while True:
            try:
                stuck_out.send(chunk)
            except wskit.Error as err:
                return err, sent
            sent += len(chunk)
            await trio.lowlevel.checkpoint()  # let the writer fill the TCP buffers

    with trio.fail_after(5):
        error, sent = await fill()
    assert error.kind is wskit.ErrorKind.QUEUE
    assert sent >= limit  # the limit, not an early refusal

    # From another thread, the limit is checked in that thread.
    def from_thread():
        with pytest.raises(wskit.Error) as info:
            stuck_out.send(chunk)
        return info.value.kind

    assert await trio.to_thread.run_sync(from_thread) is wskit.ErrorKind.QUEUE

    # Everyone else keeps working.
    async with ws_connect(server.url()) as other:
        await log.wait("open", 2)
        other_out = outs[1]
        for i in range(3):
            other_out.send(f"still here {i}")
            assert await other.recv() == f"still here {i}"
        big = os.urandom(limit // 2)
        other_out.send(big)
        assert await other.recv() == big

    # The stuck peer goes away: the data it never read is reported, not dropped silently.
    await stuck.aclose()
    await log.wait_for(lambda: any(err.kind is wskit.ErrorKind.QUEUE
                                   for (err,) in log.of("error")))


@pytest.mark.parametrize("flush", [True, False])
async def test_flush_waits_for_the_queue_to_drain(serve, ws_connect, log, flush):
    limit = 32 * 1024
    chunk_size, count = 8 * 1024, 128  # 1 MiB in all: 32 x the queue limit, more than
    settings = wskit.Settings(max_send_queue=limit, compression=None)  # the TCP buffers

    class Streamer(wskit.Handler):
        async def on_message(self, msg):
            try:
                for i in range(count):
                    self.out.send(i.to_bytes(4, "big") + b"\x00" * (chunk_size - 4))
                    if flush:
                        await self.out.flush()
                    else:
                        await trio.lowlevel.checkpoint()
            except wskit.Error as err:
                log("error", err)
            await self.out.flush()
            self.out.send("end")

    server = await serve(Streamer, settings)
    async with ws_connect(server.url(), max_queue=4) as client:
        await client.send("go")
        await trio.sleep(0.1)  # a slow reader: the server's queue fills up meanwhile
        received = []
        with trio.fail_after(5):
            while (message := await client.recv()) != "end":
                received.append(int.from_bytes(message[:4], "big"))
                assert len(message) == chunk_size
    if flush:
        assert log.of("error") == []
        assert received == list(range(count))
    else:
        # The control: without flush() the same loop overflows the queue, so the
        # run above really waited in flush().
        (err,), = log.of("error")
        assert err.kind is wskit.ErrorKind.QUEUE
        assert received == list(range(len(received))) and len(received) < count


# ----------------------------------------------------------------------
# close, ping, pong


async def test_close_with_code_and_reason(serve, ws_connect, log, Recorder):
    class Closer(Recorder):
        def on_message(self, msg):
            super().on_message(msg)
            if msg == "default":
                self.out.close()
            else:
                self.out.close(4001, "custom reason ✓")

    server = await serve(lambda out: Closer(out, log))
    async with ws_connect(server.url()) as client:
        await client.send("custom")
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await client.recv()
        assert (client.close_code, client.close_reason) == (4001, "custom reason ✓")
    async with ws_connect(server.url()) as client:
        await client.send("default")
        with pytest.raises(websockets.exceptions.ConnectionClosedOK):
            await client.recv()
        assert (client.close_code, client.close_reason) == (1000, "")
    assert await log.wait("close", 2) == [(4001, "custom reason ✓"),
                                          (wskit.CloseCode.NORMAL, "")]


async def test_close_is_idempotent(serve, ws_connect, log, Recorder):
    class Closer(Recorder):
        def on_message(self, msg):
            self.out.close(4002, "first")
            self.out.close(4003, "second")

    server = await serve(lambda out: Closer(out, log))
    async with ws_connect(server.url()) as client:
        await client.send("x")
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await client.recv()
        assert client.close_code == 4002
    assert await log.wait("close") == [(4002, "first")]


async def test_ping_gets_on_pong_with_the_same_data(serve, ws_connect, log, Recorder):
    class Pinger(Recorder):
        def on_open(self, handshake):
            self.out.ping(b"\x00ping-data\xff")
            self.out.ping()

    server = await serve(lambda out: Pinger(out, log))
    async with ws_connect(server.url()):
        assert await log.wait("pong", 2) == [(b"\x00ping-data\xff",), (b"",)]


async def test_peer_ping_calls_on_ping_and_is_answered(serve, ws_connect, log, Recorder):
    server = await serve(lambda out: Recorder(out, log))
    async with ws_connect(server.url()) as client:
        pong = await client.ping(b"are you there")
        with trio.fail_after(5):
            await pong.wait()
        assert await log.wait("ping") == [(b"are you there",)]


async def test_ping_and_pong_frames_on_the_wire(serve, raw, log, Recorder):
    class Control(Recorder):
        def on_message(self, msg):
            super().on_message(msg)
            self.out.pong(b"unsolicited")
            self.out.ping(b"p1")

    server = await serve(lambda out: Control(out, log))
    stream, rest = await raw.handshake(server.host, server.port)
    buffer = bytearray(rest)
    await stream.send_all(raw.frame(OP_PING, b"from raw"))
    assert await raw.read_frame(stream, buffer) == (OP_PONG, b"from raw")
    await stream.send_all(raw.frame(OP_TEXT, b"go"))
    assert await raw.read_frame(stream, buffer) == (OP_PONG, b"unsolicited")
    assert await raw.read_frame(stream, buffer) == (OP_PING, b"p1")
    await stream.send_all(raw.frame(OP_PONG, b"p1"))
    assert await log.wait("pong") == [(b"p1",)]
    assert log.of("ping") == [(b"from raw",)]
    await stream.send_all(raw.frame(OP_CLOSE, (1000).to_bytes(2, "big")))
    assert await raw.read_frame(stream, buffer) == (OP_CLOSE, (1000).to_bytes(2, "big"))
    await stream.aclose()
    assert await log.wait("close") == [(wskit.CloseCode.NORMAL, "")]


async def test_ping_payload_over_125_bytes_is_refused(serve, ws_connect, log, Recorder):
    class Pinger(Recorder):
        def on_open(self, handshake):
            with pytest.raises(wskit.Error):
                self.out.ping(b"x" * 126)
            self.log("refused")
            self.out.ping(b"x" * 125)

    server = await serve(lambda out: Pinger(out, log))
    async with ws_connect(server.url()):
        assert await log.wait("pong") == [(b"x" * 125,)]
        assert log.of("refused") == [()]


# ----------------------------------------------------------------------
# broadcast


async def test_broadcast_reaches_every_connection(serve, ws_connect, log, Recorder):
    class Chat(Recorder):
        def on_message(self, msg):
            self.out.broadcast(msg)

    server = await serve(lambda out: Chat(out, log))
    async with ws_connect(server.url()) as a, ws_connect(server.url()) as b, \
            ws_connect(server.url()) as c:
        await log.wait("open", 3)
        await b.send("hi all")
        with trio.fail_after(5):
            assert [await a.recv(), await b.recv(), await c.recv()] == ["hi all"] * 3
        await c.send(b"\x00bin")
        with trio.fail_after(5):
            assert [await a.recv(), await b.recv(), await c.recv()] == [b"\x00bin"] * 3


async def test_broadcast_binary_and_from_a_thread(serve, ws_connect, log, Recorder):
    outs = []
    server = await serve(lambda out: outs.append(out) or Recorder(out, log))
    async with ws_connect(server.url()) as a, ws_connect(server.url()) as b:
        await log.wait("open", 2)
        outs[0].broadcast(b"\x00\x01")
        with trio.fail_after(5):
            assert [await a.recv(), await b.recv()] == [b"\x00\x01"] * 2
        await trio.to_thread.run_sync(outs[1].broadcast, "from a thread")
        with trio.fail_after(5):
            assert [await a.recv(), await b.recv()] == ["from a thread"] * 2


# ----------------------------------------------------------------------
# timeout and cancel


async def test_timeout_calls_on_timeout_with_the_token(serve, ws_connect, log, Recorder):
    token = object()

    class Timed(Recorder):
        def on_open(self, handshake):
            self.out.timeout(0.05, token)
            self.out.timeout(0.01, ("first", 1))

        def on_timeout(self, tok):
            super().on_timeout(tok)
            self.out.send("tick")

    server = await serve(lambda out: Timed(out, log))
    async with ws_connect(server.url()) as client:
        with trio.fail_after(5):
            assert [await client.recv(), await client.recv()] == ["tick", "tick"]
    timeouts = [args[0] for args in log.of("timeout")]
    assert timeouts[0] == ("first", 1) and timeouts[1] is token and len(timeouts) == 2


async def test_cancelled_timeout_never_fires(serve, ws_connect, log, Recorder):
    class Timed(Recorder):
        def on_open(self, handshake):
            pending = self.out.timeout(0.02, "cancelled")
            self.out.cancel(pending)
            self.out.timeout(0.2, "sentinel")  # fires well after the cancelled one was due

    server = await serve(lambda out: Timed(out, log))
    async with ws_connect(server.url()):
        await log.wait("timeout")
        assert log.of("timeout") == [("sentinel",)]


async def test_cancel_from_another_thread(serve, ws_connect, log, Recorder):
    timers = []

    class Timed(Recorder):
        def on_open(self, handshake):
            super().on_open(handshake)
            timers.append((self.out, self.out.timeout(0.2, "cancelled")))
            self.out.timeout(0.4, "sentinel")

    server = await serve(lambda out: Timed(out, log))
    async with ws_connect(server.url()):
        await log.wait("open")
        ((out, timer),) = timers
        await trio.to_thread.run_sync(out.cancel, timer)
        await log.wait("timeout")
        assert log.of("timeout") == [("sentinel",)]


# ----------------------------------------------------------------------
# connect, shutdown


async def test_sender_connect_opens_a_client_connection(ws_server, log):
    async def server_handler(conn):
        log("server path", conn.request.path)
        await conn.send(f"hello {conn.request.path}")
        await conn.wait_closed()

    class Dialer(wskit.Handler):
        def on_open(self, handshake):
            log("open", handshake.request.path)
            if handshake.request.path == "/first":
                self.out.connect(server.url("/second"))

        def on_message(self, msg):
            log("message", msg)
            self.out.close()

        def on_close(self, code, reason):
            log("close", code)

    class Counting(wskit.Factory):
        def client_connected(self, out):
            log("client_connected", out.connection_id)
            return Dialer(out)

    server = await ws_server(server_handler)
    async with wskit.WebSocket(Counting()) as ws:
        first = await ws.connect(server.url("/first"))
        await log.wait("close", 2)
    assert log.of("open") == [("/first",), ("/second",)]
    assert sorted(log.of("server path")) == [("/first",), ("/second",)]
    assert sorted(str(m) for (m,) in log.of("message")) == ["hello /first", "hello /second"]
    ids = [args[0] for args in log.of("client_connected")]
    assert len(ids) == 2 and ids[0] == first.connection_id and ids[1] != ids[0]


async def test_blocking_connect_waits_for_connections_opened_from_it(ws_server, log):
    async def server_handler(conn):
        if conn.request.path == "/second":
            await trio.sleep(0.2)  # the second one lives longer
        await conn.send("bye")
        await conn.wait_closed()

    class Dialer(wskit.Handler):
        def on_open(self, handshake):
            if handshake.request.path == "/first":
                self.out.connect(url.replace("/first", "/second"))

        def on_message(self, msg):
            self.out.close()

        def on_close(self, code, reason):
            log("close", self.out.connection_id, code)

    server = await ws_server(server_handler)
    url = server.url("/first")
    with trio.fail_after(5):
        await trio.to_thread.run_sync(wskit.connect, url, Dialer, abandon_on_cancel=True)
    closes = log.of("close")
    assert len(closes) == 2 and {code for _, code in closes} == {wskit.CloseCode.NORMAL}


async def test_shutdown_from_a_handler(ws_connect, log, Recorder):
    class Stopper(Recorder):
        def on_message(self, msg):
            if msg == "stop":
                self.out.shutdown()

    class F(wskit.Factory):
        def connection_made(self, out):
            return Stopper(out, log)

        def on_shutdown(self):
            log("factory shutdown")

    with trio.fail_after(5):
        async with wskit.WebSocket(F()) as ws:
            host, port = await ws.listen("127.0.0.1:0")
            url = f"ws://{host}:{port}/"
            async with ws_connect(url) as a, ws_connect(url) as b, ws_connect(url) as c:
                await log.wait("open", 3)
                await b.send("stop")
                for client in (a, b, c):
                    with pytest.raises(websockets.exceptions.ConnectionClosedOK):
                        await client.recv()
                    assert client.close_code == 1001
        # Leaving the block: every connection closed, listener stopped.
    assert log.of("factory shutdown") == [()]
    assert len(log.of("shutdown")) == 3
    assert [code for code, _ in log.of("close")] == [wskit.CloseCode.AWAY] * 3
    with pytest.raises(OSError, match=str(port)):
        await trio.open_tcp_stream(host, port)
