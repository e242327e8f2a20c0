"""HTTP values of the opening handshake: headers, requests, responses.

All immutable. Header names compare case-insensitively and may repeat;
``headers["X"]`` gives the first value, ``headers.get_all("X")`` every one.
"""

from __future__ import annotations

import dataclasses
import http
from collections.abc import Iterable, Iterator, Mapping
from typing import Union
from urllib.parse import parse_qs, urlsplit

from .._errors import Error, ErrorKind

__all__ = ["Handshake", "Headers", "HeadersLike", "Request", "Response", "headers_from_h11",
           "parsed_headers"]

HeadersLike = Union["Headers", Mapping[str, str], Iterable[tuple[str, str]]]


class Headers(Mapping[str, str]):
    """Case-insensitive, multi-valued, immutable HTTP headers.

    Iteration yields each distinct name once (as first written); ``items()``
    on the mapping gives the first value per name, ``raw_items()`` every pair
    in order.
    """

    __slots__ = ("_index", "_items")

    _items: tuple[tuple[str, str], ...]
    _index: dict[str, list[str]]

    def __init__(self, items: HeadersLike | None = None) -> None:
        pairs: list[tuple[str, str]]
        if items is None:
            pairs = []
        elif isinstance(items, Headers):
            pairs = list(items._items)
        elif isinstance(items, Mapping):
            pairs = [(str(k), str(v)) for k, v in items.items()]
        else:
            pairs = [(str(k), str(v)) for k, v in items]
        index: dict[str, list[str]] = {}
        for name, value in pairs:
            if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
                raise Error(f"header {name!r} contains a line break", ErrorKind.HTTP)
            index.setdefault(name.lower(), []).append(value)
        self._items = tuple(pairs)
        self._index = index

    @classmethod
    def _parsed(cls, pairs: list[tuple[str, str]]) -> Headers:
        """Headers from a parser that already refused line breaks (h11)."""
        self = cls.__new__(cls)
        index: dict[str, list[str]] = {}
        for name, value in pairs:
            index.setdefault(name.lower(), []).append(value)
        self._items = tuple(pairs)
        self._index = index
        return self

    def __getitem__(self, name: str) -> str:
        return self._index[name.lower()][0]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for name, _ in self._items:
            if name.lower() not in seen:
                seen.add(name.lower())
                yield name

    def __len__(self) -> int:
        return len(self._index)

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order; ``[]`` when absent."""
        return list(self._index.get(name.lower(), ()))

    def tokens(self, name: str) -> list[str]:
        """The comma-separated tokens of every ``name`` header, stripped."""
        return [
            token.strip()
            for value in self._index.get(name.lower(), ())
            for token in value.split(",")
            if token.strip()
        ]

    def has_token(self, name: str, token: str) -> bool:
        """Whether the comma-separated ``name`` headers list ``token``,
        compared case-insensitively (``Connection: keep-alive, Upgrade``
        has ``upgrade``)."""
        token = token.lower()
        for value in self._index.get(name.lower(), ()):
            value = value.lower()
            if value == token or (token in value and any(
                    part.strip() == token for part in value.split(","))):
                return True
        return False

    def raw_items(self) -> tuple[tuple[str, str], ...]:
        """Every (name, value) pair in the order received or given."""
        return self._items

    def with_items(self, extra: HeadersLike | None) -> Headers:
        """A copy with ``extra`` pairs appended."""
        if not extra:
            return self
        return Headers(self._items + Headers(extra)._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._index == other._index
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"


# The standard reason phrases, by status (an HTTPStatus lookup is an Enum
# call: slow on the handshake path).
_REASONS = {status.value: status.phrase for status in http.HTTPStatus}


@dataclasses.dataclass(frozen=True, slots=True, init=False)
class Response:
    """An HTTP response: the 101 of an accepted handshake, a rejection, or a
    plain answer (a page, a health check) served by ``Handler.on_request``.

    ``body`` may be given as ``str`` (sent as UTF-8 ``text/plain`` unless a
    ``Content-Type`` header says otherwise).
    """

    status: int
    body: bytes
    headers: Headers
    reason: str
    subprotocol: str | None

    def __init__(
        self,
        status: int = 200,
        body: bytes | str = b"",
        headers: HeadersLike | None = None,
        *,
        reason: str | None = None,
        subprotocol: str | None = None,
    ) -> None:
        hdrs = Headers(headers)
        if isinstance(body, str):
            body = body.encode("utf-8")
            if "content-type" not in hdrs:
                hdrs = hdrs.with_items([("Content-Type", "text/plain; charset=utf-8")])
        if not 100 <= status <= 599:
            raise Error(f"HTTP status must be 100-599, got {status}", ErrorKind.HTTP)
        if reason is None:
            reason = _REASONS.get(status, "")
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "body", bytes(body))
        object.__setattr__(self, "headers", hdrs)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "subprotocol", subprotocol)


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request: the client's opening handshake, or a plain request.

    On the server it is what the peer sent; on the client,
    ``Handler.build_request(url)`` returns one to shape the handshake
    (extra headers, subprotocols) — build it with :meth:`for_url`.
    """

    method: str
    #: The request target: path with query string.
    path: str
    headers: Headers

    @classmethod
    def for_url(
        cls,
        url: str,
        *,
        headers: HeadersLike | None = None,
        subprotocols: Iterable[str] = (),
        origin: str | None = None,
    ) -> Request:
        """The request a client sends to open ``url``, with extra headers."""
        parts = urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        hdrs = Headers(headers)
        protocols = list(subprotocols)
        extra: list[tuple[str, str]] = []
        if protocols:
            extra.append(("Sec-WebSocket-Protocol", ", ".join(protocols)))
        if origin is not None:
            extra.append(("Origin", origin))
        return cls("GET", path, hdrs.with_items(extra))

    @property
    def query(self) -> dict[str, list[str]]:
        """The query string, parsed: ``{"name": ["value", ...]}``."""
        return parse_qs(urlsplit(self.path).query, keep_blank_values=True)

    @property
    def origin(self) -> str | None:
        return self.headers.get("Origin")

    @property
    def subprotocols(self) -> list[str]:
        """Subprotocols offered in ``Sec-WebSocket-Protocol``, in order."""
        return self.headers.tokens("Sec-WebSocket-Protocol")

    @property
    def is_websocket(self) -> bool:
        """Whether this asks for a WebSocket upgrade (``Upgrade: websocket``)."""
        return self.headers.has_token("upgrade", "websocket")

    def accept(
        self, subprotocol: str | None = None, headers: HeadersLike | None = None
    ) -> Response:
        """Accept the upgrade, optionally choosing one offered subprotocol."""
        if subprotocol is not None and subprotocol not in self.subprotocols:
            raise Error(
                f"subprotocol {subprotocol!r} was not offered by the client "
                f"(offered: {self.subprotocols})",
                ErrorKind.PROTOCOL,
            )
        return Response(101, headers=headers, subprotocol=subprotocol)

    def reject(
        self, status: int, body: bytes | str = b"", headers: HeadersLike | None = None
    ) -> Response:
        """Refuse the upgrade with an HTTP error status."""
        if status < 300:
            raise Error(f"a rejection needs an error status, not {status}", ErrorKind.HTTP)
        return Response(status, body, headers)


