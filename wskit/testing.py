"""Test your handlers without sockets: ``wskit.testing``.

Your factory runs in a real :class:`wskit.WebSocket`, driven by the same
connection code as in production; only the socket is replaced by an
in-memory Trio stream (``trio.testing.memory_stream_pair``). The client on
the other end is a small, independent WebSocket client (built on wsproto)
with an ``await``-style API::

    import wskit, wskit.testing

    async def test_echo():
        async with wskit.testing.connect(Echo, path="/echo") as client:
            await client.send("hi")
            assert await client.receive() == "hi"
            await client.close()
        assert client.close_code == wskit.CloseCode.NORMAL

Several clients on one WebSocket (for broadcasts), plain HTTP requests (for
``on_request`` pages and rejections)::

    async with wskit.testing.serve(Chat) as server:
        async with server.connect("/ws") as alice, server.connect("/ws") as bob:
            ...
        response = await server.request("/")          # a wskit.Response

**Time.** No socket means nothing waits on the real world, so Trio's
``MockClock`` works: with ``autojump_threshold=0`` the clock jumps to the
next timer whenever every task is blocked, and ``out.timeout(30, ...)``,
keepalive pings, ``handshake_timeout`` and ``close_timeout`` all fire at
once in real time. With pytest-trio, ask for the ``autojump_clock`` fixture
(or ``mock_clock`` and call ``mock_clock.jump(seconds)`` yourself); with
``trio.run``, pass ``clock=trio.testing.MockClock(autojump_threshold=0)``.
Bound every wait with ``trio.fail_after``: under an autojump clock a test
that waits for something that never comes fails at once instead of hanging.

**pytest.** The ``wskit_serve`` fixture starts a server for the test and
shuts it down after. It is registered when wskit is installed (a ``pytest11``
entry point); when it is not (a vendored copy), add
``pytest_plugins = ["wskit.testing"]`` to your root ``conftest.py``::

    async def test_broadcast(wskit_serve):
        server = await wskit_serve(Chat, settings=wskit.Settings(...))
        async with server.connect("/ws") as a, server.connect("/ws") as b: ...

It needs pytest-trio (async tests and fixtures).

What differs from a real socket: ``Handshake.peer_addr`` and ``local_addr``
are ``None`` (there is no address), and TLS is not involved. Handlers run in
the test's own thread and Trio run, so a test may inspect their state
directly between awaits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable
from types import TracebackType
from typing import Any

import h11
import trio
import trio.testing
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    TextMessage,
)
from wsproto.events import Request as WsRequest
from wsproto.extensions import PerMessageDeflate
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from ._core.http import Headers, HeadersLike, Response
from ._core.messages import CloseCode, Message, close_code
from ._errors import ConnectionClosed, Error, ErrorKind
from ._handler import FactoryLike
from ._settings import Settings
from ._websocket import WebSocket

__all__ = ["Client", "ConnectionClosed", "Server", "connect", "serve", "wskit_serve"]

_HOST = "localhost"
_READ = 65536


class Client:
    """The test's end of one in-memory WebSocket connection.

    Made by :meth:`Server.connect` or :func:`connect`; open when you get it.
    Methods are ``async`` and must be called from the test's Trio run.
    Pings from the server are answered automatically (unless the client was
    made with ``answer_pings=False``) and recorded in :attr:`pings`; so is
    the server's close frame (unless ``answer_close=False``).
    """

    def __init__(self, stream: trio.abc.Stream, *, answer_pings: bool = True,
                 answer_close: bool = True) -> None:
        self._stream = stream
        self._answer_pings = answer_pings
        self._answer_close = answer_close
        self._proto = WSConnection(ConnectionType.CLIENT)
        self._lock = trio.Lock()
        self._send_ch, self._recv_ch = trio.open_memory_channel[Message](math.inf)
        self._parts: list[str | bytes] = []
        self._pong_waiters: dict[bytes, trio.Event] = {}
        self._done = trio.Event()
        self._sent_close = False
        #: The server's ``101`` answer (its extra headers and subprotocol).
        self.response: Response = Response(101)
        #: Payloads of the pings the server sent, in order.
        self.pings: list[bytes] = []
        #: The close code the server sent (the echo of ours when we closed
        #: first); ``1006`` when the stream ended without a close frame;
        #: ``None`` while open.
        self.close_code: CloseCode | int | None = None
        #: The close reason that came with :attr:`close_code`.
        self.close_reason: str | None = None

    # -- public API ---------------------------------------------------------

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server accepted, if any."""
        return self.response.subprotocol

    @property
    def closed(self) -> bool:
        """Whether the connection is over (close handshake done or stream gone)."""
        return self._done.is_set()

    async def send(self, msg: Message | str | bytes | bytearray | memoryview) -> None:
        """Send a message: ``str`` → text, bytes-like → binary.

        Raises :class:`ConnectionClosed` when the connection is closing or closed.
        """
        message = msg if isinstance(msg, Message) else Message(msg)
        data = message.data
        event = TextMessage(data=data) if isinstance(data, str) else BytesMessage(data=data)
        await self._send(event)

    async def receive(self) -> Message:
        """The next message from the server; waits for it.

        Messages that arrived before the close are still returned; after
        them, raises :class:`ConnectionClosed`.
        """
        try:
            return await self._recv_ch.receive()
        except trio.EndOfChannel:
            raise self._closed_error() from None

    def receive_nowait(self) -> Message | None:
        """The next message if one has arrived, else ``None`` (never waits)."""
        try:
            return self._recv_ch.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            return None

    def __aiter__(self) -> Client:
        """``async for msg in client``: every message until the connection closes."""
        return self

    async def __anext__(self) -> Message:
        try:
            return await self._recv_ch.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    async def ping(self, data: bytes = b"") -> None:
        """Send a ping and wait for its pong."""
        got = self._pong_waiters.setdefault(bytes(data), trio.Event())
        await self._send(Ping(payload=bytes(data)))
        await got.wait()

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Start the closing handshake and wait until the connection is over.

        Returns at once if it is already closed. :attr:`close_code` then
        holds the server's answer.
        """
        if not self._done.is_set() and not self._sent_close:
            with contextlib.suppress(ConnectionClosed):
                await self._send(CloseConnection(code=code, reason=reason))
        await self._done.wait()

    async def wait_closed(self) -> tuple[CloseCode | int, str]:
        """Wait until the server closes the connection: ``(code, reason)``."""
        await self._done.wait()
        assert self.close_code is not None and self.close_reason is not None
        return self.close_code, self.close_reason

    async def abort(self) -> None:
        """Drop the connection without a closing handshake (the server sees 1006)."""
        await trio.aclose_forcefully(self._stream)
        await self._done.wait()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.close()
        else:
            await self.abort()

    def __repr__(self) -> str:
        state = "open" if self.close_code is None else f"closed {int(self.close_code)}"
        return f"<wskit.testing.Client {state}>"

    # -- internals ------------------------------------------------------------

    def _closed_error(self) -> ConnectionClosed:
        return ConnectionClosed(self.close_code if self.close_code is not None
                                else CloseCode.ABNORMAL, self.close_reason or "")

    async def _send(self, event: Event) -> None:
        async with self._lock:
            if self._done.is_set() or self._sent_close:
                raise self._closed_error()
            try:
                data = self._proto.send(event)
            except LocalProtocolError:
                raise self._closed_error() from None
            if isinstance(event, CloseConnection):
                self._sent_close = True
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raise self._closed_error() from None

    async def _handshake(self, path: str, headers: HeadersLike | None,
                         subprotocols: Iterable[str], origin: str | None,
                         compression: bool) -> list[Event]:
        """Open the connection; returns the events that came with the 101."""
        extra = [(k.encode("latin-1"), v.encode("latin-1"))
                 for k, v in Headers(headers).raw_items()]
        if origin is not None:
            extra.append((b"Origin", origin.encode("latin-1")))
        request = WsRequest(host=_HOST, target=path, extra_headers=extra,
                            subprotocols=list(subprotocols),
                            extensions=[PerMessageDeflate()] if compression else [])
        await self._stream.send_all(self._proto.send(request))
        rejected: RejectConnection | None = None
        body = b""
        while True:
            try:
                data = await self._stream.receive_some(_READ)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                await trio.aclose_forcefully(self._stream)
                if rejected is not None:
                    raise _rejection(path, rejected, body)
                raise Error(f"the server closed the connection to {path!r} during the "
                            "handshake", ErrorKind.IO)
            try:
                self._proto.receive_data(bytes(data))
                events = list(self._proto.events())
            except RemoteProtocolError as exc:
                await trio.aclose_forcefully(self._stream)
                raise Error(f"invalid handshake answer for {path!r}: {exc}",
                            ErrorKind.PROTOCOL) from exc
            for index, event in enumerate(events):
                if isinstance(event, AcceptConnection):
                    self.response = Response(
                        101,
                        headers=[(k.decode("latin-1"), v.decode("latin-1"))
                                 for k, v in event.extra_headers],
                        subprotocol=event.subprotocol,
                    )
                    return events[index + 1:]
                if isinstance(event, RejectConnection):
                    rejected = event
                    if not event.has_body:
                        await trio.aclose_forcefully(self._stream)
                        raise _rejection(path, event, b"")
                elif isinstance(event, RejectData):
                    body += event.data
                    if event.body_finished and rejected is not None:
                        await trio.aclose_forcefully(self._stream)
                        raise _rejection(path, rejected, body)

    async def _run(self, events: list[Event]) -> None:
        """The reader task: feeds wsproto until the end of the stream."""
        try:
            await self._handle(events)
            while self.close_code is None:
                try:
                    data = await self._stream.receive_some(_READ)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                try:
                    self._proto.receive_data(bytes(data) if data else None)
                    await self._handle(list(self._proto.events()))
                except RemoteProtocolError:
                    self.close_code, self.close_reason = CloseCode.ABNORMAL, ""
            # RFC 6455 7.1.1: the server closes the TCP connection first;
            # read to its end of stream, then close ours.
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                while await self._stream.receive_some(_READ):
                    pass
        finally:
            if self.close_code is None:
                self.close_code, self.close_reason = CloseCode.ABNORMAL, ""
            await trio.aclose_forcefully(self._stream)
            self._send_ch.close()
            self._done.set()
            for waiter in self._pong_waiters.values():
                waiter.set()

    async def _handle(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, (TextMessage, BytesMessage)):
                self._parts.append(event.data if isinstance(event.data, str)
                                   else bytes(event.data))
                if event.message_finished:
                    parts, self._parts = self._parts, []
                    if isinstance(parts[0], str):
                        joined = Message("".join(p for p in parts if isinstance(p, str)))
                    else:
                        joined = Message(b"".join(p for p in parts if isinstance(p, bytes)))
                    self._send_ch.send_nowait(joined)
            elif isinstance(event, Ping):
                self.pings.append(bytes(event.payload))
                if self._answer_pings:
                    with contextlib.suppress(ConnectionClosed):
                        await self._send(event.response())
            elif isinstance(event, Pong):
                waiter = self._pong_waiters.pop(bytes(event.payload), None)
                if waiter is not None:
                    waiter.set()
            elif isinstance(event, CloseConnection):
                if not self._sent_close and self._answer_close:
                    # The server closed first: echo its code (section 5.5.1).
                    with contextlib.suppress(ConnectionClosed):
                        await self._send(event.response())
                self.close_code = close_code(event.code)
                self.close_reason = event.reason or ""
                return


def _rejection(path: str, event: RejectConnection, body: bytes) -> Error:
    text = body.decode("utf-8", "replace").strip()
    shown = f": {text[:200]}" if text else ""
    return Error(f"handshake for {path!r} rejected with HTTP {event.status_code}{shown}",
                 ErrorKind.HTTP, status=event.status_code)


class _Connecting:
    """What :meth:`Server.connect` returns: ``await`` it or ``async with`` it."""

    def __init__(self, open_: Callable[[], Awaitable[Client]]) -> None:
        self._open = open_
        self._client: Client | None = None

    def __await__(self) -> Generator[Any, None, Client]:
        return self._open().__await__()

    async def __aenter__(self) -> Client:
        self._client = await self._open()
        return self._client

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._client is not None
        await self._client.__aexit__(exc_type, exc, tb)


class Server:
    """A :class:`wskit.WebSocket` serving ``factory`` to in-memory clients.

    Use as ``async with wskit.testing.serve(factory) as server:``. Leaving
    the block shuts the WebSocket down (clients still open get 1001) and
    waits until every connection is over. ``settings`` are used as given,
    except ``shutdown_on_interrupt``, which is always off.
    """

    def __init__(self, factory: FactoryLike, *, settings: Settings | None = None) -> None:
        settings = settings if settings is not None else Settings()
        #: The WebSocket under test: ``server.ws.broadcaster()``,
        #: ``server.ws.connections``, ``server.ws.shutdown()``.
        self.ws = WebSocket(factory, dataclasses.replace(settings,
                                                         shutdown_on_interrupt=False))

    async def __aenter__(self) -> Server:
        await self.ws.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None:
            self.ws.shutdown()
        return await self.ws.__aexit__(exc_type, exc, tb)

    def connect(
        self,
        path: str = "/",
        *,
        headers: HeadersLike | None = None,
        subprotocols: Iterable[str] = (),
        origin: str | None = None,
        compression: bool = True,
        answer_pings: bool = True,
        answer_close: bool = True,
        lockstep: bool = False,
    ) -> _Connecting:
        """Open a WebSocket connection to ``path``; ``await`` it or ``async with`` it.

        Returns once the handshake is done and every task has settled
        (``trio.testing.wait_all_tasks_blocked``), so the handler's
        ``on_open`` has run, up to its first real wait if it is ``async``.
        Raises :class:`wskit.Error` of kind ``HTTP`` (with
        ``status``) when the server rejects it. ``compression`` offers
        permessage-deflate; ``answer_pings=False`` leaves the server's pings
        unanswered (to test keepalive), ``answer_close=False`` its close frame
        (to test ``close_timeout``: the client then stays silent until the
        server drops the stream); ``lockstep=True`` uses
        ``trio.testing.lockstep_stream_pair``, with no buffering at all, so
        the server's sends wait for the client to read (to test backpressure).
        As ``async with``, the client is closed normally when the block ends.
        """

        async def open_() -> Client:
            pair = trio.testing.lockstep_stream_pair if lockstep else \
                trio.testing.memory_stream_pair
            client_stream, server_stream = pair()
            self.ws.spawn(self.ws.serve_stream, server_stream)
            client = Client(client_stream, answer_pings=answer_pings,
                            answer_close=answer_close)
            events = await client._handshake(path, headers, subprotocols, origin, compression)
            self.ws.spawn(client._run, events)
            # Let the server run on_open (and whatever it started) before the
            # test looks at the handler's state.
            await trio.testing.wait_all_tasks_blocked()
            return client

        return _Connecting(open_)

    async def request(
        self,
        path: str = "/",
        *,
        method: str = "GET",
        headers: HeadersLike | None = None,
        body: bytes | str = b"",
    ) -> Response:
        """Send one plain HTTP request (no upgrade); the server's :class:`Response`.

        For ``on_request`` handlers that serve pages, health checks or
        rejections; a WebSocket-only endpoint answers 426.
        """
        client_stream, server_stream = trio.testing.memory_stream_pair()
        self.ws.spawn(self.ws.serve_stream, server_stream)
        payload = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        hdrs = [("Host", _HOST), *Headers(headers).raw_items()]
        if payload:
            hdrs.append(("Content-Length", str(len(payload))))
        conn = h11.Connection(h11.CLIENT)
        try:
            out = conn.send(h11.Request(method=method, target=path, headers=hdrs)) or b""
            if payload:
                out += conn.send(h11.Data(data=payload)) or b""
            out += conn.send(h11.EndOfMessage()) or b""
            await client_stream.send_all(out)
            status, reason, received, content = 0, "", Headers(), b""
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    try:
                        conn.receive_data(bytes(await client_stream.receive_some(_READ)))
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        conn.receive_data(b"")
                elif isinstance(event, h11.Response):
                    status, reason = event.status_code, event.reason.decode("latin-1")
                    received = Headers([(k.decode("latin-1"), v.decode("latin-1"))
                                        for k, v in event.headers])
                elif isinstance(event, h11.Data):
                    content += bytes(event.data)
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    break
        except h11.RemoteProtocolError as exc:
            raise Error(f"invalid HTTP answer for {path!r}: {exc}", ErrorKind.PROTOCOL) from exc
        finally:
            await client_stream.aclose()
        return Response(status, content, received, reason=reason)

    def shutdown(self) -> None:
        """Shut the WebSocket down now (every open connection gets 1001)."""
        self.ws.shutdown()

    @property
    def connections(self) -> int:
        """Open connections on the server side."""
        return self.ws.connections


def serve(factory: FactoryLike, *, settings: Settings | None = None) -> Server:
    """A :class:`Server` for ``factory``; use as ``async with serve(f) as server:``."""
    return Server(factory, settings=settings)


@contextlib.asynccontextmanager
async def connect(
    factory: FactoryLike,
    path: str = "/",
    *,
    settings: Settings | None = None,
    headers: HeadersLike | None = None,
    subprotocols: Iterable[str] = (),
    origin: str | None = None,
    compression: bool = True,
    answer_pings: bool = True,
    answer_close: bool = True,
    lockstep: bool = False,
) -> AsyncIterator[Client]:
    """One client connected to ``factory`` served alone, without sockets.

    ``async with wskit.testing.connect(MyHandler, path="/x") as client:``.
    The options are those of :meth:`Server.connect`. Leaving the block
    closes the client normally (if still open) and shuts the server down.
    """
    async with Server(factory, settings=settings) as server:
        async with server.connect(path, headers=headers, subprotocols=subprotocols,
                                  origin=origin, compression=compression,
                                  answer_pings=answer_pings, answer_close=answer_close,
                                  lockstep=lockstep) as client:
            yield client


# ----------------------------------------------------------------------
# pytest plugin


async def _hosted(factory: FactoryLike, settings: Settings | None, stop: trio.Event,
                  done: trio.Event, task_status: trio.TaskStatus[Server]) -> None:
    try:
        async with Server(factory, settings=settings) as server:
            task_status.started(server)
            await stop.wait()
    finally:
        done.set()


try:
    import pytest
except ImportError:  # pragma: no cover - wskit.testing works without pytest
    pass
else:

    @pytest.fixture
    async def wskit_serve(
        nursery: trio.Nursery,
    ) -> AsyncIterator[Callable[..., Awaitable[Server]]]:
        """``server = await wskit_serve(factory, settings=None)``: a :class:`Server`
        for this test, shut down (gracefully, 1001 to open clients) after it.

        Needs pytest-trio; combine with its ``autojump_clock`` fixture for timers.
        """
        running: list[tuple[trio.Event, trio.Event]] = []

        async def start(factory: FactoryLike, *, settings: Settings | None = None) -> Server:
            stop, done = trio.Event(), trio.Event()
            running.append((stop, done))
            server: Server = await nursery.start(_hosted, factory, settings, stop, done)
            return server

        yield start
        # Graceful: wait for the closing handshakes before pytest-trio
        # cancels the nursery (each is bounded by the server's close_timeout).
        for stop, _ in running:
            stop.set()
        for _, done in running:
            await done.wait()
