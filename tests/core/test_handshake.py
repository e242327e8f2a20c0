"""The opening handshake, client and server, without sockets."""

from __future__ import annotations

import pytest

from wskit import Error, ErrorKind, Request, Response
from wskit._core.handshake import (
    ClientHandshake,
    ServerHandshake,
    accept_token,
    make_extensions,
    render_response,
)


def test_accept_token_rfc_example() -> None:
    # RFC 6455 section 1.3.
    assert accept_token("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def handshake_pair(request: Request | None = None, deflate: bool = True
                   ) -> tuple[ClientHandshake, ServerHandshake, Request]:
    request = request or Request.for_url("ws://example.com:8080/chat?room=1",
                                         subprotocols=["v2", "v1"])
    client = ClientHandshake(request, host="example.com:8080",
                             extensions=make_extensions("deflate" if deflate else None),
                             max_header_size=16384)
    server = ServerHandshake(max_header_size=16384)
    got = server.receive_data(client.initiate())
    assert got is not None
    return client, server, got


def test_full_handshake_with_subprotocol_and_deflate() -> None:
    client, _, request = handshake_pair()
    assert request.path == "/chat?room=1"
    assert request.query == {"room": ["1"]}
    assert request.subprotocols == ["v2", "v1"]
    assert request.headers["host"] == "example.com:8080"
    ServerHandshake.check_upgrade(request)
    exts = make_extensions("deflate")
    head, enabled = ServerHandshake.accept(request, request.accept("v1", {"X-Y": "z"}), exts)
    assert [e.name for e in enabled] == ["permessage-deflate"]
    response = client.receive_data(head + b"\x81\x02hi")
    assert response is not None
    assert response.status == 101
    assert response.subprotocol == "v1"
    assert response.headers["x-y"] == "z"
    assert [e.name for e in client.enabled_extensions] == ["permessage-deflate"]
    assert client.trailing_data == b"\x81\x02hi"


def test_no_deflate_when_client_does_not_offer() -> None:
    _, _, request = handshake_pair(deflate=False)
    head, enabled = ServerHandshake.accept(request, request.accept(), make_extensions("deflate"))
    assert enabled == []
    assert b"Sec-WebSocket-Extensions" not in head


def test_accepting_unoffered_subprotocol_is_refused() -> None:
    _, _, request = handshake_pair()
    with pytest.raises(Error):
        request.accept("v3")


def test_client_rejects_wrong_accept_token() -> None:
    client, _, _ = handshake_pair()
    bad = render_response(Response(101), [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                          ("Sec-WebSocket-Accept", "nope")])
    with pytest.raises(Error) as info:
        client.receive_data(bad)
    assert info.value.kind is ErrorKind.PROTOCOL
    assert "Accept" in str(info.value)


def test_client_reports_http_rejection_with_status_and_body() -> None:
    client, _, _ = handshake_pair()
    assert client.receive_data(render_response(Response(403, "go away"))[:20]) is None
    with pytest.raises(Error) as info:
        client.receive_data(render_response(Response(403, "go away"))[20:])
    assert info.value.kind is ErrorKind.HTTP
    assert info.value.status == 403
    assert "go away" in str(info.value)


def test_request_arriving_in_pieces_and_trailing_frames_kept() -> None:
    request = Request.for_url("ws://h/")
    client = ClientHandshake(request, host="h", extensions=[], max_header_size=16384)
    wire = client.initiate() + b"FRAMES"
    server = ServerHandshake(max_header_size=16384)
    head, last = wire[:-10], wire[-10:]  # the last read holds the head's end and the frames
    for i in range(0, len(head), 7):
        assert server.receive_data(head[i:i + 7]) is None
    assert server.receive_data(last) is not None
    assert server.trailing_data == b"FRAMES"


