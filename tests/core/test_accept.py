"""The accept policy, without I/O: each refusal, its order, and what passes."""

from __future__ import annotations

import pytest

from wskit import Error, ErrorKind, Request, Response, Settings
from wskit._core.accept import admit, error_response, final_answer
from wskit._core.handshake import ServerHandshake

UPGRADE = (b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
PLAIN = b"GET /health HTTP/1.1\r\nHost: x\r\n"


def parse(head: bytes, *extra: bytes) -> Request:
    request = ServerHandshake(max_header_size=16384).receive_data(head + b"".join(extra)
                                                                  + b"\r\n")
    assert request is not None
    return request


def test_an_upgrade_within_limits_goes_on() -> None:
    assert admit(parse(UPGRADE), Settings(), in_use=0, closing=False) is None


def test_a_plain_request_goes_on_to_on_request_even_when_full() -> None:
    settings = Settings(max_connections=1)
    assert admit(parse(PLAIN), settings, in_use=5, closing=False) is None


def test_shutting_down_refuses_everything_first() -> None:
    # Even a request that would fail every other check gets the 503.
    refusal = admit(parse(PLAIN, b"Origin: https://evil\r\n"),
                    Settings(allowed_origins={"https://good"}), in_use=0, closing=True)
    assert refusal is not None and refusal.response.status == 503
    assert not refusal.overload


def test_origin_is_checked_before_the_upgrade_headers() -> None:
    settings = Settings(allowed_origins={"https://good"})
    bad = parse(UPGRADE.replace(b"Version: 13", b"Version: 8"), b"Origin: https://evil\r\n")
    refusal = admit(bad, settings, in_use=0, closing=False)
    assert refusal is not None and refusal.response.status == 403
    assert "'https://evil'" in refusal.why
    assert admit(parse(UPGRADE, b"Origin: https://good\r\n"), settings, in_use=0,
                 closing=False) is None
    missing = admit(parse(UPGRADE), settings, in_use=0, closing=False)
    assert missing is not None and missing.response.status == 403
    with_empty = Settings(allowed_origins={"https://good", ""})
    assert admit(parse(UPGRADE), with_empty, in_use=0, closing=False) is None


def test_a_bad_upgrade_gets_its_status_and_426_names_the_version() -> None:
    refusal = admit(parse(UPGRADE.replace(b"Version: 13", b"Version: 8")), Settings(),
                    in_use=0, closing=False)
    assert refusal is not None and refusal.response.status == 426
    assert ("Sec-WebSocket-Version", "13") in list(refusal.response.headers.items())
    assert refusal.why.startswith("bad upgrade: ")


@pytest.mark.parametrize(("in_use", "refused"), [(9, False), (10, True), (11, True)])
def test_max_connections_refuses_with_retry_after(in_use: int, refused: bool) -> None:
    refusal = admit(parse(UPGRADE), Settings(max_connections=10), in_use=in_use,
                    closing=False)
    assert (refusal is not None) is refused
    if refusal is not None:
        assert refusal.response.status == 503 and refusal.overload
        assert refusal.response.headers.get("Retry-After") == "1"
        assert f"{in_use} connections open" in refusal.why


def test_no_connection_limit() -> None:
    assert admit(parse(UPGRADE), Settings(max_connections=None), in_use=10**6,
                 closing=False) is None


def test_final_answer() -> None:
    upgrade, plain = parse(UPGRADE), parse(PLAIN)
    assert final_answer(upgrade, None).status == 101
    refused = final_answer(plain, None)
    assert refused.status == 426 and refused.headers.get("Upgrade") == "websocket"
    assert final_answer(plain, upgrade.accept()).status == 426  # cannot upgrade plain HTTP
    page = Response(200, "hi")
    assert final_answer(plain, page) is page
    assert final_answer(upgrade, page) is page  # on_request may answer an upgrade too


def test_error_response() -> None:
    plain = error_response(Error("too big", ErrorKind.PROTOCOL, status=431))
    assert plain.status == 431 and plain.body == b"too big\n"
    assert "Sec-WebSocket-Version" not in plain.headers
    assert error_response(Error("no status", ErrorKind.IO)).status == 400
