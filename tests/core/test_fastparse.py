"""The handshake's fast path gives exactly what h11 gives, or steps aside.

Every request below is read twice by :class:`ServerHandshake`: with the
fast path and with h11 alone. The outcome (the request, its headers, the
bytes after it; or the error's status and message) must be identical, and
the fast path must have been taken exactly for the plain, well-formed
``GET`` requests.
"""

from __future__ import annotations

import pytest

from wskit import Error
from wskit._core import fastparse, handshake
from wskit._core.handshake import ServerHandshake

UPGRADE = (b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")


def req(first: bytes = b"GET /chat?x=1 HTTP/1.1", headers: bytes = b"Host: h\r\n" + UPGRADE,
        after: bytes = b"") -> bytes:
    return first + b"\r\n" + headers + b"\r\n" + after


FAST = {
    "upgrade": req(),
    "upgrade with a frame after it": req(after=b"\x81\x80abcd"),
    "plain GET (health check)": req(headers=b"Host: h\r\n"),
    "header case kept out, values kept": req(headers=b"HOST: h\r\nX-A:  spaced  value \r\n"),
    "empty value": req(headers=b"Host: h\r\nX-Empty:\r\n"),
    "a head just within the limit": req(headers=b"Host: h\r\nX: " + b"v" * 2000 + b"\r\n"),
    "obs-text in a value": req(headers=b"Host: h\r\nX: caf\xe9\r\n"),
    "tabs around and inside a value": req(headers=b"Host: h\r\nX:\ta\t b\t\r\n"),
    "a full browser request": req(headers=(
        b"Host: localhost:8000\r\nConnection: Upgrade\r\nPragma: no-cache\r\n"
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0.0.0\r\n"
        b"Upgrade: websocket\r\nOrigin: http://localhost:8000\r\n"
        b"Sec-WebSocket-Version: 13\r\nAccept-Language: en-US,en;q=0.9\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n")),
}
SLOW = {
    "POST": req(b"POST / HTTP/1.1", b"Host: h\r\nContent-Length: 2\r\n", b"hi"),
    "a body on GET": req(headers=b"Host: h\r\nContent-Length: 3\r\n", after=b"abc"),
    "chunked": req(headers=b"Host: h\r\nTransfer-Encoding: chunked\r\n", after=b"0\r\n\r\n"),
    "HTTP/1.0": req(b"GET / HTTP/1.0", b""),
    "no Host": req(headers=UPGRADE),
    "two Hosts": req(headers=b"Host: a\r\nHost: b\r\n"),
    "incomplete": b"GET / HTTP/1.1\r\nHost: h\r\n",
    "bare LF": b"GET / HTTP/1.1\nHost: h\n\n",
    "bare CR in a value": req(headers=b"Host: h\r\nX: a\rb\r\n"),
    "not HTTP": b"NOT HTTP AT ALL\r\n\r\n",
    "GET but garbage": b"GET \x00 nonsense\r\n\r\n",
    "bad header name": req(headers=b"Host: h\r\nBad Name: v\r\n"),
    "control byte in a value": req(headers=b"Host: h\r\nX: a\x01b\r\n"),
    "DEL in a value": req(headers=b"Host: h\r\nX: a\x7fb\r\n"),
    "NUL in a value": req(headers=b"Host: h\r\nX: a\x00b\r\n"),
    "an empty header name": req(headers=b"Host: h\r\n: v\r\n"),
    "space before the colon": req(headers=b"Host: h\r\nX : v\r\n"),
    "lowercase method": req(b"get / HTTP/1.1"),
    "two spaces in the request line": req(b"GET  / HTTP/1.1"),
    "HTTP/2.0": req(b"GET / HTTP/2.0"),
    "obsolete line folding": req(headers=b"Host: h\r\nX: a\r\n b\r\n"),
    "non-ASCII target": req(b"GET /caf\xc3\xa9 HTTP/1.1"),
    "too many headers": req(headers=b"Host: h\r\n" + b"X: y\r\n" * 200),
    "overlong target": req(b"GET /" + b"a" * 9000 + b" HTTP/1.1"),
    "head end beyond the limit": req(headers=b"Host: h\r\nX: " + b"v" * 5000 + b"\r\n"),
    "end of stream": b"",
}


def outcome(data: bytes, monkeypatch: pytest.MonkeyPatch, *, fast: bool
            ) -> tuple[object, ...]:
    if not fast:
        monkeypatch.setattr(handshake, "parse_request", lambda *_, **__: None)
    server = ServerHandshake(max_header_size=2048)
    try:
        request = server.receive_data(data)
    except Error as err:
        return ("error", err.status, str(err), err.kind)
    finally:
        monkeypatch.undo()
    if request is None:
        return ("need more",)
    return (request.method, request.path, request.headers.raw_items(), server.trailing_data)


@pytest.mark.parametrize("data", list(FAST.values()) + list(SLOW.values()),
                         ids=list(FAST) + list(SLOW))
def test_same_outcome_with_and_without_the_fast_path(
        data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    assert outcome(data, monkeypatch, fast=True) == outcome(data, monkeypatch, fast=False)


@pytest.mark.parametrize("data", list(FAST.values()), ids=list(FAST))
def test_plain_get_takes_the_fast_path(data: bytes) -> None:
    assert fastparse.parse_request(data, max_head=2048, max_headers=128,
                                   max_target=8192) is not None


@pytest.mark.parametrize("data", list(SLOW.values()), ids=list(SLOW))
def test_everything_else_goes_to_h11(data: bytes) -> None:
    assert fastparse.parse_request(data, max_head=2048, max_headers=128,
                                   max_target=8192) is None