RAW = (b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


@pytest.mark.parametrize(
    ("wire", "status"),
    [
        (RAW.replace(b"Version: 13", b"Version: 8"), 426),
        (RAW.replace(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", b""), 400),
        (RAW.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"short"), 400),
        (RAW.replace(b"Key: ", b"Key: \x80"), 400),  # found by the fuzzer
        (RAW.replace(b"Connection: Upgrade", b"Connection: keep-alive"), 400),
        (RAW.replace(b"GET", b"POST"), 400),
    ],
)
def test_bad_upgrade_requests(wire: bytes, status: int) -> None:
    request = ServerHandshake(max_header_size=16384).receive_data(wire)
    assert request is not None
    with pytest.raises(Error) as info:
        ServerHandshake.check_upgrade(request)
    assert info.value.status == status


def test_malformed_request_gets_400() -> None:
    with pytest.raises(Error) as info:
        ServerHandshake(max_header_size=16384).receive_data(b"NOT HTTP AT ALL\r\n\r\n")
    assert info.value.status == 400


def test_oversized_header_gets_431() -> None:
    server = ServerHandshake(max_header_size=1024)
    with pytest.raises(Error) as info:
        server.receive_data(b"GET / HTTP/1.1\r\nX: " + b"a" * 2000)
    assert info.value.status == 431


def test_eof_before_request_is_an_io_error_without_status() -> None:
    server = ServerHandshake(max_header_size=1024)
    server.receive_data(b"GET / HT")
    with pytest.raises(Error) as info:
        server.receive_data(b"")
    assert info.value.status is None
    assert info.value.kind is ErrorKind.IO


def test_render_plain_response() -> None:
    wire = render_response(Response(200, "ok"))
    assert wire.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: 2\r\n" in wire
    assert b"Connection: close\r\n" in wire
    assert wire.endswith(b"\r\n\r\nok")


def test_too_many_headers_gets_431() -> None:
    wire = RAW.replace(b"\r\n\r\n", b"\r\n" + b"X-A: 1\r\n" * 200 + b"\r\n")
    with pytest.raises(Error) as info:
        ServerHandshake(max_header_size=65536).receive_data(wire)
    assert info.value.status == 431


def test_overlong_target_gets_414() -> None:
    wire = RAW.replace(b"GET / ", b"GET /" + b"a" * 9000 + b" ")
    with pytest.raises(Error) as info:
        ServerHandshake(max_header_size=65536).receive_data(wire)
    assert info.value.status == 414


def test_render_response_keeps_given_length_and_connection() -> None:
    wire = render_response(Response(200, "ok", {"Content-Length": "2", "Connection": "keep"}))
    assert wire.count(b"Content-Length") == 1
    assert b"Connection: keep\r\n" in wire
    assert b"Connection: close" not in wire


def test_eof_before_any_request_is_an_io_error() -> None:
    with pytest.raises(Error) as info:
        ServerHandshake(max_header_size=1024).receive_data(b"")
    assert info.value.kind is ErrorKind.IO
    assert info.value.status is None


def test_whole_oversized_head_in_one_read_gets_431() -> None:
    # h11 checks its limit only while a head is incomplete.
    with pytest.raises(Error) as info:
        ServerHandshake(max_header_size=len(RAW) - 10).receive_data(RAW)
    assert info.value.status == 431
    assert info.value.kind is ErrorKind.CAPACITY


def test_request_body_is_read_and_bounded() -> None:
    post = b"POST /form HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
    request = ServerHandshake(max_header_size=1024).receive_data(post)
    assert request is not None
    assert (request.method, request.path, request.is_websocket) == ("POST", "/form", False)
    big = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2000\r\n\r\n" + b"x" * 2000
    with pytest.raises(Error) as info:
        ServerHandshake(max_header_size=1024).receive_data(big)
    assert info.value.status == 413


def test_no_extension_when_no_offer_is_acceptable() -> None:
    request = Request.for_url("ws://h/", headers={"Sec-WebSocket-Extensions": "x-unknown"})
    client = ClientHandshake(request, host="h", extensions=[], max_header_size=16384)
    got = ServerHandshake(max_header_size=16384).receive_data(client.initiate())
    assert got is not None
    assert got.is_websocket
    head, enabled = ServerHandshake.accept(got, got.accept(), make_extensions("deflate"))
    assert enabled == []
    assert b"Sec-WebSocket-Extensions" not in head


def test_a_given_host_header_is_not_doubled() -> None:
    request = Request.for_url("ws://h/", headers={"Host": "proxy.example"})
    wire = ClientHandshake(request, host="h", extensions=[], max_header_size=16384).initiate()
    assert wire.lower().count(b"host:") == 1
    assert b"Host: proxy.example\r\n" in wire


def answer(client: ClientHandshake, server_request: Request, *extra: tuple[str, str],
           drop: str = "") -> bytes:
    """The server's 101 for ``server_request``, with extra headers or one dropped."""
    head, _ = ServerHandshake.accept(server_request, server_request.accept(), [])
    lines = [line for line in head.split(b"\r\n") if not drop or not line.startswith(drop.encode())]
    extra_lines = [f"{name}: {value}".encode() for name, value in extra]
    return b"\r\n".join(lines[:-2] + extra_lines + [b"", b""])


@pytest.mark.parametrize(
    ("extra", "drop", "why"),
    [
        ((), "Upgrade", "lacks 'Upgrade: websocket'"),
        ((), "Connection", "lacks 'Connection: Upgrade'"),
        ((("Sec-WebSocket-Protocol", "v9"),), "", "did not offer"),
        ((("Sec-WebSocket-Extensions", "permessage-deflate"),), "", "extension we did not"),
    ],
)
def test_client_refuses_an_invalid_101(extra: tuple[tuple[str, str], ...], drop: str,
                                       why: str) -> None:
    client, _, request = handshake_pair(deflate=False)
    with pytest.raises(Error) as info:
        client.receive_data(answer(client, request, *extra, drop=drop))
    assert info.value.kind is ErrorKind.PROTOCOL
    assert why in str(info.value)


def test_client_skips_interim_answers_and_bounds_a_rejection_body() -> None:
    client, _, request = handshake_pair(deflate=False)
    assert client.receive_data(b"HTTP/1.1 100 Continue\r\n\r\n") is None
    assert client.receive_data(answer(client, request)) is not None
    client, _, _ = handshake_pair(deflate=False)
    rejection = render_response(Response(500, "e" * 20000))
    assert client.receive_data(rejection[:18000]) is None  # the kept body is full here
    with pytest.raises(Error) as info:
        client.receive_data(rejection[18000:])
    assert info.value.status == 500
    assert "e" * 200 in str(info.value)
    assert "e" * 201 not in str(info.value)  # at most 200 characters are shown


def test_client_handshake_failures_before_an_answer() -> None:
    client, _, _ = handshake_pair(deflate=False)
    with pytest.raises(Error) as info:
        client.receive_data(b"NOT HTTP\r\n\r\n")
    assert info.value.kind is ErrorKind.PROTOCOL
    client, _, _ = handshake_pair(deflate=False)
    with pytest.raises(Error) as info:
        client.receive_data(b"")
    # A server that left before answering: a protocol error, said in our
    # words rather than h11's ("can't handle event type ConnectionClosed…").
    assert info.value.kind is ErrorKind.PROTOCOL
    assert "ConnectionClosed" not in str(info.value)


def test_client_told_when_the_server_closes_without_an_answer() -> None:
    # What a TLS server does to a ws:// client: closes without a byte.
    client, _, _ = handshake_pair()
    with pytest.raises(Error) as info:
        client.receive_data(b"")
    assert info.value.kind is ErrorKind.PROTOCOL
    assert "without answering the handshake" in str(info.value)
    assert "connect with wss://" in str(info.value)


def test_client_told_when_the_answer_is_not_http() -> None:
    client, _, _ = handshake_pair()
    with pytest.raises(Error) as info:
        client.receive_data(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
    assert str(info.value).startswith("did not receive a valid HTTP response")
