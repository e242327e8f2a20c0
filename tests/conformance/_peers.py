"""The endpoints of the conformance suite: wskit ones and hand-made ones.

Server side: :class:`BackgroundServer` runs a wskit echo server
(``wskit.WebSocket(lambda out: lambda msg: out.send(msg), settings)``) in a
thread with its own Trio run, so hundreds of cases share it (the fixtures in
``conftest.py`` start one per session). The tests talk to it through
:class:`Peer`, a blocking raw-socket client that writes hand-made masked
frames and reads the server's frames back as events (see ``_frames.py``).

Client side: :func:`run_client` runs a wskit client (``WebSocket.connect``)
in the test's Trio run against :class:`FrameServer`, a raw Trio socket
server that answers the upgrade itself and then writes hand-made unmasked
frames. The client's handler echoes messages and records ``on_close`` and
``on_error``.

Every wait is bounded by ``TIMEOUT``: a wskit endpoint that hangs fails its
case instead of hanging the suite.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import trio

import wskit

from ._frames import (
    CLOSE,
    Deflate,
    Event,
    FrameParser,
    Reassembler,
    accept_token,
    close_payload,
    fragments,
    frame,
    message,
    parse_extension,
    parse_head,
    upgrade_request,
    upgrade_response,
)

#: Bound of every single wait for a wskit endpoint (seconds).
TIMEOUT = 3.0
#: max_message_size of the "small" server (section 9 limits, 1009).
SMALL_LIMIT = 1024
#: max_message_size of the main echo server (section 9 goes up to it).
BIG_LIMIT = 16 * 2**20

DEFLATE = "permessage-deflate"

SERVER_SETTINGS = wskit.Settings(
    max_message_size=BIG_LIMIT,
    max_send_queue=64 * 2**20,
    handshake_timeout=TIMEOUT,
    close_timeout=2.0,
    ping_interval=None,
    shutdown_on_interrupt=False,
)
#: The wskit client's settings: the same limits and timeouts.
CLIENT_SETTINGS = SERVER_SETTINGS


# ----------------------------------------------------------------------
# wskit echo servers in a background thread


class BackgroundServer:
    """A wskit echo server running in its own thread and Trio run."""

    def __init__(self, settings: wskit.Settings) -> None:
        self.settings = settings
        self.port = 0
        self._ws: wskit.WebSocket | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=trio.run, args=(self._main,),
                                        name="wskit-conformance-server", daemon=True)

    async def _main(self) -> None:
        try:
            async with wskit.WebSocket(lambda out: lambda msg: out.send(msg),
                                       self.settings) as ws:
                self._ws = ws
                _host, self.port = await ws.listen("127.0.0.1:0")
                self._ready.set()
        except BaseException as exc:  # reported in the test thread, not lost in this one
            self._error = exc
        finally:
            self._ready.set()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(TIMEOUT), "the wskit server did not start"
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._ws is not None:
            self._ws.shutdown()
        self._thread.join(TIMEOUT)
        assert not self._thread.is_alive(), "the wskit server did not shut down"
        if self._error is not None:
            raise self._error


# ----------------------------------------------------------------------
# The raw client


def _deflate_pair(answer: str | None, *, client: bool) -> tuple[Deflate | None, Deflate | None]:
    """(our compressor, our decompressor) from the server's extension answer."""
    if answer is None:
        return None, None
    name, params = parse_extension(answer)
    assert name == DEFLATE, f"unexpected extension {answer!r}"
    mine, theirs = ("client", "server") if client else ("server", "client")

    def bits(side: str) -> int:
        value = params.get(f"{side}_max_window_bits")
        return int(value) if value else 15

    out = Deflate(bits(mine), no_context_takeover=f"{mine}_no_context_takeover" in params)
    into = Deflate(bits(theirs), no_context_takeover=f"{theirs}_no_context_takeover" in params)
    return out, into


def _show(events: list[Event]) -> str:
    """Events for an assertion message, long payloads shortened."""
    shown = []
    for event in events:
        parts = [repr(p[:40]) + (f"..({len(p)} bytes)" if len(p) > 40 else "")
                 if isinstance(p, bytes) else repr(p) for p in event]
        shown.append("(" + ", ".join(parts) + ")")
    return "[" + ", ".join(shown) + "]"


