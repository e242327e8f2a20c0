"""The one error type wskit raises, and what kind of failure it reports.

Every failure a user can see is a :class:`Error`; wsproto, h11 and trio errors
are translated at the boundary (their original is kept as ``__cause__``)::

    Exception
     └── Error                 .kind tells which failure; .status for HTTP
          (kinds: INTERNAL, CAPACITY, PROTOCOL, ENCODING, IO, HTTP, SSL,
                  QUEUE, CUSTOM, TIMER — the same as ws-rs)

One class with a ``kind`` rather than a subclass per kind keeps ``except
wskit.Error`` the only pattern a user needs; ``err.kind is ErrorKind.QUEUE``
picks one out.
"""

from __future__ import annotations

import enum

__all__ = ["Error", "ErrorKind"]


class ErrorKind(enum.Enum):
    """What went wrong, in ws-rs's terms."""

    #: A bug in wskit, or a misuse of its API (e.g. an address that can't parse).
    INTERNAL = "internal"
    #: A limit was hit: message too big, too many connections.
    CAPACITY = "capacity"
    #: The peer broke RFC 6455 (bad frame, bad handshake header).
    PROTOCOL = "protocol"
    #: A text message that is not valid UTF-8.
    ENCODING = "encoding"
    #: The network: refused, reset, timed out.
    IO = "io"
    #: The opening handshake got an HTTP answer other than 101; see ``status``.
    HTTP = "http"
    #: TLS failed (certificate, handshake).
    SSL = "ssl"
    #: The outgoing queue is full, or the connection closed with data unsent.
    QUEUE = "queue"
    #: A handler raised; the original exception is ``__cause__``.
    CUSTOM = "custom"
    #: A timer could not be set or fired on a closed connection.
    TIMER = "timer"


class Error(Exception):
    """A wskit failure: ``kind`` says which, the message says exactly what.

    ``status`` is the HTTP status for ``ErrorKind.HTTP`` errors (a rejected
    handshake), ``None`` otherwise. ``connection_id`` names the connection the
    error belongs to, when there is one.
    """

    def __init__(
        self,
        message: str,
        kind: ErrorKind = ErrorKind.INTERNAL,
        *,
        status: int | None = None,
        connection_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status = status
        self.connection_id = connection_id

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        extra = f", status={self.status}" if self.status is not None else ""
        return f"wskit.Error({self.message!r}, kind={self.kind.name}{extra})"
