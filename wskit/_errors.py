"""Every exception wskit raises, in one place.

Every failure a user can see is an :class:`Error`; wsproto, h11 and trio
errors are translated at the boundary (their original is kept as
``__cause__``)::

    Exception
     └── Error                  .kind says which failure; .status for HTTP
          │   (kinds: USAGE, INTERNAL, CAPACITY, PROTOCOL, ENCODING, IO,
          │           HTTP, SSL, QUEUE, CUSTOM, TIMER, BACKPLANE)
          └── ConnectionClosed  the test kit's client: the connection is over

One class with a ``kind`` rather than a subclass per kind keeps ``except
wskit.Error`` the only pattern a user needs; ``err.kind is ErrorKind.QUEUE``
picks one out.

Whose fault: ``USAGE`` is *your* call that was wrong (a bad argument, a
method used in the wrong place) and its message says what to do instead;
``PROTOCOL``, ``ENCODING`` and ``CAPACITY`` are the *peer's* violations;
``INTERNAL`` is a bug in wskit. Errors are immutable values: one that belongs
to a connection is built with its ``connection_id``
(:meth:`Error.for_connection` makes the copy that names one).
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = ["ConnectionClosed", "Error", "ErrorKind"]


class ErrorKind(enum.Enum):
    """What went wrong: ws-rs's kinds, plus ``USAGE`` for the caller's mistakes."""

    #: The caller's mistake: a wrong argument type or value, a method used
    #: where it cannot work. Raised at once, in the caller's thread.
    USAGE = "usage"
    #: A bug in wskit (please report it).
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
    #: The cluster backplane (``Settings.backplane``, Redis) is unreachable
    #: or failed: a message for another node was not sent. Local delivery
    #: is unaffected.
    BACKPLANE = "backplane"


class Error(Exception):
    """A wskit failure: ``kind`` says which, the message says exactly what.

    ``status`` is the HTTP status for ``ErrorKind.HTTP`` errors (a rejected
    handshake, or the status wskit answered a refused request with),
    ``None`` otherwise. ``response`` is the server's whole answer when a
    client's handshake was refused (its headers, e.g. ``Retry-After``, and
    body). ``connection_id`` names the connection the error belongs to,
    when there is one. Immutable.
    """

    message: str
    kind: ErrorKind
    status: int | None
    connection_id: int | None
    #: A ``wskit.Response`` (typed ``Any``: this module imports nothing of
    #: wskit, and ``Response`` itself raises ``Error``).
    response: Any

    def __init__(
        self,
        message: str,
        kind: ErrorKind = ErrorKind.INTERNAL,
        *,
        status: int | None = None,
        connection_id: int | None = None,
        response: Any = None,
    ) -> None:
        super().__init__(message)
        set_ = object.__setattr__
        set_(self, "message", message)
        set_(self, "kind", kind)
        set_(self, "status", status)
        set_(self, "connection_id", connection_id)
        set_(self, "response", response)

    def __setattr__(self, name: str, value: Any) -> None:
        # Python itself sets the traceback and context fields while raising.
        if name.startswith("__") and name.endswith("__"):
            object.__setattr__(self, name, value)
            return
        raise AttributeError(f"wskit.Error is immutable (cannot set {name!r})")

    def for_connection(self, connection_id: int) -> Error:
        """This error as one that names ``connection_id`` (itself if it already does)."""
        if self.connection_id == connection_id:
            return self
        copy = Error(self.message, self.kind, status=self.status, connection_id=connection_id,
                     response=self.response)
        copy.__cause__ = self.__cause__
        return copy

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        extra = f", status={self.status}" if self.status is not None else ""
        return f"wskit.Error({self.message!r}, kind={self.kind.name}{extra})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.kind, self.status,
                           self.connection_id, self.response))


def _rebuild(cls: type[Error], message: str, kind: ErrorKind, status: int | None,
             connection_id: int | None, response: Any = None) -> Error:
    return Error(message, kind, status=status, connection_id=connection_id,
                 response=response)


class ConnectionClosed(Error):
    """A connection is over; ``code``/``reason`` say how (``kind`` is ``IO``).

    Raised by the test kit's :class:`wskit.testing.Client` once its
    connection is closed, and given to ``Handler.on_reconnecting`` when a
    reconnecting client's connection ended."""

    code: int
    reason: str

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"connection closed: {int(code)} {reason!r}", ErrorKind.IO)
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "reason", reason)

    def __repr__(self) -> str:
        return f"wskit.ConnectionClosed({int(self.code)}, {self.reason!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (ConnectionClosed, (self.code, self.reason))