class PeerBase:
    """What both raw peers share: frame building, compression, expectations."""

    #: True for the raw client (it masks, and reads unmasked server frames).
    client = True

    def __init__(self, extension: str | None, rest: bytes) -> None:
        self.extension = extension
        self.deflate, inflate = _deflate_pair(extension, client=self.client)
        self.parser = FrameParser()
        self.parser.feed(rest)
        self.reader = Reassembler(masked=not self.client, inflate=inflate)
        self.pending: list[Event] = []
        self.eof = False
        self._parse()  # frames that came with the handshake answer

    def frame(self, opcode: int, payload: bytes = b"", **kwargs: Any) -> bytes:
        kwargs.setdefault("masked", self.client)
        return frame(opcode, payload, **kwargs)

    def compressed(self, opcode: int, payload: bytes, *, size: int | None = None) -> bytes:
        """One compressed message, in fragments of ``size`` compressed bytes."""
        assert self.deflate is not None, "permessage-deflate was not negotiated"
        data = self.deflate.compress(payload)
        return message(opcode, fragments(data, size or len(data) or 1), rsv=4,
                       masked=self.client)

    def _parse(self) -> None:
        while (f := self.parser.next()) is not None:
            self.pending.extend(self.reader.add(f))

    @staticmethod
    def same(got: list[Event], want: list[Event]) -> None:
        """``got`` matches ``want``: data messages in order, control frames in
        order, but a pong may overtake an echo (it is sent "as soon as
        practical", section 5.5.2); close events compare by code only (the
        reason is the sender's choice) and must come last."""

        def split(events: list[Event]) -> tuple[list[Event], list[Event]]:
            data = [e for e in events if e[0] in ("text", "binary")]
            control = [e[:2] if e[0] == "close" else e for e in events
                       if e[0] not in ("text", "binary")]
            return data, control

        assert split(got) == split(want), f"got {_show(got)}, expected {_show(want)}"
        if want and want[-1][0] == "close":
            assert got[-1][0] == "close", f"the close frame is not last: {_show(got)}"


