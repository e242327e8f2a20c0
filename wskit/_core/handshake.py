"""The opening handshake (RFC 6455 section 4), sans I/O.

HTTP is parsed with h11 on both sides, and the bytes that follow the head
(``trailing_data``) are handed to wsproto's frame-level ``Connection``. Doing
the upgrade ourselves rather than through wsproto's ``H11Handshake`` lets a
server answer plain HTTP requests on the same port and keeps frames that
arrive in the same packet as the handshake.

Failures raise :class:`wskit.Error`: on the server its ``status`` is the HTTP
status to answer with; on the client it says why the server's answer was
refused (``ErrorKind.HTTP`` with the status for a non-101 answer).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

import h11
from wsproto.extensions import Extension
from wsproto.handshake import client_extensions_handshake, server_extensions_handshake
from wsproto.utilities import RemoteProtocolError

from .._errors import Error, ErrorKind
from .deflate import BoundedDeflate
from .fastparse import parse_request
from .http import Request, Response, headers_from_h11, parsed_headers

__all__ = [
    "ClientHandshake",
    "ServerHandshake",
    "accept_token",
    "make_extensions",
    "render_response",
]

# RFC 6455 section 1.3: the GUID concatenated with the key before hashing.
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_WS_VERSION = "13"
# Beyond max_header_size (the whole head, enforced by h11), two limits of
# their own, as websockets and nginx have: a header count (websockets: 128;
# each header costs parsing and memory even when short) and a request
# target length (nginx answers 414 past its 8 KiB large_client_header_buffers).
MAX_HEADERS = 128
MAX_TARGET = 8192


def accept_token(key: str | bytes) -> str:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (section 4.2.2)."""
    raw = key.encode("ascii") if isinstance(key, str) else key
    return base64.b64encode(hashlib.sha1(raw.strip() + _WS_GUID).digest()).decode("ascii")


def make_extensions(
    compression: str | None,
    *,
    client: bool = False,
    max_message_size: int | None = None,
    window_bits: int = 15,
    no_context_takeover: bool = False,
) -> list[Extension]:
    """Fresh extension objects for one connection (they hold zlib state)."""
    if compression != "deflate":
        return []
    return [BoundedDeflate(client=client, max_message_size=max_message_size,
                           window_bits=window_bits, no_context_takeover=no_context_takeover)]


def render_response(response: Response, extra: list[tuple[str, str]] | None = None) -> bytes:
    """Serialize a response; anything but a 101 closes the connection after it.

    h11 is not used to write responses because a server must still answer
    400/431 to requests h11 refused to parse, when h11's state machine has
    already gone to ERROR.
    """
    lines = [f"HTTP/1.1 {response.status} {response.reason}"]
    headers = response.headers.raw_items()
    lines.extend(f"{name}: {value}" for name, value in headers)
    lines.extend(f"{name}: {value}" for name, value in extra or ())
    if response.status != 101:
        names = {name.lower() for name, _ in headers}
        if "content-length" not in names:
            lines.append(f"Content-Length: {len(response.body)}")
        if "connection" not in names:
            lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + response.body if response.status != 101 else head


