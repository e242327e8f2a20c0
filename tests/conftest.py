"""Fixtures for the behaviour tests that run wskit through real sockets.

The peer is the ``websockets`` library, in both directions: its client
against a wskit server, and wskit's client against its server. Both use
``websockets.trio``, so the peer runs in the same Trio run as the test and
every wait is bounded by ``trio.fail_after``; the blocking ``wskit.listen`` /
``wskit.connect`` run in threads (each with its own Trio run).

Helpers are handed out as fixtures (not imported from this module) so the
tests work whatever the import mode:

- ``log``: a thread-safe event log that handlers write to, with bounded waits;
- ``Recorder``: a ``wskit.Handler`` that records every event hook in a log;
- ``serve``: runs a ``wskit.WebSocket`` listening on 127.0.0.1:0;
- ``ws_server``: runs a ``websockets`` server;
- ``ws_connect``: ``websockets.trio.client.connect`` without proxy lookup;
- ``raw``: a raw TCP peer (manual handshake, frames, plain HTTP);
- ``in_asyncio``: runs a coroutine function (e.g. a ``websockets.asyncio``
  client) in a thread with its own asyncio loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import functools
import hashlib
import os
import socket
import struct
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trio
import websockets.trio.client
import websockets.trio.server

import wskit

#: Every wait in these tests is bounded by this (seconds).
TIMEOUT = 5.0
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# ----------------------------------------------------------------------
# Recording what handlers see


class Log:
    """Events recorded by handlers, as tuples ``(name, *args)``.

    Thread-safe to write (handlers of the blocking helpers run in another
    thread). ``wait``/``wait_for`` are woken by each new event and bounded by
    ``trio.fail_after``.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.items: list[tuple[Any, ...]] = []
        self._waiters: list[tuple[trio.lowlevel.TrioToken, int, trio.Event]] = []

    def __call__(self, *item: Any) -> None:
        with self._lock:
            self.items.append(item)
            waiters, self._waiters = self._waiters, []
        for token, thread_id, event in waiters:
            if threading.get_ident() == thread_id:
                event.set()
            else:
                with contextlib.suppress(trio.RunFinishedError):
                    token.run_sync_soon(event.set)

    def snapshot(self) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self.items)

    def of(self, name: str) -> list[tuple[Any, ...]]:
        """The arguments of every event called ``name``, in order."""
        return [item[1:] for item in self.snapshot() if item[0] == name]

    def names(self) -> list[str]:
        return [item[0] for item in self.snapshot()]

    async def wait_for(self, predicate: Callable[[], bool], seconds: float = TIMEOUT) -> None:
        """Wait until ``predicate()`` holds; re-checked after each new event."""
        token, thread_id = trio.lowlevel.current_trio_token(), threading.get_ident()
        with trio.fail_after(seconds):
            while True:
                with self._lock:
                    if predicate():
                        return
                    event = trio.Event()
                    self._waiters.append((token, thread_id, event))
                await event.wait()

    async def wait(self, name: str, count: int = 1,
                   seconds: float = TIMEOUT) -> list[tuple[Any, ...]]:
        """Wait until ``count`` events called ``name`` were recorded; their args."""
        await self.wait_for(lambda: len(self.of(name)) >= count, seconds)
        return self.of(name)


class Recorder(wskit.Handler):
    """Records every event hook as ``(name, *args)`` in ``log``.

    ``on_request``, ``build_request`` and ``on_response`` are left to the
    base class (not recorded) so that subclasses override only what they test.
    """

    def __init__(self, out: wskit.Sender, log: Log) -> None:
        super().__init__(out)
        self.log = log

    def on_open(self, handshake: wskit.Handshake) -> None:
        self.log("open", handshake)

    def on_message(self, msg: wskit.Message) -> None:
        self.log("message", msg)

    def on_close(self, code: wskit.CloseCode | int, reason: str) -> None:
        self.log("close", code, reason)

    def on_error(self, err: wskit.Error) -> None:
        self.log("error", err)

    def on_timeout(self, token: Any) -> None:
        self.log("timeout", token)

    def on_ping(self, data: bytes) -> None:
        self.log("ping", data)

    def on_pong(self, data: bytes) -> None:
        self.log("pong", data)

    def on_shutdown(self) -> None:
        self.log("shutdown")


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture(name="Recorder")
def recorder_class() -> type[Recorder]:
    return Recorder


# ----------------------------------------------------------------------
# A wskit server


@dataclasses.dataclass
class Running:
    """A ``wskit.WebSocket`` listening in the test's nursery."""

    ws: wskit.WebSocket
    host: str
    port: int
    #: Set once the ``async with WebSocket`` block has been left.
    exited: trio.Event

    def url(self, path: str = "/") -> str:
        return f"ws://{self.host}:{self.port}{path}"


async def _run_wskit(factory: Any, settings: wskit.Settings | None,
                     task_status: trio.TaskStatus[Running]) -> None:
    exited = trio.Event()
    try:
        async with wskit.WebSocket(factory, settings) as ws:
            host, port = await ws.listen("127.0.0.1:0")
            task_status.started(Running(ws, host, port, exited))
    finally:
        exited.set()


