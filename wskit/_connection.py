"""The Trio driver of one connection: pumps bytes, runs timers, calls hooks.

One task per connection reads, feeds :class:`ConnectionCore`, and dispatches
the resulting events to the handler one at a time. On plain TCP it reads and
writes the non-blocking socket itself (``os.read``/``os.write`` on its file
descriptor): one trip through the scheduler per read, none per write. The
replies to one read leave in one write at the end of it; a writer task runs
only while the kernel's buffer is full (and for TLS, whose ``SSLStream`` must
be awaited). Timers, keepalive and the writer run in the WebSocket's nursery
under cancel scopes that this connection cancels when it ends.

Hook dispatch is serialized: a sync hook runs to completion without yielding
to Trio, and while an ``async`` hook is awaited every other dispatch (timer,
shutdown, next message) waits its turn. Nothing a hook raises escapes: it is
logged, given to ``on_error`` and closes this connection with 1011.

One cancel scope spans the connection: it carries the handshake, close and
drain deadlines, and its expiry or cancellation (``abort()``, a failed write,
a keepalive timeout) ends the connection at once, with 1006 unless the closing
handshake had completed. ``_end()`` always runs last: it reports data that
could not be sent, closes the stream, and calls ``on_close`` exactly once.

Closing (RFC 6455 section 7.1.1): after the closing handshake, or after
failing the connection, we flush our last frames, half-close the TCP stream
and read until the peer's end of stream, so that the kernel never resets the
connection while a close frame or an HTTP error response is still in
flight. Every wait is bounded by ``close_timeout``.
"""

from __future__ import annotations

import contextlib
import enum
import inspect
import itertools
import logging
import math
import os
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import trio

from ._core.handshake import ClientHandshake, ServerHandshake, make_extensions, render_response
from ._core.http import Handshake, Request, Response
from ._core.messages import CloseCode, Message
from ._core.protocol import (
    CloseReceived,
    ConnectionCore,
    CoreEvent,
    CoreState,
    Failed,
    Lost,
    Ping,
    Pong,
)
from ._errors import Error, ErrorKind
from ._handler import Hooks
from ._sender import Sender, Timeout

if TYPE_CHECKING:
    from ._websocket import WebSocket

__all__ = ["ConnState", "Connection", "Opening"]

_ids = itertools.count(1)
_MAX_IOV = 512  # buffers per writev() (Linux allows 1024)
_MAX_READ = 2**18  # the largest read while a large message streams in (measured best)
_SOCKET_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError)


class ConnState(enum.Enum):
    """A connection's life as the driver sees it."""

    CONNECTING = "connecting"
    OPEN = "open"
    #: Our close frame is out (or the connection failed); waiting for the end.
    CLOSING = "closing"
    CLOSED = "closed"