class ServerHandshake:
    """Reads one HTTP request and builds the answer to it."""

    def __init__(self, *, max_header_size: int) -> None:
        # Made when first needed: the fast path (fastparse) mostly does
        # without it.
        self._h11: h11.Connection | None = None
        self._max_body = max_header_size
        self._max_head = max_header_size
        self._request: Request | None = None
        self._body = bytearray()
        self._trailing = b""

    def receive_data(self, data: bytes | bytearray) -> Request | None:
        """Feed bytes (``b""`` at end of stream); the request once complete.

        Raises :class:`Error` with the status to answer (400, 413, 431), or
        with ``status=None`` when the peer left before finishing its request.
        """
        h = self._h11
        if h is None:
            data = bytes(data)
            fast = parse_request(data, max_head=self._max_head, max_headers=MAX_HEADERS,
                                 max_target=MAX_TARGET)
            if fast is not None:
                target, pairs, self._trailing = fast
                self._request = Request("GET", target, parsed_headers(pairs))
                return self._request
            h = self._h11 = h11.Connection(h11.SERVER,
                                           max_incomplete_event_size=self._max_head)
        h.receive_data(bytes(data))
        while True:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as exc:
                if not data:  # the peer left mid-request: nobody to answer
                    raise Error("peer closed the connection during the handshake",
                                ErrorKind.IO) from exc
                raise Error(
                    f"malformed HTTP request: {exc}",
                    ErrorKind.PROTOCOL,
                    status=exc.error_status_hint,
                ) from exc
            if event is h11.NEED_DATA:
                # Defensive: once fed the end of stream, h11 raises (mid-request)
                # or answers ConnectionClosed (idle), never NEED_DATA.
                if not data:  # pragma: no cover
                    raise Error("peer closed the connection during the handshake", ErrorKind.IO)
                return None
            if isinstance(event, h11.Request):
                if len(event.headers) > MAX_HEADERS:
                    raise Error(f"too many headers ({len(event.headers)} > {MAX_HEADERS})",
                                ErrorKind.CAPACITY, status=431)
                # h11 enforces its size limit only while the head is still
                # incomplete: a whole oversized head read at once passes.
                size = len(event.method) + len(event.target) + 12 + sum(
                    len(name) + len(value) + 4 for name, value in event.headers.raw_items()
                )
                if size > self._max_head:
                    raise Error(f"request head larger than max_header_size={self._max_head}",
                                ErrorKind.CAPACITY, status=431)
                if len(event.target) > MAX_TARGET:
                    raise Error(f"request target longer than {MAX_TARGET} bytes",
                                ErrorKind.CAPACITY, status=414)
                self._request = Request(
                    event.method.decode("ascii", "replace"),
                    event.target.decode("ascii", "replace"),
                    headers_from_h11(list(event.headers)),
                )
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > self._max_body:
                    raise Error("request body too large", ErrorKind.CAPACITY, status=413)
            elif isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                assert self._request is not None
                return self._request
            else:  # ConnectionClosed
                raise Error("peer closed the connection during the handshake", ErrorKind.IO)

    @property
    def trailing_data(self) -> bytes:
        """Bytes received after the request: the first WebSocket frames."""
        return self._trailing if self._h11 is None else self._h11.trailing_data[0]

    @staticmethod
    def check_upgrade(request: Request) -> None:
        """Raise the 4xx a malformed upgrade request deserves (section 4.2.1)."""
        headers = request.headers
        if request.method != "GET":
            raise Error(f"WebSocket upgrade must use GET, not {request.method}",
                        ErrorKind.PROTOCOL, status=400)
        if not headers.has_token("connection", "upgrade"):
            raise Error("missing 'Connection: Upgrade' header", ErrorKind.PROTOCOL, status=400)
        version = headers.get("Sec-WebSocket-Version")
        if version != _WS_VERSION:
            raise Error(
                f"unsupported Sec-WebSocket-Version {version!r} (only 13)",
                ErrorKind.PROTOCOL,
                status=426,
            )
        keys = headers.get_all("Sec-WebSocket-Key")
        try:
            valid = len(keys) == 1 and len(base64.b64decode(keys[0], validate=True)) == 16
        except (binascii.Error, ValueError):  # ValueError: not even ASCII
            valid = False
        if not valid:
            raise Error("missing or invalid Sec-WebSocket-Key", ErrorKind.PROTOCOL, status=400)

    @staticmethod
    def accept(
        request: Request, response: Response, extensions: list[Extension]
    ) -> tuple[bytes, list[Extension]]:
        """The 101 answer and the extensions it enabled."""
        headers = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept_token(request.headers["Sec-WebSocket-Key"])),
        ]
        if response.subprotocol is not None:
            headers.append(("Sec-WebSocket-Protocol", response.subprotocol))
        offers = request.headers.tokens("Sec-WebSocket-Extensions")
        enabled: list[Extension] = []
        if offers and extensions:
            agreed = server_extensions_handshake(offers, extensions)
            if agreed is not None:
                headers.append(("Sec-WebSocket-Extensions", agreed.decode("ascii")))
                enabled = [ext for ext in extensions if ext.enabled()]
        return render_response(response, headers), enabled