@pytest.fixture
async def serve(nursery: trio.Nursery) -> AsyncIterator[Callable[..., Awaitable[Running]]]:
    """``await serve(factory, settings=None)``: a running wskit server.

    Shut down (and waited for, bounded) when the test ends.
    """
    running: list[Running] = []

    async def start(factory: Any, settings: wskit.Settings | None = None) -> Running:
        server: Running = await nursery.start(_run_wskit, factory, settings)
        running.append(server)
        return server

    yield start
    with trio.fail_after(TIMEOUT):
        for server in running:
            server.ws.shutdown()
        for server in running:
            await server.exited.wait()


# ----------------------------------------------------------------------
# The websockets peer


@pytest.fixture
def ws_connect() -> Callable[..., websockets.trio.client.connect]:
    """``websockets.trio.client.connect`` that never looks up a proxy."""
    return functools.partial(websockets.trio.client.connect, proxy=None)


@dataclasses.dataclass
class WsServer:
    """A ``websockets`` server running in the test's nursery."""

    server: websockets.trio.server.Server
    host: str
    port: int

    def url(self, path: str = "/") -> str:
        return f"ws://{self.host}:{self.port}{path}"


@pytest.fixture
async def ws_server(nursery: trio.Nursery) -> AsyncIterator[Callable[..., Awaitable[WsServer]]]:
    """``await ws_server(handler, **serve_kwargs)``: a running websockets server."""
    servers: list[WsServer] = []

    async def start(handler: Callable[[Any], Awaitable[None]], **kwargs: Any) -> WsServer:
        server = await nursery.start(
            functools.partial(websockets.trio.server.serve, handler, 0, host="127.0.0.1",
                              **kwargs)
        )
        host, port = server.listeners[0].socket.getsockname()[:2]
        running = WsServer(server, host, port)
        servers.append(running)
        return running

    yield start
    with trio.fail_after(TIMEOUT):
        for running in servers:
            await running.server.aclose()


@pytest.fixture
def in_asyncio() -> Callable[..., Awaitable[Any]]:
    """``await in_asyncio(async_fn, *args)``: run it with ``asyncio.run`` in a thread."""

    async def run(async_fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        with trio.fail_after(TIMEOUT):
            return await trio.to_thread.run_sync(
                lambda: asyncio.run(async_fn(*args)),  # type: ignore[arg-type]
                abandon_on_cancel=True,
            )

    return run


# ----------------------------------------------------------------------
# A raw TCP peer


class Raw:
    """A hand-written peer for what a well-behaved library won't do.

    Streams it opens are closed at the end of the test, even a failed one.
    """

    def __init__(self) -> None:
        self.streams: list[trio.SocketStream] = []

    @staticmethod
    def free_port() -> int:
        """A port nobody listens on (bound then released)."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        return port

    @staticmethod
    async def http(host: str, port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send ``request``, read to end of stream: (status, headers, body)."""
        with trio.fail_after(TIMEOUT):
            stream = await trio.open_tcp_stream(host, port)
            async with stream:
                await stream.send_all(request)
                data = b""
                while chunk := await stream.receive_some(65536):
                    data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers, body

    async def handshake(self, host: str, port: int, path: str = "/",
                        extra: str = "") -> tuple[trio.SocketStream, bytes]:
        """Open a WebSocket by hand (no extensions): (stream, bytes after the head)."""
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
        ).encode("ascii")
        with trio.fail_after(TIMEOUT):
            stream = await trio.open_tcp_stream(host, port)
            self.streams.append(stream)
            await stream.send_all(request)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                assert chunk, f"server closed during the handshake: {data!r}"
                data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
        accept = base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest())
        assert b"Sec-WebSocket-Accept: " + accept in head, head
        return stream, rest

    @staticmethod
    def frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
        """A masked (client) frame."""
        mask = os.urandom(4)
        first = (0x80 if fin else 0) | opcode
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", first, 0x80 | size)
        elif size < 2**16:
            header = struct.pack("!BBH", first, 0x80 | 126, size)
        else:
            header = struct.pack("!BBQ", first, 0x80 | 127, size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return header + mask + masked

    @staticmethod
    async def read_frame(stream: trio.SocketStream,
                         buffer: bytearray) -> tuple[int, bytes]:
        """Read one unmasked (server) frame: (opcode, payload). ``buffer`` keeps leftovers."""

        async def need(n: int) -> None:
            while len(buffer) < n:
                chunk = await stream.receive_some(65536)
                assert chunk, "stream ended in the middle of a frame"
                buffer.extend(chunk)

        with trio.fail_after(TIMEOUT):
            await need(2)
            opcode, size, start = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            assert not buffer[1] & 0x80, "server frames must not be masked"
            if size == 126:
                await need(4)
                size, start = struct.unpack("!H", buffer[2:4])[0], 4
            elif size == 127:
                await need(10)
                size, start = struct.unpack("!Q", buffer[2:10])[0], 10
            await need(start + size)
            payload = bytes(buffer[start:start + size])
            del buffer[:start + size]
        return opcode, payload


@pytest.fixture
async def raw() -> AsyncIterator[Raw]:
    peer = Raw()
    yield peer
    for stream in peer.streams:
        await trio.aclose_forcefully(stream)
