"""What users write: ``Handler`` objects, made per connection by a factory.

A factory is any callable ``factory(out) -> handler``. The handler may be a
:class:`Handler` (subclass), any object with some ``on_*`` methods, or a plain
callable, which is then used as ``on_message``. ``Handler``'s own methods do
nothing and are marked as defaults, so the driver skips the hooks a subclass
leaves out at no cost.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Union

from ._core.http import Handshake, Request, Response
from ._core.messages import CloseCode, Message
from ._errors import Error, ErrorKind
from ._io.dispatch import default_hook

if TYPE_CHECKING:
    from ._sender import Sender

__all__ = ["Factory", "FactoryAdapter", "FactoryLike", "Handler", "HandlerLike", "Maybe"]

#: A hook's result: nothing, or an awaitable for ``async def`` hooks.
Maybe = Awaitable[None] | None


class Handler:
    """Base class for connection handlers; override the hooks you need.

    Each hook may be ``def`` or ``async def``. A connection's hooks are called
    one at a time, in order (an ``async`` hook is awaited before the next
    event), so handler state needs no locks. An exception raised by a hook is
    logged, passed to :meth:`on_error`, and closes this connection with 1011.

    The class itself is a factory: ``wskit.listen(addr, MyHandler)``.
    """

    out: Sender

    def __init__(self, out: Sender) -> None:
        self.out = out

    @default_hook
    def on_open(self, handshake: Handshake) -> Maybe:
        """The opening handshake succeeded; ``send`` works from here."""

    @default_hook
    def on_message(self, msg: Message) -> Maybe:
        """A complete message arrived (fragments already joined).

        ``msg`` is a ``str`` for text (a :class:`TextMessage`) and ``bytes``
        for binary (a :class:`BinaryMessage`): ``json.loads(msg)`` and the
        other string operations work on it as it is. Narrow with
        ``isinstance(msg, str)`` for a type checker.
        """

    @default_hook
    def on_close(self, code: CloseCode | int, reason: str) -> Maybe:
        """Called exactly once per opened connection, whoever closed it.

        ``code`` is the peer's close code (the echo of ours when we closed
        first); ``ABNORMAL`` (1006) when the stream ended without a close frame;
        the code wskit sent when it failed the connection (1002, 1007, 1009…).
        """

    @default_hook
    def on_error(self, err: Error) -> Maybe:
        """Protocol, I/O, capacity, encoding, queue and handler errors.

        The error is already logged; override to react to it.
        """

    @default_hook
    def on_request(self, request: Request) -> Response | Awaitable[Response | None] | None:
        """Server side, before accepting. ``None`` accepts a WebSocket upgrade.

        Return ``request.accept(subprotocol=…)``, ``request.reject(status)``,
        or a plain :class:`Response` to answer an ordinary HTTP request (a
        page, a health check). A non-upgrade request answered with ``None``
        gets ``426 Upgrade Required``.
        """
        return None

    @default_hook
    def build_request(self, url: str) -> Request | Awaitable[Request]:
        """Client side: the upgrade request to send; add headers, subprotocols."""
        return Request.for_url(url)

    @default_hook
    def on_response(self, response: Response) -> Maybe:
        """Client side, after the server's 101; raising rejects the connection."""

    @default_hook
    def on_timeout(self, token: Any) -> Maybe:
        """A timer set with ``self.out.timeout(delay, token)`` fired."""

    @default_hook
    def on_ping(self, data: bytes) -> Maybe:
        """A ping arrived; the pong has already been queued."""

    @default_hook
    def on_pong(self, data: bytes) -> Maybe:
        """A pong arrived."""

    @default_hook
    def on_shutdown(self) -> Maybe:
        """The WebSocket is shutting down; the close (1001) follows."""

    @default_hook
    def on_reconnecting(self, attempt: int, delay: float, error: Error
                        ) -> bool | float | Awaitable[bool | float | None] | None:
        """A reconnecting client (``reconnect=``) is about to wait ``delay``
        seconds before attempt number ``attempt`` (1, 2, ... since the last
        connection that opened).

        ``error`` says why: a :class:`wskit.ConnectionClosed` (``code``,
        ``reason``) after an open connection ended (its ``on_close`` has
        run), or the :class:`wskit.Error` of the attempt that failed
        (``IO``, ``HTTP`` with ``status`` and ``response``, ``SSL``...).

        Return ``None`` (or ``True``) to wait ``delay``, a number of seconds
        to wait that instead, or ``False`` to stop reconnecting for good.
        Raising stops it too (the error is logged and given to
        ``on_error``). ``build_request`` runs again before each attempt: a
        fresh token goes there.
        """
        return None


HandlerLike = Handler | Callable[[Message], Any] | Any
FactoryLike = Union["Factory", Callable[["Sender"], HandlerLike]]


class Factory:
    """Makes one handler per connection; subclass for per-side or lifecycle hooks.

    Any callable ``factory(out) -> handler`` works as a factory too: a
    closure, a function or a :class:`Handler` subclass.
    """

    def connection_made(self, out: Sender) -> HandlerLike:
        """The handler for a new connection, on either side."""
        raise Error(
            f"{type(self).__name__} must override connection_made(), or "
            "server_connected() and client_connected()",
            ErrorKind.USAGE,
        )

    def server_connected(self, out: Sender) -> HandlerLike:
        """The handler for an incoming connection."""
        return self.connection_made(out)

    def client_connected(self, out: Sender) -> HandlerLike:
        """The handler for an outgoing connection."""
        return self.connection_made(out)

    def connection_lost(self, handler: Any) -> None:
        """That handler's connection is over (after its ``on_close``)."""

    def on_shutdown(self) -> None:
        """The WebSocket is shutting down (called once)."""


class FactoryAdapter:
    """A uniform view of any factory."""

    __slots__ = ("client_connected", "connection_lost", "on_shutdown", "server_connected")

    def __init__(self, factory: FactoryLike) -> None:
        _refuse_async(factory)
        if isinstance(factory, Factory):
            self.server_connected: Callable[[Sender], Any] = factory.server_connected
            self.client_connected: Callable[[Sender], Any] = factory.client_connected
            self.connection_lost: Callable[[Any], None] | None = factory.connection_lost
            self.on_shutdown: Callable[[], None] | None = factory.on_shutdown
        elif callable(factory):
            self.server_connected = self.client_connected = factory
            self.connection_lost = self.on_shutdown = None
        else:
            raise Error(
                f"a factory must be callable (out -> handler), got {factory!r}",
                ErrorKind.USAGE,
            )


def _refuse_async(factory: object) -> None:
    """An ``async def`` factory is a common first mistake: the driver needs
    the handler at once, and would get a coroutine. Say so at start-up."""
    if isinstance(factory, Factory):
        makers = [getattr(factory, name) for name in
                  ("connection_made", "server_connected", "client_connected")]
    else:
        makers = [factory, type(factory).__call__]  # an object with an async __call__ too
    for maker in makers:
        if maker is not None and inspect.iscoroutinefunction(maker):
            name = getattr(maker, "__qualname__", repr(maker))
            raise Error(
                f"the factory {name} is an 'async def': a factory must return the "
                "handler at once. Keep the factory a plain 'def' and make the hooks "
                "async instead (async def on_message(self, msg): ...)",
                ErrorKind.USAGE,
            )