class Opening:
    """How ``WebSocket.connect()`` learns that its connection opened or failed."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: Error | None = None

    def finish(self, error: Error | None = None) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()


# Cross-thread send accounting is rare and brief: one lock for all connections
# saves a lock object per connection.
_thread_lock = threading.Lock()


class Connection:
    """One WebSocket connection, server or client side."""

    # Slots: thousands of idle connections are the common case; a dict per
    # connection would cost more than the rest of its Python state.
    __slots__ = (
        "_backlog",
        "_backlog_size",
        "_batching",
        "_busy",
        "_close_code",
        "_close_reason",
        "_early",
        "_early_bytes",
        "_early_close",
        "_early_timers",
        "_fd",
        "_has_slot",
        "_in_flight",
        "_live",
        "_lost_why",
        "_lot",
        "_opened",
        "_pong_waiter",
        "_read_size",
        "_scope",
        "_stream_closed",
        "_tasks",
        "_thread_pending",
        "_write_failed",
        "_writing",
        "client",
        "core",
        "handshake",
        "hooks",
        "id",
        "log",
        "sender",
        "settings",
        "state",
        "stream",
        "ws",
    )

    def __init__(self, ws: WebSocket, *, client: bool) -> None:
        self.id = next(_ids)
        self.ws = ws
        self.settings = ws.settings
        self.client = client
        self.log = logging.getLogger("wskit.client" if client else "wskit.server")
        self.sender = Sender(ws, self)
        self.state = ConnState.CONNECTING
        self.hooks: Hooks | None = None
        self.core: ConnectionCore | None = None
        self.stream: trio.abc.Stream | None = None
        self.handshake: Handshake | None = None
        # Background tasks (writer, keepalive, timers) run in the WebSocket's
        # nursery, each under its own scope, cancelled when the connection
        # ends: no nursery per connection (~6% of a handshake, ~0.4 KB idle).
        self._tasks: set[trio.CancelScope] | None = None
        self._live = False  # open, and background tasks may start
        # The whole connection: its expiry or cancellation ends it at once,
        # abnormally (1006) unless the closing handshake was complete. It
        # carries the handshake, close and drain deadlines, and is cancelled
        # by abort(), a failed write and a keepalive timeout. One scope for
        # all: each live scope costs ~0.7 KB per idle connection.
        self._scope = trio.CancelScope()
        self._early: list[str | bytes] = []
        self._early_bytes = 0
        self._early_close: tuple[int, str] | None = None
        self._fd: int | None = None  # plain TCP: read and written directly
        self._read_size = ws.settings.read_size
        self._backlog: list[Any] = []  # taken from the core, not yet written
        self._backlog_size = 0
        self._in_flight = 0  # TLS: bytes inside send_all()
        self._writing = False  # a writer task waits for room in the kernel
        self._batching = False  # replies wait for the end of the read batch
        self._thread_pending = 0
        # Tasks waiting for something to change here: flush() for room in the
        # queue, _finish() for the writer, dispatches for an async hook to end.
        # One lot for all (each waiter re-checks its own condition), made on
        # first use: most connections never wait.
        self._lot: trio.lowlevel.ParkingLot | None = None
        self._busy = False
        self._write_failed = False
        self._lost_why = ""
        self._pong_waiter: tuple[bytes, trio.Event] | None = None
        self._close_code: CloseCode | int = CloseCode.ABNORMAL
        self._close_reason = ""
        self._has_slot = False
        self._opened = False
        self._stream_closed = False
        self._early_timers: list[Timeout] = []

    def __repr__(self) -> str:
        side = "client" if self.client else "server"
        return f"<wskit connection {self.id} ({side}, {self.state.value})>"

    # ------------------------------------------------------------------
    # Server side

    async def serve(self, stream: trio.abc.Stream) -> None:
        """Run an accepted connection to its end. Never raises."""
        self.stream = stream
        self._tune_socket(stream)
        self._fd = self._raw_fd()
        try:
            with self._scope:
                if await self._server_handshake():
                    await self._run_open()
            if self._scope.cancelled_caught and not self._opened and not self._lost_why:
                self.log.info("connection %d: handshake from %s timed out after %ss",
                              self.id, self._peer(), self.settings.handshake_timeout)
        except Exception:
            self.log.exception("connection %d: internal error in wskit", self.id)
        finally:
            await self._end()

    async def _server_handshake(self) -> bool:
        stream = self.stream
        assert stream is not None
        settings = self.settings
        hs = ServerHandshake(max_header_size=settings.max_header_size)
        request: Request | None = None
        if settings.handshake_timeout is not None:
            # The connection's own scope carries the deadline (a scope less
            # per connection); serve() says so when it expires.
            self._scope.deadline = trio.current_time() + settings.handshake_timeout
        try:
            if isinstance(stream, trio.SSLStream):
                await stream.do_handshake()
            # The first read right away: the request usually came with the
            # connection, and accepting it was a checkpoint already.
            request = hs.receive_data(await self._read(yield_first=False))
            while request is None:
                request = hs.receive_data(await self._read())
        except Error as err:
            # A peer that leaves without a request (a TCP health check, a
            # port probe) is routine: DEBUG. A malformed request is INFO.
            level = logging.DEBUG if err.status is None else logging.INFO
            self.log.log(level, "connection %d: no valid request from %s: %s",
                         self.id, self._peer(), err)
            if err.status is not None:
                await self._respond(_error_response(err))
            return False
        except _SOCKET_ERRORS as exc:
            self.log.debug("connection %d: lost during handshake: %s", self.id, _why(exc))
            return False
        self._scope.deadline = math.inf

        ws = self.ws
        if ws.closing:
            await self._respond(Response(503, "server is shutting down\n"))
            return False
        allowed = settings.allowed_origins
        if allowed is not None and (request.origin or "") not in allowed:
            self.log.info("connection %d: origin %r refused", self.id, request.origin)
            await self._respond(Response(403, "origin not allowed\n"))
            return False
        if request.is_websocket:
            try:
                ServerHandshake.check_upgrade(request)
            except Error as err:
                self.log.info("connection %d: bad upgrade from %s: %s",
                              self.id, self._peer(), err)
                await self._respond(_error_response(err))
                return False
            limit = settings.max_connections
            if limit is not None and ws.slots >= limit:
                self.log.warning("connection %d: refused, %d connections open (max_connections)",
                                 self.id, ws.slots)
                await self._respond(Response(503, "too many connections, try again later\n",
                                             [("Retry-After", "1")]))
                return False
            # Taken now, before any await, so concurrent handshakes can't overshoot.
            ws.slots += 1
            self._has_slot = True

        try:
            self.hooks = Hooks(ws.factory.server_connected(self.sender))
        except Exception as exc:
            self.log.exception("connection %d: the factory raised", self.id)
            self._log_only(exc)
            await self._respond(Response(500, "internal server error\n"))
            return False

        response: Response | None = None
        if self.hooks.on_request is not None:
            try:
                response = await _resolve(self.hooks.on_request(request))
            except Exception as exc:
                await self._handler_failed("on_request", exc)
                await self._respond(Response(500, "internal server error\n"))
                return False
            if response is not None and not isinstance(response, Response):
                await self._handler_failed(
                    "on_request",
                    TypeError(f"on_request returned {response!r}, not a Response or None"),
                )
                await self._respond(Response(500, "internal server error\n"))
                return False
        if response is None:
            response = request.accept() if request.is_websocket else Response(
                426, "this endpoint speaks WebSocket only\n",
                [("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")],
            )
        elif response.status == 101 and not request.is_websocket:
            response = Response(426, "not a WebSocket upgrade request\n",
                                [("Upgrade", "websocket")])
        if response.status != 101:
            await self._respond(response)
            return False

        head, extensions = ServerHandshake.accept(
            request, response, self._extensions()
        )
        self.core = ConnectionCore(
            client=False,
            extensions=extensions,
            max_message_size=settings.max_message_size,
            trailing_data=hs.trailing_data,
        )
        self.handshake = self._make_handshake(request, response, extensions)
        try:
            await self._send_raw(head)
        except (OSError, *_SOCKET_ERRORS):
            return False
        return True

    async def _send_raw(self, data: bytes) -> None:
        """Write HTTP bytes (the handshake's answer), ahead of any frame.

        Raises OSError or trio's stream errors if the peer is gone."""
        fd = self._fd
        if fd is not None:
            try:
                sent = os.write(fd, data)
            except BlockingIOError:
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        assert self.stream is not None
        await self.stream.send_all(data)

    async def _respond(self, response: Response) -> None:
        """Answer with a plain HTTP response, then close gracefully."""
        stream = self.stream
        assert stream is not None
        self.log.debug("connection %d: HTTP %d", self.id, response.status)
        try:
            with trio.move_on_after(_or_inf(self.settings.close_timeout)):
                await self._send_raw(render_response(response))
        except (OSError, *_SOCKET_ERRORS):
            return
        await self._close_stream()

    # ------------------------------------------------------------------
    # Client side

    async def run_client(self, url: str, ssl_context: ssl.SSLContext | None,
                         opening: Opening) -> None:
        """Connect, handshake and run to the end. Never raises; errors go to
        ``opening`` (for ``WebSocket.connect``) and to the handler."""
        try:
            with self._scope:
                error: Error | None = None
                try:
                    await self._client_handshake(url, ssl_context)
                except Error as err:
                    error = err
                if error is not None:
                    self.log.info("connection %d: could not open %s: %s", self.id, url, error)
                    if self.hooks is not None and self.hooks.on_error is not None:
                        await self._call_on_error(error)
                    opening.finish(error)
                else:
                    await self._run_open(opening)
        except Exception:
            self.log.exception("connection %d: internal error in wskit", self.id)
        finally:
            opening.finish(Error(f"connection to {url} was cancelled", ErrorKind.IO,
                                 connection_id=self.id))
            await self._end()

    async def _client_handshake(self, url: str, ssl_context: ssl.SSLContext | None) -> None:
        settings = self.settings
        secure, host, port, host_header = _parse_url(url)
        try:
            self.hooks = Hooks(self.ws.factory.client_connected(self.sender))
        except Exception as exc:
            raise self._wrap("the factory", exc) from exc
        request = Request.for_url(url)
        if self.hooks.build_request is not None:
            try:
                request = await _resolve(self.hooks.build_request(url))
            except Exception as exc:
                raise self._wrap("build_request", exc) from exc
            if not isinstance(request, Request):
                raise Error(f"build_request returned {request!r}, not a wskit.Request",
                            ErrorKind.CUSTOM, connection_id=self.id)
        extensions = self._extensions()
        hs = ClientHandshake(request, host=host_header, extensions=extensions,
                             max_header_size=settings.max_header_size)
        timeout = _or_inf(settings.handshake_timeout)
        response: Response | None = None
        with trio.move_on_after(timeout) as scope:
            try:
                stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
            except OSError as exc:
                raise Error(f"could not connect to {host}:{port}: {_os_reason(exc)}",
                            ErrorKind.IO, connection_id=self.id) from exc
            self.stream = stream
            self._tune_socket(stream)
            try:
                if secure:
                    context = ssl_context or ssl.create_default_context()
                    stream = trio.SSLStream(stream, context, server_hostname=host,
                                            https_compatible=True)
                    self.stream = stream
                    try:
                        await stream.do_handshake()
                    except trio.BrokenResourceError as exc:
                        raise Error(f"TLS handshake with {host}:{port} failed: "
                                    f"{exc.__cause__ or exc}",
                                    ErrorKind.SSL, connection_id=self.id) from exc
                await stream.send_all(hs.initiate())
                while response is None:
                    response = hs.receive_data(await stream.receive_some(settings.read_size))
            except _SOCKET_ERRORS as exc:
                raise Error(f"connection to {host}:{port} lost during the handshake: "
                            f"{_why(exc)}", ErrorKind.IO, connection_id=self.id) from exc
            except Error as err:
                raise err.for_connection(self.id) from err.__cause__
        if scope.cancelled_caught or response is None:
            raise Error(f"opening handshake with {url} timed out after {timeout}s",
                        ErrorKind.IO, connection_id=self.id)
        if self.hooks.on_response is not None:
            try:
                await _resolve(self.hooks.on_response(response))
            except Exception as exc:
                raise self._wrap("on_response", exc) from exc
        self.core = ConnectionCore(
            client=True,
            extensions=hs.enabled_extensions,
            max_message_size=settings.max_message_size,
            trailing_data=hs.trailing_data,
        )
        self.handshake = self._make_handshake(request, response, hs.enabled_extensions)

    # ------------------------------------------------------------------
    # Open connection

    async def _run_open(self, opening: Opening | None = None) -> None:
        self._live = True
        try:
            await self._run_open_in(opening)
        finally:
            self._live = False
            tasks, self._tasks = self._tasks, None
            for scope in tasks or ():
                scope.cancel()  # timers, keepalive and writer end with us

    def _spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``fn(*args)`` in the background until it returns or this
        connection ends."""
        scope = trio.CancelScope()
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(scope)
        self.ws._require_nursery().start_soon(self._background, scope, fn, args)

    async def _background(self, scope: trio.CancelScope,
                          fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        if scope.cancel_called:
            return  # ended before we started: the fd may be another socket's now
        try:
            with scope:
                await fn(*args)
        except Exception:
            self.log.exception("connection %d: internal error in wskit", self.id)
            self.abort()
        finally:
            if self._tasks is not None:
                self._tasks.discard(scope)

    async def _run_open_in(self, opening: Opening | None) -> None:
        core, hooks = self.core, self.hooks
        assert core is not None and hooks is not None
        self.state = ConnState.OPEN
        self.ws._opened(self)
        self._opened = True
        self._fd = self._raw_fd()
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("connection %d: open (%s)", self.id, self._peer())
        for message in self._early:
            core.send(message)
        self._early.clear()
        self._early_bytes = 0
        self._output()
        for timer in self._early_timers:  # set by the factory, during the handshake
            if timer.scope is not None:
                self._spawn(self._run_timer, timer, timer.scope)
        self._early_timers.clear()
        if self.settings.ping_interval is not None:
            self._spawn(self._keepalive)
        await self._dispatch(hooks.on_open, self._take_handshake())
        if opening is not None:
            opening.finish()
        if self._early_close is not None:
            self.close(*self._early_close)
        await self._read_loop()
        await self._finish()

    # ------------------------------------------------------------------
    # Reading

    def _take_handshake(self) -> Handshake | None:
        # Not kept by the connection (nor in a suspended frame's locals): its
        # request headers are ~2 KB per idle connection. The handler keeps
        # it if it wants it.
        handshake, self.handshake = self.handshake, None
        return handshake

    async def _read_loop(self) -> None:
        core = self.core
        assert core is not None
        events = core.pending_events()
        while True:
            if events:
                await self._handle_batch(events)
            elif core.has_output:
                self._write_now()
            if core.state is CoreState.CLOSED or core.state is CoreState.FAILED:
                return
            events = core.receive_data(await self._read())

    async def _read(self, *, yield_first: bool = True) -> bytes:
        """The next bytes from the peer; ``b""`` at the end of the stream.

        ``yield_first=False`` skips the checkpoint before trying the read:
        only for a read that is not in a loop (a peer sending without pause
        must not keep this task from yielding)."""
        size = self._read_size
        fd = self._fd
        if fd is None:  # TLS (or any other stream): its own receive_some
            assert self.stream is not None
            try:
                return bytes(await self.stream.receive_some(size))
            except _SOCKET_ERRORS as exc:
                self._lost_why = _why(exc)
                return b""
        # Plain TCP: the non-blocking socket is read directly, after one
        # checkpoint. Yielding *before* the read (our reply just went out)
        # lets the other connections run while the peer answers, so the read
        # mostly finds data and skips the epoll registration that a failed
        # read costs; trio's recv() yields after the read, and also waits in
        # epoll after it, two trips. Measured: +20-30% echo throughput.
        if yield_first:
            await trio.lowlevel.checkpoint()
        try:
            data = os.read(fd, size)
        except BlockingIOError:
            data = None
        except OSError as exc:
            self._lost_why = f"read failed: {exc}"
            return b""
        while data is None:
            try:
                await trio.lowlevel.wait_readable(fd)
                data = os.read(fd, size)
            except BlockingIOError:
                continue  # a spurious wake-up
            except (OSError, trio.ClosedResourceError) as exc:
                self._lost_why = f"read failed: {exc}"
                return b""
        # A read that filled the buffer means more is waiting (a large
        # message): read more at once next time, up to 256 KiB, since wsproto
        # parses big chunks much faster; back to read_size when it drains.
        if len(data) == size:
            self._read_size = min(size * 4, _MAX_READ)
        elif size != self.settings.read_size:
            self._read_size = self.settings.read_size
        return data

    async def _handle_batch(self, events: list[CoreEvent]) -> None:
        """Dispatch what one read brought; the replies leave in one write after it."""
        hooks = self.hooks
        assert hooks is not None
        on_message = hooks.on_message
        self._batching = True
        try:
            for event in events:
                if event.__class__ is not Message:
                    await self._unbatched(self._handle(event))
                elif on_message is not None and self.state is ConnState.OPEN:
                    # The hot path, inline: no coroutine per message for a
                    # sync hook.
                    if self._busy:
                        await self._unbatched(self._wait_turn())
                    try:
                        result = on_message(event)
                    except Exception as exc:
                        await self._unbatched(self._handler_failed(_name(on_message), exc))
                        continue
                    if result is not None and inspect.isawaitable(result):
                        await self._unbatched(self._await_hook(_name(on_message), result))
        finally:
            self._batching = False
        self._write_now()

    async def _unbatched(self, awaitable: Awaitable[None]) -> None:
        """Await outside the batch: what is queued goes out now, and sends made
        meanwhile (by an async hook, a timer) are written as they happen."""
        self._batching = False
        self._write_now()
        try:
            await awaitable
        finally:
            self._batching = True

    async def _handle(self, event: CoreEvent) -> None:
        hooks, core = self.hooks, self.core
        assert hooks is not None and core is not None
        # Messages never come here: _handle_batch dispatches them inline.
        if isinstance(event, Pong):
            waiter = self._pong_waiter
            if waiter is not None and waiter[0] == event.data:
                waiter[1].set()
            await self._dispatch(hooks.on_pong, event.data)
        elif isinstance(event, Ping):
            self._output()  # the core queued the pong
            await self._dispatch(hooks.on_ping, event.data)
        elif isinstance(event, CloseReceived):
            core.answer_close()
            self._close_code, self._close_reason = event.code, event.reason
            self.log.debug("connection %d: close %s %r", self.id, event.code, event.reason)
        elif isinstance(event, Failed):
            core.answer_close()
            self._close_code, self._close_reason = event.code, event.reason
            self.state = ConnState.CLOSING
            error = event.error.for_connection(self.id)
            self.log.warning("connection %d: %s", self.id, error)
            await self._call_on_error(error)
        elif isinstance(event, Lost):
            self._close_code, self._close_reason = CloseCode.ABNORMAL, ""
            if not self._lost_why:
                self._lost_why = "end of stream without a close frame"

    # ------------------------------------------------------------------
    # Writing: synchronous while the kernel takes the bytes; a writer task
    # only while its buffer is full (or for TLS, whose stream must be awaited).

    def _output(self) -> None:
        """Frames were queued in the core: write them now, or at the end of the
        batch being dispatched (one write for all the replies to one read)."""
        if not self._batching:
            self._write_now()

    def write_pending(self) -> None:
        """Hand what is queued to the kernel now, even mid-batch (for a caller
        that must judge the real backlog, like a room's slow-client check)."""
        self._write_now()

    def _write_now(self) -> None:
        if self._writing:
            return  # the writer task takes what is queued, in order
        core = self.core
        assert core is not None
        fd = self._fd
        if fd is None:
            if core.has_output:
                self._start_writer()
            return
        size = core.output_size
        buffers = core.take_buffers()
        if buffers:
            self._writev(fd, buffers, size)
            if self._backlog:
                self._start_writer()

    def _writev(self, fd: int, buffers: list[Any], size: int) -> None:
        """Write ``buffers`` (``size`` bytes) with one system call; keep what
        the kernel did not take (no copy: memoryviews of the same buffers) as
        the backlog."""
        try:
            if len(buffers) == 1:  # the common case: a plain write() is cheaper
                sent = os.write(fd, buffers[0])
            else:
                if len(buffers) > _MAX_IOV:
                    buffers = [b"".join(buffers)]
                sent = os.writev(fd, buffers)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._backlog, self._backlog_size = buffers, size
            self._write_failed_now(exc)
            return
        if sent == size:
            if self._backlog:
                self._backlog, self._backlog_size = [], 0
            return
        rest: list[Any] = []
        size = 0
        for buffer in buffers:
            length = len(buffer)
            if sent >= length:
                sent -= length
                continue
            if sent:
                buffer, length, sent = memoryview(buffer)[sent:], length - sent, 0
            rest.append(buffer)
            size += length
        self._backlog, self._backlog_size = rest, size

    def _start_writer(self) -> None:
        if not self._writing and self._live:
            self._writing = True
            self._spawn(self._writer)

    async def _writer(self) -> None:
        core, stream, fd = self.core, self.stream, self._fd
        assert core is not None and stream is not None
        try:
            while True:
                if fd is not None:
                    if not self._backlog:
                        size = core.output_size
                        buffers = core.take_buffers()
                        if not buffers:
                            return
                        self._backlog, self._backlog_size = buffers, size
                    await trio.lowlevel.wait_writable(fd)
                    self._writev(fd, self._backlog, self._backlog_size)
                    if self._write_failed:
                        return
                else:
                    data = core.take_output()
                    if not data:
                        return
                    self._in_flight = len(data)
                    await stream.send_all(data)
                    self._in_flight = 0
                self._wake()
        except (OSError, *_SOCKET_ERRORS) as exc:
            self._write_failed_now(exc)
        finally:
            self._writing = False
            self._wake()

    def _write_failed_now(self, exc: BaseException) -> None:
        self._write_failed = True
        if not self._lost_why:
            self._lost_why = f"write failed: {_why(exc)}"
        self._scope.cancel()

    async def _keepalive(self) -> None:
        interval = self.settings.ping_interval
        assert interval is not None
        timeout = _or_inf(self.settings.ping_timeout)
        while True:
            await trio.sleep(interval)
            if self.state is not ConnState.OPEN or self.core is None:
                return
            payload = os.urandom(4)
            got_pong = trio.Event()
            self._pong_waiter = (payload, got_pong)
            self.core.ping(payload)
            self._output()
            with trio.move_on_after(timeout):
                await got_pong.wait()
            self._pong_waiter = None
            if not got_pong.is_set():
                if self.state is not ConnState.OPEN:
                    return
                self._lost_why = f"no pong within ping_timeout={self.settings.ping_timeout}s"
                self.log.info("connection %d: %s", self.id, self._lost_why)
                self.close(CloseCode.ERROR, "keepalive ping timeout")
                # The close frame leaves at once on plain TCP; a TLS (or
                # test) stream gets a moment to send it, then we hang up.
                with trio.move_on_after(1):
                    while self._writing:
                        await self._park()
                self._scope.cancel()
                return

    async def _finish(self) -> None:
        """After the read loop: last frames out, half-close, drain, close."""
        stream = self.stream
        assert stream is not None
        self.state = ConnState.CLOSED
        self._release_slot()
        if not self._write_failed:
            self._write_now()
            if self._writing:
                with trio.move_on_after(_or_inf(self.settings.close_timeout)):
                    while self._writing:
                        await self._park()
        if not self._lost_why:  # a lost connection is handled by _end()
            await self._close_stream()

    async def _close_now(self) -> None:
        """Close the stream at once (no close_notify, no waiting)."""
        if self._stream_closed or self.stream is None:
            return
        self._stream_closed = True
        stream = self.stream
        if isinstance(stream, trio.SocketStream):
            stream.socket.close()  # synchronous: no cancel scope needed
        else:
            await trio.aclose_forcefully(stream)

    async def _close_stream(self) -> None:
        """Graceful TCP close: half-close, read to the peer's end, close."""
        stream = self.stream
        if stream is None or self._stream_closed:
            return
        if isinstance(stream, trio.SocketStream) and self._fd is not None:
            # Plain TCP, the common case, without the stream layer's scopes.
            with contextlib.suppress(OSError):
                stream.socket.shutdown(socket.SHUT_WR)
            # Bounded by the connection's own scope, the last thing in it: if
            # the peer never ends its stream, the scope ends the connection.
            if self.settings.close_timeout is not None:
                self._scope.deadline = min(self._scope.deadline,
                                           trio.current_time() + self.settings.close_timeout)
            while await self._read():
                pass
            await self._close_now()
            return
        half_close = isinstance(stream, trio.abc.HalfCloseableStream)
        with trio.move_on_after(_or_inf(self.settings.close_timeout)) as scope:
            try:
                if half_close:
                    await stream.send_eof()  # type: ignore[attr-defined]
                # RFC 6455 7.1.1: the server closes the TCP connection first,
                # so a client waits for it. TLS can't half-close: a TLS server
                # closes at once (close_notify) rather than wait for the client.
                if half_close or self.client:
                    while await stream.receive_some(self.settings.read_size):
                        pass
            except (*_SOCKET_ERRORS, trio.BusyResourceError):
                pass
        self._stream_closed = True
        if scope.cancelled_caught:
            await trio.aclose_forcefully(stream)
        else:
            with trio.move_on_after(1) as close_scope:
                with contextlib.suppress(*_SOCKET_ERRORS):
                    await stream.aclose()
            if close_scope.cancelled_caught:
                await trio.aclose_forcefully(stream)

    async def _end(self) -> None:
        """Runs once, last, whatever happened: release everything, tell the factory."""
        self._release_slot()
        self.state = ConnState.CLOSED
        self._wake()
        self._early_timers.clear()
        self.ws._closed(self)
        core, hooks = self.core, self.hooks
        if self._scope.cancelled_caught and self._opened and core is not None and (
            core.state is not CoreState.CLOSED and core.state is not CoreState.FAILED
        ):
            # Cut short before the closing handshake completed: 1006.
            if not self._lost_why:
                self._lost_why = (f"no close frame within close_timeout="
                                  f"{self.settings.close_timeout}s")
            self._close_code, self._close_reason = CloseCode.ABNORMAL, ""
        if self._lost_why and self._opened:
            self.log.info("connection %d: lost (%s)", self.id, self._lost_why)
            if not self._write_failed:
                self._write_now()  # a last close frame, if the kernel takes it
        unsent = self.queued_bytes if self._lost_why and self._opened else 0
        await self._close_now()
        lost = self.ws.factory.connection_lost
        if self._opened and hooks is not None:
            self.log.debug("connection %d: closed %s %r", self.id, self._close_code,
                           self._close_reason)
            on_error, on_close = hooks.on_error if unsent else None, hooks.on_close
            if self._busy or _is_async(on_close) or _is_async(on_error):
                # Shielded: on_close runs exactly once per opened connection,
                # even when a hard shutdown cancelled everything around it.
                deadline = trio.current_time() + _or_inf(self.settings.close_timeout)
                with trio.CancelScope(shield=True, deadline=deadline):
                    await self._report_end(unsent)
            else:  # sync hooks can't be interrupted: no scope needed
                await self._report_end(unsent)
        if hooks is not None and lost is not None:
            try:
                lost(hooks.handler)
            except Exception:
                self.log.exception("connection %d: Factory.connection_lost raised", self.id)

    async def _report_end(self, unsent: int) -> None:
        hooks = self.hooks
        assert hooks is not None
        if unsent:
            await self._call_on_error(Error(
                f"connection {self.id} closed with {unsent} bytes not sent "
                f"({self._lost_why})", ErrorKind.QUEUE, connection_id=self.id))
        await self._dispatch(hooks.on_close, self._close_code, self._close_reason)

    def _release_slot(self) -> None:
        if self._has_slot:
            self._has_slot = False
            self.ws.slots -= 1

    # ------------------------------------------------------------------
    # Hook dispatch

    async def _dispatch(self, fn: Callable[..., Any] | None, *args: Any) -> None:
        """Call one hook, after any ``async`` hook still running."""
        if fn is None:
            return
        if self._busy:
            await self._wait_turn()
        try:
            result = fn(*args)
        except Exception as exc:
            await self._handler_failed(_name(fn), exc)
            return
        if result is not None and inspect.isawaitable(result):
            await self._await_hook(_name(fn), result)

    async def _park(self) -> None:
        lot = self._lot
        if lot is None:
            lot = self._lot = trio.lowlevel.ParkingLot()
        await lot.park()

    def _wake(self) -> None:
        if self._lot is not None:
            self._lot.unpark_all()

    async def _wait_turn(self) -> None:
        while self._busy:
            await self._park()

    async def _await_hook(self, name: str, awaitable: Awaitable[Any]) -> None:
        """Await an ``async`` hook; every other dispatch waits until it is done."""
        self._busy = True
        failure: Exception | None = None
        try:
            await awaitable
        except Exception as exc:
            failure = exc
        finally:
            self._busy = False
            self._wake()
        if failure is not None:
            await self._handler_failed(name, failure)

    async def _handler_failed(self, name: str, exc: Exception) -> None:
        self.log.error("connection %d: %s raised %s: %s", self.id, name,
                       type(exc).__name__, exc, exc_info=exc)
        error = self._wrap(name, exc)
        if name != "on_error":
            await self._call_on_error(error, log=False)
        if self.state is ConnState.OPEN:
            self.close(CloseCode.ERROR, "handler error")
        elif self.state is ConnState.CONNECTING and self._early_close is None:
            self._early_close = (CloseCode.ERROR, "handler error")

    def _wrap(self, name: str, exc: Exception) -> Error:
        error = Error(f"{name} raised {type(exc).__name__}: {exc}", ErrorKind.CUSTOM,
                      connection_id=self.id)
        error.__cause__ = exc
        return error

    async def _call_on_error(self, error: Error, *, log: bool = True) -> None:
        """``on_error`` is called directly: if it raises, that is only logged."""
        if log and error.kind is ErrorKind.CUSTOM:
            self.log.error("connection %d: %s", self.id, error)
        hooks = self.hooks
        if hooks is None or hooks.on_error is None:
            return
        if self._busy:
            await self._wait_turn()
        try:
            result = hooks.on_error(error)
            if result is not None and inspect.isawaitable(result):
                self._busy = True
                try:
                    await result
                finally:
                    self._busy = False
                    self._wake()
        except Exception as exc:
            self._log_only(exc, "on_error")

    def _log_only(self, exc: Exception, name: str = "factory") -> None:
        self.log.error("connection %d: %s raised %s: %s", self.id, name,
                       type(exc).__name__, exc, exc_info=exc)

    def report(self, error: Error) -> None:
        """Hand an error that arose outside this connection's task to ``on_error``."""
        error = error.for_connection(self.id)
        self.log.warning("connection %d: %s", self.id, error)
        if self._live:
            self._spawn(self._call_on_error, error)

    # ------------------------------------------------------------------
    # Called through Sender, in the Trio thread

    @property
    def queued_bytes(self) -> int:
        """Bytes accepted by ``send`` and not yet taken by the kernel."""
        core = self.core
        if core is None:
            return self._early_bytes
        return core.output_size + self._backlog_size + self._in_flight

    def _queue_full(self, queued: int) -> Error:
        return Error(
            f"send queue of connection {self.id} is full ({queued} bytes queued, "
            f"max_send_queue={self.settings.max_send_queue}): the peer is not reading "
            "fast enough; await out.flush() before sending more",
            ErrorKind.QUEUE,
            connection_id=self.id,
        )

    def _closed_error(self, size: int) -> Error:
        return Error(f"connection {self.id} is {self.state.value}: message of {size} bytes "
                     "not sent", ErrorKind.QUEUE, connection_id=self.id)

    def send(self, data: str | bytes, *, check: bool = True) -> None:
        state = self.state
        limit = self.settings.max_send_queue if check else None
        if state is ConnState.OPEN:
            core = self.core
            assert core is not None
            if limit is not None:
                queued = self.queued_bytes
                if queued >= limit:
                    raise self._queue_full(queued)
            core.send(data)
            if not self._batching:
                self._write_now()
        elif state is ConnState.CONNECTING:
            if limit is not None and self._early_bytes >= limit:
                raise self._queue_full(self._early_bytes)
            self._early.append(data)
            self._early_bytes += len(data)
        else:
            raise self._closed_error(len(data))

    def send_frame(self, frame: bytes) -> None:
        """A frame encoded once for a broadcast (see ``core.shares_frames``)."""
        core = self.core
        if self.state is not ConnState.OPEN or core is None:
            raise self._closed_error(len(frame))
        fd = self._fd
        if (fd is not None and not core.output_size and not self._backlog
                and not self._batching and not self._writing
                and core.state is CoreState.OPEN):
            # Nothing waits before it: straight to the kernel, as a broadcast
            # to many idle connections mostly finds them.
            try:
                sent = os.write(fd, frame)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self._backlog, self._backlog_size = [frame], len(frame)
                self._write_failed_now(exc)
                return
            if sent < len(frame):
                self._backlog = [memoryview(frame)[sent:]]
                self._backlog_size = len(frame) - sent
                self._start_writer()
            return
        limit = self.settings.max_send_queue
        if limit is not None:
            queued = self.queued_bytes
            if queued >= limit:
                raise self._queue_full(queued)
        core.send_frame(frame)
        if not self._batching:
            self._write_now()

    def check_queue(self, size: int) -> None:
        """From another thread: raise there if the message cannot be queued."""
        if self.state is ConnState.CLOSING or self.state is ConnState.CLOSED:
            raise self._closed_error(size)
        limit = self.settings.max_send_queue
        with _thread_lock:
            queued = self.queued_bytes + self._thread_pending
            if limit is not None and queued >= limit:
                raise self._queue_full(queued)
            self._thread_pending += size

    def send_from_thread(self, data: str | bytes) -> None:
        with _thread_lock:
            self._thread_pending -= len(data)
        try:
            self.send(data, check=False)
        except Error as err:
            self.report(err)

    def close(self, code: int, reason: str) -> None:
        if self.state is ConnState.CONNECTING:
            self._early_close = (code, reason)
            return
        core = self.core
        if self.state is not ConnState.OPEN or core is None:
            return
        if core.close(code, reason):
            self.state = ConnState.CLOSING
            timeout = self.settings.close_timeout
            if timeout is not None:
                self._scope.deadline = min(self._scope.deadline,
                                           trio.current_time() + timeout)
            self._output()

    def control(self, ping: bool, data: bytes) -> None:
        core = self.core
        if self.state is not ConnState.OPEN or core is None:
            raise Error(f"connection {self.id} is {self.state.value}: cannot send a "
                        f"{'ping' if ping else 'pong'}", ErrorKind.QUEUE, connection_id=self.id)
        if ping:
            core.ping(data)
        else:
            core.pong(data)
        self._output()

    def start_timer(self, timer: Timeout) -> None:
        if self.state is ConnState.CLOSED or (not self._live
                                              and self.state is not ConnState.CONNECTING):
            raise Error(f"connection {self.id} is closed: cannot set a timeout",
                        ErrorKind.TIMER, connection_id=self.id)
        # The scope is handed to the task: cancel() may run before it starts.
        timer.scope = scope = trio.CancelScope()
        if not self._live:  # set during the handshake: starts when open
            self._early_timers.append(timer)
        else:
            self._spawn(self._run_timer, timer, scope)

    async def _run_timer(self, timer: Timeout, scope: trio.CancelScope) -> None:
        with scope:
            await trio.sleep(timer.delay)
        if scope.cancelled_caught:
            return
        timer.scope = None
        if self.hooks is not None and self.state is not ConnState.CLOSED:
            await self._dispatch(self.hooks.on_timeout, timer.token)

    def cancel_timer(self, timer: Timeout) -> None:
        if timer.scope is not None:
            timer.scope.cancel()
            timer.scope = None

    async def flush(self) -> None:
        await trio.lowlevel.checkpoint()
        limit = self.settings.max_send_queue or 1
        while self.state is not ConnState.CLOSED and self.queued_bytes >= limit:
            if self._write_failed or self.core is None:
                return
            self._write_now()
            if self.queued_bytes < limit:
                return
            await self._park()

    def begin_shutdown(self) -> None:
        """The WebSocket shuts down: ``on_shutdown``, then close with 1001."""
        if self.state is ConnState.CONNECTING:
            self.abort()
        elif self.state is ConnState.OPEN and self._live:
            self._spawn(self._shutdown)

    async def _shutdown(self) -> None:
        if self.hooks is not None:
            await self._dispatch(self.hooks.on_shutdown)
        self.close(CloseCode.AWAY, "server shutting down" if not self.client else "going away")

    def abort(self) -> None:
        """Drop the connection at once (no closing handshake)."""
        if not self._lost_why:
            self._lost_why = "aborted"
        self._scope.cancel()

    # ------------------------------------------------------------------
    # Helpers

    def _extensions(self) -> list[Any]:
        settings = self.settings
        return make_extensions(
            settings.compression,
            client=self.client,
            max_message_size=settings.max_message_size,
            window_bits=settings.deflate_window_bits,
            no_context_takeover=settings.deflate_no_context_takeover,
        )

    def _raw_fd(self) -> int | None:
        """The socket's file descriptor when wskit may read and write it itself."""
        stream = self.stream
        return stream.socket.fileno() if isinstance(stream, trio.SocketStream) else None

    def _tune_socket(self, stream: trio.abc.Stream) -> None:
        if isinstance(stream, trio.SocketStream) and not self.settings.tcp_nodelay:
            # trio turns Nagle off for every SocketStream; turn it back on.
            stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, False)

    def _socket(self) -> trio.socket.SocketType | None:
        stream = self.stream
        if isinstance(stream, trio.SSLStream):
            stream = stream.transport_stream
        return stream.socket if isinstance(stream, trio.SocketStream) else None

    def _peer(self) -> str:
        sock = self._socket()
        if sock is None:
            return "?"
        try:
            host, port = sock.getpeername()[:2]
        except OSError:
            return "?"
        return f"{host}:{port}"

    def _make_handshake(self, request: Request, response: Response,
                        extensions: list[Any]) -> Handshake:
        sock = self._socket()
        peer: tuple[str, int] | None = None
        local: tuple[str, int] | None = None
        if sock is not None:
            try:
                peer_name, local_name = sock.getpeername(), sock.getsockname()
                peer, local = (peer_name[0], peer_name[1]), (local_name[0], local_name[1])
            except OSError:
                pass
        return Handshake(
            request=request,
            response=response,
            peer_addr=peer,
            local_addr=local,
            subprotocol=response.subprotocol,
            extensions=tuple(ext.name for ext in extensions),
            trust_proxy_headers=self.settings.trust_proxy_headers,
        )


def _error_response(err: Error) -> Response:
    """The HTTP answer to a refused request; 426 says which version we speak."""
    extra = [("Sec-WebSocket-Version", "13")] if err.status == 426 else None
    return Response(err.status or 400, f"{err}\n", extra)


async def _resolve(value: Any) -> Any:
    """The value of a hook that may be ``def`` or ``async def``."""
    if inspect.isawaitable(value):
        return await value
    return value


def _is_async(fn: Callable[..., Any] | None) -> bool:
    return fn is not None and inspect.iscoroutinefunction(fn)


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def _or_inf(seconds: float | None) -> float:
    return math.inf if seconds is None else seconds


def _why(exc: BaseException) -> str:
    cause = exc.__cause__
    return f"{exc} ({cause})" if cause is not None else str(exc) or type(exc).__name__


def _os_reason(exc: OSError) -> str:
    """The errno text behind trio's "all attempts to connect … failed"."""
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup):
        reasons = {e.strerror or str(e) for e in cause.exceptions if isinstance(e, OSError)}
        if reasons:
            return "; ".join(sorted(reasons))
    return exc.strerror or str(exc)


def _parse_url(url: str) -> tuple[bool, str, int, str]:
    """(secure, host, port, Host header) of a ``ws://`` or ``wss://`` URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Error(f"invalid WebSocket URL {url!r}: {exc}", ErrorKind.USAGE) from exc
    if parts.scheme not in ("ws", "wss"):
        raise Error(f"invalid WebSocket URL {url!r}: the scheme must be ws:// or wss://",
                    ErrorKind.USAGE)
    if not parts.hostname:
        raise Error(f"invalid WebSocket URL {url!r}: no host", ErrorKind.USAGE)
    secure = parts.scheme == "wss"
    host = parts.hostname
    default = 443 if secure else 80
    port = port or default
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default else f"{shown}:{port}"
    return secure, host, port, host_header