class ClientHandshake:
    """Writes the upgrade request and checks the server's answer."""

    def __init__(
        self,
        request: Request,
        *,
        host: str,
        extensions: list[Extension],
        max_header_size: int,
    ) -> None:
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_header_size)
        self._request = request
        self._host = host
        self._extensions = extensions
        self._key = base64.b64encode(os.urandom(16)).decode("ascii")
        self._max_body = max_header_size
        self._response: h11.Response | None = None
        self._body = bytearray()
        self._seen = False  # any byte of the answer yet
        self.enabled_extensions: list[Extension] = []

    def initiate(self) -> bytes:
        """The bytes of the upgrade request."""
        req = self._request
        given = req.headers
        headers: list[tuple[str, str]] = []
        if "host" not in given:
            headers.append(("Host", self._host))
        headers += [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", self._key),
            ("Sec-WebSocket-Version", _WS_VERSION),
        ]
        offers = [
            ext.name if ext.offer() is True else f"{ext.name}; {ext.offer()}"
            for ext in self._extensions
            if ext.offer()
        ]
        if offers:
            headers.append(("Sec-WebSocket-Extensions", ", ".join(offers)))
        headers += list(given.raw_items())
        event = h11.Request(method=req.method, target=req.path, headers=headers)
        return self._h11.send(event) or b""

    def receive_data(self, data: bytes | bytearray) -> Response | None:
        """Feed bytes; the accepted 101 response once complete.

        Raises :class:`Error`: ``ErrorKind.HTTP`` with ``status`` when the
        server answered something other than 101, ``ErrorKind.PROTOCOL`` when
        its 101 is not a valid WebSocket upgrade.
        """
        h = self._h11
        data = bytes(data)
        if data:
            self._seen = True
        h.receive_data(data)
        while True:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as exc:
                if not self._seen:
                    # What a TLS server does to a plain-text client hello.
                    raise Error("the server closed the connection without answering the "
                                "handshake: if it is a TLS server, connect with wss://",
                                ErrorKind.PROTOCOL) from exc
                raise Error(f"did not receive a valid HTTP response (is it a WebSocket "
                            f"server?): {exc}", ErrorKind.PROTOCOL) from exc
            if event is h11.NEED_DATA:
                # Defensive, as on the server: h11 raises at the end of stream.
                if not data:  # pragma: no cover
                    self._fail_closed()
                return None
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    return self._accepted(event)
                continue  # 1xx interim answers (100 Continue) are skipped
            if isinstance(event, h11.Response):
                self._response = event
            elif isinstance(event, h11.Data):
                if len(self._body) < self._max_body:
                    self._body += event.data[: self._max_body - len(self._body)]
            else:  # EndOfMessage or ConnectionClosed (h11 pauses only after those)
                self._fail_closed()

    def _fail_closed(self) -> None:
        resp = self._response
        # Defensive: h11 gives EndOfMessage or ConnectionClosed only after a
        # Response, and raises at an early end of stream.
        if resp is None:  # pragma: no cover
            raise Error("server closed the connection before answering the handshake",
                        ErrorKind.IO)
        body = bytes(self._body).decode("utf-8", "replace").strip()
        detail = f": {body[:200]}" if body else ""
        reason = resp.reason.decode("latin-1", "replace")
        answer = Response(resp.status_code, bytes(self._body),
                          headers_from_h11(list(resp.headers)), reason=reason)
        raise Error(
            f"server rejected the WebSocket handshake with HTTP {resp.status_code} "
            f"{reason}{detail}",
            ErrorKind.HTTP,
            status=resp.status_code,
            response=answer,
        )

    def _accepted(self, event: h11.InformationalResponse) -> Response:
        headers = headers_from_h11(list(event.headers))
        if not headers.has_token("upgrade", "websocket"):
            raise Error("server's 101 lacks 'Upgrade: websocket'", ErrorKind.PROTOCOL)
        if not headers.has_token("connection", "upgrade"):
            raise Error("server's 101 lacks 'Connection: Upgrade'", ErrorKind.PROTOCOL)
        if headers.get("Sec-WebSocket-Accept") != accept_token(self._key):
            raise Error("server's Sec-WebSocket-Accept does not match our key",
                        ErrorKind.PROTOCOL)
        subprotocol = headers.get("Sec-WebSocket-Protocol")
        if subprotocol is not None and subprotocol not in self._request.subprotocols:
            raise Error(f"server chose subprotocol {subprotocol!r}, which we did not offer",
                        ErrorKind.PROTOCOL)
        try:
            self.enabled_extensions = client_extensions_handshake(
                headers.tokens("Sec-WebSocket-Extensions"), self._extensions
            )
        except RemoteProtocolError as exc:
            raise Error(f"server accepted an extension we did not offer: {exc}",
                        ErrorKind.PROTOCOL) from exc
        return Response(
            101,
            headers=headers,
            reason=event.reason.decode("latin-1", "replace"),
            subprotocol=subprotocol,
        )

    @property
    def trailing_data(self) -> bytes:
        """Bytes that came after the 101: frames the server sent at once."""
        return self._h11.trailing_data[0]
