"""A wskit server, with the ``websockets`` client (or a raw socket) as the peer."""

from __future__ import annotations

import contextlib
import gc
import os
import socket

import pytest
import trio
import websockets.asyncio.client
import websockets.exceptions

import wskit


def echo(out: wskit.Sender) -> object:
    """The smallest factory: a plain callable is the ``on_message`` hook."""
    return out.send


async def test_echo_text_and_binary(serve, ws_connect):
    server = await serve(echo)
    async with ws_connect(server.url()) as client:
        await client.send("héllo, wörld")
        reply = await client.recv()
        assert reply == "héllo, wörld" and isinstance(reply, str)
        await client.send(b"\x00\x01\xfe\xff")
        reply = await client.recv()
        assert reply == b"\x00\x01\xfe\xff" and isinstance(reply, bytes)
        await client.send("")
        assert await client.recv() == ""


async def test_fragmented_messages_are_joined(serve, ws_connect, log, Recorder):
    class Echo(Recorder):
        def on_message(self, msg):
            super().on_message(msg)
            self.out.send(msg)

    async def fragments():
        for part in (b"\x01", b"\x02\x03", b"", b"\x04"):
            yield part

    server = await serve(lambda out: Echo(out, log))
    async with ws_connect(server.url()) as client:
        await client.send(["frag", "men", "ted ", "ünïcode"])
        assert await client.recv() == "fragmented ünïcode"
        await client.send(fragments())
        assert await client.recv() == b"\x01\x02\x03\x04"
        await client.send("whole")
        assert await client.recv() == "whole"
    messages = [args[0] for args in log.of("message")]
    assert messages == ["fragmented ünïcode", b"\x01\x02\x03\x04", "whole"]
    assert [m.is_text for m in messages] == [True, False, True]


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_one_mib_messages_both_ways(serve, ws_connect, log, Recorder, compression):
    class Echo(Recorder):
        def on_message(self, msg):
            super().on_message(msg)
            self.out.send(msg)

    size = 2**20  # exactly the default max_message_size, on both sides
    binary = os.urandom(size)  # incompressible
    text = ("wskit-" * (size // 6 + 1))[:size]  # very compressible
    server = await serve(lambda out: Echo(out, log))
    # websockets applies max_size to the compressed frame too, and deflate makes
    # random bytes a little bigger: leave it room above 1 MiB.
    async with ws_connect(server.url(), compression=compression,
                          max_size=2 * size) as client:
        with trio.fail_after(5):
            await client.send(binary)
            assert await client.recv() == binary
            await client.send(text)
            assert await client.recv() == text
    received = [args[0] for args in log.of("message")]
    assert [len(m) for m in received] == [size, size]
    assert received[0] == binary and received[1] == text


async def test_large_and_small_messages_back_to_back_keep_their_order(serve, ws_connect):
    # Large binary frames are read straight into their message; whatever
    # follows them in the stream (text, a ping, a fragmented message, the
    # next large frame) must come out whole and in order, both ways.
    server = await serve(echo, wskit.Settings(max_message_size=4 * 2**20))
    bigs = [os.urandom(size) for size in (2**20, 3 * 2**20 + 1, 70_001)]
    async with ws_connect(server.url(), max_size=None, compression=None) as client:
        with trio.fail_after(10):
            await client.send(bigs[0])
            await client.send("between")
            pong = await client.ping(b"p")
            await client.send(bigs[1])
            await client.send([b"frag", b"ments"])
            await client.send(bigs[2])
            await client.send(b"")
            await pong.wait()
            assert await client.recv() == bigs[0]
            assert await client.recv() == "between"
            assert await client.recv() == bigs[1]
            assert await client.recv() == b"fragments"
            assert await client.recv() == bigs[2]
            assert await client.recv() == b""


def _server_socket_of(client_address: tuple[str, int]) -> trio.SocketStream:
    """The server's end of a connection in this process (found among the live
    objects by its peer address: wskit exposes no socket, on purpose)."""
    for obj in gc.get_objects():
        if type(obj) is trio.SocketStream and obj.socket.fileno() != -1:
            with contextlib.suppress(OSError):
                if obj.socket.getpeername()[:2] == client_address[:2]:
                    return obj
    raise AssertionError(f"no server socket for {client_address}")


def _unsent_limit(stream: trio.SocketStream) -> int:
    return stream.getsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT)


@pytest.mark.skipif(not hasattr(socket, "TCP_NOTSENT_LOWAT"), reason="Linux and macOS only")
async def test_a_large_message_is_handed_to_the_kernel_whole(serve, ws_connect):
    # trio lets the kernel hold 16 KiB unsent; a connection that sends a
    # larger message raises that to the message (one write instead of one
    # per 16 KiB drained, as asyncio does); broadcasts and small messages
    # leave it as it is.
    outs: list[wskit.Sender] = []

    def factory(out: wskit.Sender) -> object:
        outs.append(out)
        return out.send

    server = await serve(factory, wskit.Settings(max_message_size=8 * 2**20))
    big = os.urandom(2**20)
    async with ws_connect(server.url(), max_size=None, compression=None) as client, \
            ws_connect(server.url(), max_size=None, compression=None) as other:
        mine = _server_socket_of(client.local_address)
        theirs = _server_socket_of(other.local_address)
        assert _unsent_limit(mine) == _unsent_limit(theirs) == 2**14  # trio's
        with trio.fail_after(10):
            await client.send(b"small")
            assert await client.recv() == b"small"
            assert _unsent_limit(mine) == 2**14
            await client.send(big)
            assert await client.recv() == big
            assert _unsent_limit(mine) == 2**20 + 10  # the frame: payload and header
            await client.send(b"small")
            assert await client.recv() == b"small"
            assert _unsent_limit(mine) == 2**20 + 10  # raised once, kept
            outs[0].broadcast(big)
            assert await client.recv() == big
            assert await other.recv() == big
        assert _unsent_limit(theirs) == 2**14  # a broadcast's shared frame: not raised
        with trio.fail_after(10):
            await client.send(big * 5)  # capped at 4 MiB
            assert await client.recv() == big * 5
        assert _unsent_limit(mine) == 2**22


async def test_message_over_default_limit_is_refused_with_1009(serve, ws_connect, log,
                                                                Recorder):
    server = await serve(lambda out: Recorder(out, log))
    async with ws_connect(server.url(), compression=None) as client:
        await client.send(b"x" * (2**20 + 1))
        with pytest.raises(websockets.exceptions.ConnectionClosedError):
            await client.recv()
        assert client.close_code == 1009
    (err,), = await log.wait("error")
    assert isinstance(err, wskit.Error) and err.kind is wskit.ErrorKind.CAPACITY
    assert log.of("message") == []
    (code, _reason), = await log.wait("close")
    assert code == wskit.CloseCode.SIZE


async def test_message_semantics(serve, ws_connect, log, Recorder):
    server = await serve(lambda out: Recorder(out, log))
    async with ws_connect(server.url()) as client:
        await client.send("héllo €")
        await client.send(b"\x00\xff")
        await log.wait("message", 2)
    (text,), (binary,) = log.of("message")

    assert isinstance(text, wskit.Message)
    assert text == "héllo €" and text != b"h\xc3\xa9llo \xe2\x82\xac"
    assert text.is_text and not text.is_binary
    assert text.data == "héllo €" and isinstance(text.data, str)
    assert str(text) == "héllo €"
    assert len(text) == 7  # a str: characters
    assert text.nbytes == len("héllo €".encode()) == 10
    assert text.as_text() == "héllo €"
    # A received message is the str / bytes it carries (issue 11).
    assert isinstance(text, str) and isinstance(binary, bytes)
    assert text + "!" == "héllo €!" and text.startswith("héllo")
    assert binary.hex() == "00ff"
    assert text.as_bytes() == "héllo €".encode()

    assert binary == b"\x00\xff" and binary != "\x00\xff"
    assert binary.is_binary and not binary.is_text
    assert binary.data == b"\x00\xff" and isinstance(binary.data, bytes)
    assert len(binary) == 2
    assert binary.as_bytes() == b"\x00\xff"

    assert wskit.Message.text("héllo €") == text
    assert wskit.Message.binary(b"\x00\xff") == binary
    with pytest.raises(AttributeError):
        text.data = "changed"  # type: ignore[misc]


async def test_on_open_gets_the_handshake(serve, ws_connect, log, Recorder):
    server = await serve(lambda out: Recorder(out, log))
    async with ws_connect(server.url("/chat/room?x=1&y=two&y=3"),
                          additional_headers={"X-Test": "yes"},
                          origin="https://example.com") as client:
        (hs,), = await log.wait("open")
        client_addr = client.local_address[:2]
        assert hs.request.method == "GET"
        assert hs.request.path == "/chat/room?x=1&y=two&y=3"
        assert hs.request.query == {"x": ["1"], "y": ["two", "3"]}
        assert hs.request.headers["x-test"] == "yes"
        assert hs.request.headers["X-TEST"] == "yes"
        assert hs.request.origin == "https://example.com"
        assert hs.request.subprotocols == []
        assert hs.response.status == 101
        assert hs.peer_addr == client_addr
        assert hs.local_addr == (server.host, server.port)
        assert hs.remote_addr() == "127.0.0.1"
        assert hs.subprotocol is None
        assert tuple(hs.extensions) == ("permessage-deflate",)
        assert "permessage-deflate" in client.response.headers["Sec-WebSocket-Extensions"]


async def test_no_extension_when_the_client_offers_none(serve, ws_connect, log, Recorder):
    server = await serve(lambda out: Recorder(out, log))
    async with ws_connect(server.url(), compression=None) as client:
        (hs,), = await log.wait("open")
        assert tuple(hs.extensions) == ()
        assert "Sec-WebSocket-Extensions" not in client.response.headers


async def test_no_extension_when_the_server_disables_compression(serve, ws_connect, log,
                                                                  Recorder):
    server = await serve(lambda out: Recorder(out, log), wskit.Settings(compression=None))
    async with ws_connect(server.url()) as client:
        (hs,), = await log.wait("open")
        assert tuple(hs.extensions) == ()
        assert "Sec-WebSocket-Extensions" not in client.response.headers


async def test_on_request_accepts_with_a_subprotocol(serve, ws_connect, log, Recorder):
    class Chooser(Recorder):
        def on_request(self, request):
            self.log("request", request)
            return request.accept(subprotocol="chat.v2", headers={"X-Server": "wskit"})

    server = await serve(lambda out: Chooser(out, log))
    async with ws_connect(server.url("/sub"), subprotocols=["chat.v1", "chat.v2"]) as client:
        assert client.subprotocol == "chat.v2"
        assert client.response.headers["X-Server"] == "wskit"
        (hs,), = await log.wait("open")
    (request,), = log.of("request")
    assert request.path == "/sub"
    assert request.subprotocols == ["chat.v1", "chat.v2"]
    assert hs.subprotocol == "chat.v2"
    assert hs.response.subprotocol == "chat.v2"


async def test_on_request_rejects_with_a_status(serve, ws_connect, log, Recorder):
    class Rejecter(Recorder):
        def on_request(self, request):
            return request.reject(403, body="go away")

    server = await serve(lambda out: Rejecter(out, log))
    with pytest.raises(websockets.exceptions.InvalidStatus) as info:
        async with ws_connect(server.url()):
            pass
    assert info.value.response.status_code == 403
    assert info.value.response.body == b"go away"
    assert log.of("open") == []
    assert log.of("close") == []


async def test_async_on_request(serve, ws_connect, log, Recorder):
    class Slow(Recorder):
        async def on_request(self, request):
            await trio.sleep(0.01)
            if request.path == "/no":
                return request.reject(401)
            return None

    server = await serve(lambda out: Slow(out, log))
    with pytest.raises(websockets.exceptions.InvalidStatus) as info:
        async with ws_connect(server.url("/no")):
            pass
    assert info.value.response.status_code == 401
    async with ws_connect(server.url("/yes")):
        (hs,), = await log.wait("open")
        assert hs.request.path == "/yes"


async def test_on_request_serves_plain_http(serve, raw, log, Recorder):
    class Pages(Recorder):
        def on_request(self, request):
            self.log("request", request)
            if request.path == "/status":
                return wskit.Response(200, b"ok\n", {"X-Health": "1",
                                                     "Content-Type": "text/plain"})
            return None

    server = await serve(lambda out: Pages(out, log))
    status, headers, body = await raw.http(
        server.host, server.port,
        b"GET /status HTTP/1.1\r\nHost: localhost\r\nX-Probe: yes\r\n\r\n")
    assert status == 200
    assert headers["x-health"] == "1"
    assert headers["content-type"] == "text/plain"
    assert body == b"ok\n"
    (request,), = log.of("request")
    assert request.method == "GET" and request.path == "/status"
    assert request.headers["X-Probe"] == "yes"
    assert log.of("open") == []


async def test_plain_http_without_an_answer_gets_426(serve, raw):
    server = await serve(echo)
    status, headers, _body = await raw.http(
        server.host, server.port, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert status == 426
    assert headers["upgrade"].lower() == "websocket"


async def test_on_close_peer_code_and_reason(serve, ws_connect, log, Recorder):
    server = await serve(lambda out: Recorder(out, log))
    async with ws_connect(server.url()) as client:
        await log.wait("open")
        await client.aclose(4000, "client says bye")
    (code, reason), = await log.wait("close")
    assert code == 4000 and type(code) is int  # no CloseCode member for 4000
    assert reason == "client says bye"


async def test_on_close_normal_is_a_closecode(serve, ws_connect, log, Recorder):
    server = await serve(lambda out: Recorder(out, log))
    async with ws_connect(server.url()):
        await log.wait("open")
    (code, reason), = await log.wait("close")
    assert code is wskit.CloseCode.NORMAL and reason == ""


async def test_on_close_echo_when_we_close_first(serve, ws_connect, log, Recorder):
    class Closer(Recorder):
        def on_message(self, msg):
            super().on_message(msg)
            self.out.close(4000, "server says bye")

    server = await serve(lambda out: Closer(out, log))
    async with ws_connect(server.url()) as client:
        await client.send("close please")
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await client.recv()
        assert client.close_code == 4000
        assert client.close_reason == "server says bye"
    (code, reason), = await log.wait("close")
    assert (code, reason) == (4000, "server says bye")


async def test_on_close_is_called_exactly_once(serve, ws_connect, log, Recorder):
    server = await serve(lambda out: Recorder(out, log))
    async with ws_connect(server.url()) as client:
        await log.wait("open")
        await client.aclose(1000, "one")
    await log.wait("close")
    server.ws.shutdown()
    with trio.fail_after(5):
        await server.exited.wait()
    assert log.of("close") == [(wskit.CloseCode.NORMAL, "one")]


async def test_on_close_1006_when_the_tcp_stream_dies(serve, raw, log, Recorder):
    server = await serve(lambda out: Recorder(out, log))
    stream, _rest = await raw.handshake(server.host, server.port)
    await log.wait("open")
    await stream.aclose()  # no close frame
    (code, reason), = await log.wait("close")
    assert code is wskit.CloseCode.ABNORMAL and reason == ""


async def test_on_close_1006_when_the_websockets_transport_is_aborted(serve, ws_connect, log,
                                                                      Recorder):
    server = await serve(lambda out: Recorder(out, log))
    async with ws_connect(server.url()) as client:
        await log.wait("open")
        client.stream.socket.close()  # abort: no close frame, no closing handshake
        (code, _reason), = await log.wait("close")
        assert code == wskit.CloseCode.ABNORMAL


async def test_data_after_our_close_is_not_delivered(serve, raw, log, Recorder):
    class Closer(Recorder):
        def on_message(self, msg):
            super().on_message(msg)
            self.out.close(4000, "enough")

    server = await serve(lambda out: Closer(out, log))
    stream, rest = await raw.handshake(server.host, server.port)
    buffer = bytearray(rest)
    close_payload = (4000).to_bytes(2, "big") + b"enough"
    await stream.send_all(raw.frame(0x1, b"first"))
    assert await raw.read_frame(stream, buffer) == (0x8, close_payload)
    await stream.send_all(raw.frame(0x1, b"after the close") + raw.frame(0x8, close_payload))
    # The server closes the TCP connection first (RFC 6455 section 7.1.1); we follow.
    with trio.fail_after(5):
        assert await stream.receive_some(100) == b""
    await stream.aclose()
    assert await log.wait("close") == [(4000, "enough")]
    assert log.of("message") == [("first",)]


@pytest.mark.parametrize(("settings", "expected"), [
    ({}, "127.0.0.1"),
    # trust_proxy_headers: a proxy on loopback; the entry it appended counts.
    ({"trust_proxy_headers": True}, "10.0.0.1"),
    ({"trusted_proxies": ["127.0.0.0/8", "10.0.0.0/8"], "proxy_hops": 2}, "203.0.113.7"),
    ({"trusted_proxies": ["192.0.2.1"]}, "127.0.0.1"),  # the peer is not that proxy
])
async def test_remote_addr_honours_proxy_headers_only_from_trusted_proxies(
        serve, raw, log, Recorder, settings, expected):
    server = await serve(lambda out: Recorder(out, log), wskit.Settings(**settings))
    stream, _ = await raw.handshake(server.host, server.port,
                                    extra="X-Forwarded-For: 203.0.113.7, 10.0.0.1\r\n")
    (hs,), = await log.wait("open")
    assert hs.peer_addr[0] == "127.0.0.1"
    assert hs.remote_addr() == expected
    await stream.aclose()


async def test_asyncio_client_in_another_thread(serve, in_asyncio, log, Recorder):
    # The same peer library on its own asyncio loop, independent of our Trio run.
    class Echo(Recorder):
        def on_message(self, msg):
            super().on_message(msg)
            self.out.send(msg)

    async def client(url):
        async with websockets.asyncio.client.connect(url, proxy=None) as conn:
            await conn.send(["frag", "ments"])
            first = await conn.recv()
            await conn.send(b"\x00" * 70_000)
            second = await conn.recv()
            await conn.close(4000, "asyncio bye")
            return first, len(second)

    server = await serve(lambda out: Echo(out, log))
    assert await in_asyncio(client, server.url("/aio")) == ("fragments", 70_000)
    assert await log.wait("close") == [(4000, "asyncio bye")]
    (hs,), = log.of("open")
    assert hs.request.path == "/aio"