class Peer(PeerBase):
    """A raw, blocking WebSocket client talking to a wskit server."""

    def __init__(self, sock: socket.socket, extension: str | None, rest: bytes) -> None:
        super().__init__(extension, rest)
        self.sock = sock

    @classmethod
    def open(cls, port: int, *, extensions: str | None = None, early: bytes = b"") -> Peer:
        """Connect and do the opening handshake; ``early`` goes in the same write."""
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        with contextlib.ExitStack() as on_error:
            on_error.callback(sock.close)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            request, key = upgrade_request("127.0.0.1", port, extensions=extensions)
            sock.sendall(request + early)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                assert chunk, f"server closed during the handshake: {data!r}"
                data += chunk
            status, headers, rest = parse_head(data)
            assert status.startswith("HTTP/1.1 101 "), status
            assert headers["sec-websocket-accept"] == [accept_token(key)]
            assert headers["upgrade"][0].lower() == "websocket"
            assert "upgrade" in headers["connection"][0].lower()
            answers = headers.get("sec-websocket-extensions")
            if extensions is None:
                assert answers is None, "server enabled an extension nobody offered"
            on_error.pop_all()
        return cls(sock, answers[0] if answers else None, rest)

    # -- writing ---------------------------------------------------------

    def write(self, data: bytes, chunk: int | None = None) -> None:
        """Send raw bytes, in writes of ``chunk`` bytes if given."""
        if chunk is None:
            self.sock.sendall(data)
            return
        for i in range(0, len(data), chunk):
            self.sock.sendall(data[i:i + chunk])

    def send(self, opcode: int, payload: bytes = b"", *, chunk: int | None = None,
             **kwargs: Any) -> None:
        self.write(self.frame(opcode, payload, **kwargs), chunk)

    def close(self, code: int | None = 1000, reason: bytes | str = b"") -> None:
        self.send(CLOSE, close_payload(code, reason))

    # -- reading ---------------------------------------------------------

    def _recv(self) -> None:
        assert not self.eof, "read past the end of stream"
        try:
            data = self.sock.recv(262144)
        except TimeoutError:
            raise AssertionError(f"wskit server sent nothing for {TIMEOUT}s (hang)") from None
        except ConnectionResetError:
            raise AssertionError("wskit server reset the TCP connection") from None
        if not data:
            assert not self.parser.buffer, "stream ended in the middle of a frame"
            self.eof = True
        self.parser.feed(data)
        self._parse()

    def event(self) -> Event | None:
        """The next event, or ``None`` at the end of the stream."""
        while not self.pending and not self.eof:
            self._recv()
        return self.pending.pop(0) if self.pending else None

    def events(self, count: int) -> list[Event]:
        got: list[Event] = []
        for _ in range(count):
            event = self.event()
            assert event is not None, f"stream ended after {got}"
            got.append(event)
        return got

    def expect(self, *expected: Event) -> None:
        """The next events are exactly ``expected`` (close events by code)."""
        got = self.events(len(expected))
        self.same(got, list(expected))

    def expect_with_pongs(self, data: list[Event], pings: list[bytes]) -> None:
        """The data events ``data`` in order, and pongs for ``pings``.

        Section 5.5.3 lets an endpoint answer only the latest of several
        pings it has not answered yet: the pongs must be an in-order
        subsequence of ``pings`` that ends with the last one.
        """
        got: list[Event] = []
        pongs: list[bytes] = []
        while len(got) < len(data) or (pings and pongs[-1:] != pings[-1:]):
            event = self.event()
            assert event is not None, f"stream ended after {_show(got)}, pongs {pongs}"
            if event[0] == "pong":
                assert isinstance(event[1], bytes)
                pongs.append(event[1])
            else:
                got.append(event)
        self.same(got, data)
        remaining = iter(pings)
        assert all(p in remaining for p in pongs), f"pongs {pongs} out of order for {pings}"

    def rest(self) -> list[Event]:
        """Every event until the server closes the TCP connection."""
        got = []
        while (event := self.event()) is not None:
            got.append(event)
        return got

    def expect_close(self, code: int | None, *before: Event) -> Event:
        """``before``, then a close frame with ``code``, then the end of stream.

        This is "fail fast" when nothing else was sent: the server must act on
        what it has, send its close frame and close the TCP connection.
        """
        got = self.rest()
        want = [*before, ("close", code)]
        self.same(got, want)
        return got[-1]

    def finish(self) -> None:
        """Our normal close; the server echoes 1000 and closes the TCP stream."""
        self.close(1000)
        self.expect_close(1000)

    def shutdown(self) -> None:
        self.sock.close()


# ----------------------------------------------------------------------
# The raw server and the wskit client


class FrameServer(PeerBase):
    """The hand-made server end of one connection, in the test's Trio run."""

    client = False

    def __init__(self, stream: trio.SocketStream, extension: str | None, rest: bytes,
                 request: dict[str, list[str]]) -> None:
        super().__init__(extension, rest)
        self.stream = stream
        self.request = request
        self.aborted = False

    @classmethod
    async def accept(cls, stream: trio.SocketStream, *, extensions: str | None,
                     early: bytes = b"") -> FrameServer:
        """Read the client's upgrade request, check it (section 4.1), answer 101."""
        data = b""
        with trio.fail_after(TIMEOUT):
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                assert chunk, f"client closed during the handshake: {data!r}"
                data += chunk
        start, headers, rest = parse_head(data)
        assert start.startswith("GET ") and start.endswith(" HTTP/1.1"), start
        assert "host" in headers
        assert headers["upgrade"][0].lower() == "websocket"
        assert "upgrade" in headers["connection"][0].lower()
        assert headers["sec-websocket-version"] == ["13"]
        (key,) = headers["sec-websocket-key"]
        assert len(base64.b64decode(key, validate=True)) == 16
        await stream.send_all(upgrade_response(key, extensions=extensions) + early)
        return cls(stream, extensions, rest, headers)

    async def write(self, data: bytes, chunk: int | None = None) -> None:
        if chunk is None:
            await self.stream.send_all(data)
            return
        for i in range(0, len(data), chunk):
            await self.stream.send_all(data[i:i + chunk])

    async def send(self, opcode: int, payload: bytes = b"", *, chunk: int | None = None,
                   **kwargs: Any) -> None:
        await self.write(self.frame(opcode, payload, **kwargs), chunk)

    async def close(self, code: int | None = 1000, reason: bytes | str = b"") -> None:
        await self.send(CLOSE, close_payload(code, reason))

    async def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        self.aborted = True
        await trio.aclose_forcefully(self.stream)

    async def event(self) -> Event | None:
        while not self.pending and not self.eof:
            try:
                with trio.fail_after(TIMEOUT):
                    data = await self.stream.receive_some(262144)
            except trio.TooSlowError:
                raise AssertionError(f"wskit client sent nothing for {TIMEOUT}s") from None
            except trio.BrokenResourceError:
                raise AssertionError("wskit client reset the TCP connection") from None
            if not data:
                assert not self.parser.buffer, "stream ended in the middle of a frame"
                self.eof = True
            self.parser.feed(data)
            self._parse()
        return self.pending.pop(0) if self.pending else None

    async def expect(self, *expected: Event) -> None:
        got = []
        for _ in expected:
            event = await self.event()
            assert event is not None, f"stream ended after {got}"
            got.append(event)
        self.same(got, list(expected))

    async def rest(self) -> list[Event]:
        got = []
        while (event := await self.event()) is not None:
            got.append(event)
        return got

    async def expect_close(self, code: int | None, *before: Event) -> None:
        """``before``, the client's close with ``code``, then its end of stream."""
        got = await self.rest()
        want = [*before, ("close", code)]
        self.same(got, want)


