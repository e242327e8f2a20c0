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