@dataclasses.dataclass(frozen=True, slots=True)
class Handshake:
    """The opening handshake of an open connection, given to ``on_open``."""

    request: Request
    response: Response
    #: (host, port) of the TCP peer.
    peer_addr: tuple[str, int] | None
    #: (host, port) of our end.
    local_addr: tuple[str, int] | None
    #: The subprotocol both sides agreed on, if any.
    subprotocol: str | None
    #: Names of the negotiated extensions (e.g. ``["permessage-deflate"]``).
    extensions: tuple[str, ...]
    #: The client's address as the server's ``trusted_proxies`` reported it
    #: (``None``: no trusted proxy in front, the TCP peer is the client).
    client_addr: str | None = None

    def remote_addr(self) -> str | None:
        """The client's address: the TCP peer's host, or, when the peer is
        one of ``Settings.trusted_proxies``, the address those proxies saw
        (``X-Forwarded-For`` or ``Forwarded``, walked from the right: see
        the proxies guide). Never the forgeable leftmost entry.
        """
        if self.client_addr is not None:
            return self.client_addr
        return self.peer_addr[0] if self.peer_addr else None


def headers_from_h11(raw: list[tuple[bytes, bytes]]) -> Headers:
    """Headers parsed by h11, which already refused line breaks in them."""
    return Headers._parsed([(n.decode("latin-1"), v.decode("latin-1")) for n, v in raw])


def parsed_headers(pairs: list[tuple[str, str]]) -> Headers:
    """Headers from a parser that already refused line breaks in them
    (``fastparse``), as ``str`` pairs."""
    return Headers._parsed(pairs)