@dataclasses.dataclass
class ClientRun:
    """What the wskit client's handler saw."""

    messages: list[wskit.Message] = dataclasses.field(default_factory=list)
    pings: list[bytes] = dataclasses.field(default_factory=list)
    closes: list[tuple[Any, str]] = dataclasses.field(default_factory=list)
    errors: list[wskit.Error] = dataclasses.field(default_factory=list)
    connect_error: wskit.Error | None = None
    closed: trio.Event = dataclasses.field(default_factory=trio.Event)

    @property
    def close_code(self) -> Any:
        assert len(self.closes) == 1, f"on_close called {len(self.closes)} times"
        return self.closes[0][0]

    def error_kinds(self) -> list[wskit.ErrorKind]:
        return [err.kind for err in self.errors]


class EchoRecorder(wskit.Handler):
    """The wskit client's handler: echoes messages, records what happens."""

    def __init__(self, out: wskit.Sender, run: ClientRun) -> None:
        super().__init__(out)
        self.run = run

    def on_message(self, msg: wskit.Message) -> None:
        self.run.messages.append(msg)
        self.out.send(msg)

    def on_ping(self, data: bytes) -> None:
        self.run.pings.append(data)

    def on_close(self, code: wskit.CloseCode | int, reason: str) -> None:
        self.run.closes.append((code, reason))
        self.run.closed.set()

    def on_error(self, err: wskit.Error) -> None:
        self.run.errors.append(err)


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


Script = Callable[[FrameServer], Awaitable[None]]
#: The ``connect`` fixture: ``connect(extensions=None, early=b"") -> Peer``.
Connect = Callable[..., "Peer"]
#: The ``client_run`` fixture.
ClientRunner = Callable[..., Awaitable[ClientRun]]


async def run_client(script: Script, *, settings: wskit.Settings = CLIENT_SETTINGS,
                      extensions: str | None = None, early: bytes = b"") -> ClientRun:
    run = ClientRun()
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    listener = listeners[0]
    port = listener.socket.getsockname()[1]

    async def client(ws: wskit.WebSocket) -> None:
        try:
            await ws.connect(f"ws://127.0.0.1:{port}/conformance")
        except wskit.Error as err:
            run.connect_error = err

    try:
        with trio.fail_after(4 * TIMEOUT):
            async with listener, wskit.WebSocket(lambda out: EchoRecorder(out, run),
                                                 settings) as ws:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(client, ws)
                    stream = await listener.accept()
                    async with stream:
                        server = await FrameServer.accept(stream, extensions=extensions,
                                                          early=early)
                        await script(server)
                        if not server.aborted:
                            assert server.eof, "the script must read the client's end of stream"
                    with trio.fail_after(TIMEOUT):
                        await run.closed.wait()
                ws.shutdown()
    except BaseExceptionGroup as group:
        # A failed assertion of the script, not wrapped by the nursery.
        leaves = list(_leaves(group))
        if len(leaves) == 1:
            raise leaves[0] from None
        raise
    return run
