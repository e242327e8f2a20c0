"""``wskit client URL``: stdin lines out, messages in (interactive or in pipes).

How the conversation is shown (markers, escapes, the prompt) is ``console``'s.
"""

from __future__ import annotations

import argparse
import codecs
import logging
import os
import select
import ssl
import sys

import trio

from .._core.http import Handshake, Request
from .._core.messages import CloseCode, Message
from .._core.protocol import check_close
from .._errors import Error, ErrorKind
from .._handler import Factory, Handler
from .._sender import Sender
from .._settings import Reconnect
from .._websocket import WebSocket
from .console import Console
from .options import UsageError, settings_from


class _ClientState:
    def __init__(self, reconnect: bool = False) -> None:
        #: Set when the client is over (after the last connection, with
        #: --reconnect once reconnecting stopped).
        self.closed = trio.Event()
        self.opened = False
        self.reconnect = reconnect
        #: Set while a connection is open.
        self.connected = trio.Event()
        #: We started the closing handshake (end of input or /close).
        self.we_closed = False
        self.code: CloseCode | int = CloseCode.ABNORMAL
        self.reason = ""
        #: Set by each message (the client lingers until none comes).
        self.activity = trio.Event()
        self.pings: dict[bytes, float] = {}
        self.pong = trio.Event()
        self.interactive = sys.stdin.isatty()
        self.console = Console.standard()


def _client_factory(args: argparse.Namespace, state: _ClientState) -> Factory:
    headers = []
    for header in args.header or ():
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header {header!r}: expected 'Name: value'")
        headers.append((name.strip(), value.strip()))

    console = state.console

    class Client(Handler):
        def build_request(self, url: str) -> Request:
            return Request.for_url(url, headers=headers, subprotocols=args.subprotocol or (),
                                   origin=args.origin)

        def on_open(self, handshake: Handshake) -> None:
            state.connected.set()
            if state.opened:  # with --reconnect: the next connection
                console.status(f"wskit: reconnected to {args.url}")
                return
            state.opened = True
            if state.interactive:
                chosen = f" (subprotocol {handshake.subprotocol})" if handshake.subprotocol else ""
                console.status(f"connected to {args.url}{chosen}; type lines to send, /help "
                               "for commands")
                console.prompt()

        def on_message(self, msg: Message) -> None:
            state.activity.set()
            try:
                console.received(msg)
            except OSError:  # stdout went away (a closed pipe): stop politely
                self.out.close(CloseCode.NORMAL)

        def on_pong(self, data: bytes) -> None:
            sent = state.pings.pop(data, None)
            if sent is not None:
                state.pong.set()
                if data.startswith(b"wskit-cli"):
                    return
                console.status(f"pong {data.decode('utf-8', 'replace')!r} after "
                               f"{(trio.current_time() - sent) * 1000:.1f} ms")

        def on_error(self, err: Error) -> None:
            if not state.opened:
                return  # cmd_client reports a failed connect itself, once
            if state.reconnect and not state.connected.is_set() and err.kind in _ATTEMPT_ERRORS:
                return  # a failed attempt: on_reconnecting prints it
            console.status(f"wskit: {err}")

        def on_close(self, code: CloseCode | int, reason: str) -> None:
            state.code, state.reason = code, reason
            state.connected = trio.Event()

        def on_reconnecting(self, attempt: int, delay: float, error: Error) -> None:
            console.status(f"wskit: reconnecting in {delay:.2f}s (attempt {attempt}): {error}")

    class ClientFactory(Factory):
        def connection_made(self, out: Sender) -> Client:
            return Client(out)

        def connection_lost(self, handler: object) -> None:
            state.closed.set()  # once, after the last on_close

    return ClientFactory()


#: What a failed connection attempt reports (printed by on_reconnecting instead).
_ATTEMPT_ERRORS = frozenset({ErrorKind.IO, ErrorKind.HTTP, ErrorKind.SSL, ErrorKind.PROTOCOL})


_HELP = """commands:
  /close [CODE [REASON]]  close (default 1000) once answers in flight came
  /ping [TEXT]            send a ping; the pong's latency is shown
  //TEXT                  send /TEXT
  /help                   this help"""


class _LineReader:
    """Lines of a file descriptor (UTF-8), read in a worker thread.

    ``os.read`` holds no Python lock, so a read abandoned when the connection
    closes first never blocks the interpreter's exit (``sys.stdin.readline``
    in a daemon thread can).
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._lines: list[str] = []
        self._eof = False

    async def readline(self) -> str | None:
        """The next line without its end of line; ``None`` at the end of input."""
        while not self._lines:
            if self._eof:
                return None
            chunk = await trio.to_thread.run_sync(os.read, self._fd, 65536,
                                                  abandon_on_cancel=True)
            self._eof = not chunk
            self._buffer += self._decoder.decode(chunk, final=self._eof)
            *lines, self._buffer = self._buffer.split("\n")
            if self._eof and self._buffer:
                lines.append(self._buffer)
                self._buffer = ""
            self._lines.extend(line.removesuffix("\r") for line in lines)
        return self._lines.pop(0)

    def has_more(self) -> bool:
        """Whether a line is already there (typed ahead): then the terminal
        has echoed it already, and a prompt now would land after it."""
        if self._lines or self._eof:
            return True
        readable, _, _ = select.select([self._fd], [], [], 0)
        return bool(readable)


async def _drain(out: Sender, state: _ClientState, linger: float) -> None:
    """Before we close: let the answers in flight arrive (a close sent now
    would make the peer's later data frames undeliverable, RFC 6455 5.5.1).
    The pong proves the server has read everything we sent; then wait until
    no message came for ``linger`` seconds."""
    if linger <= 0:
        return
    token = b"wskit-cli-eof"
    state.pings[token] = trio.current_time()
    state.pong = trio.Event()
    out.ping(token)
    with trio.move_on_after(max(10 * linger, 5)):
        await state.pong.wait()
    while True:
        state.activity = trio.Event()
        with trio.move_on_after(linger):
            await state.activity.wait()
        if not state.activity.is_set():
            break


async def _pump_stdin(out: Sender, state: _ClientState, linger: float) -> None:
    reader = _LineReader(sys.stdin.fileno())
    console = state.console
    try:
        while (line := await reader.readline()) is not None:
            console.typed()
            if line.startswith("/") and not line.startswith("//"):
                command, _, rest = line[1:].partition(" ")
                if command == "close":
                    code_text, _, reason = rest.strip().partition(" ")
                    try:
                        code = int(code_text) if code_text else CloseCode.NORMAL
                        check_close(code, reason)
                    except (ValueError, Error) as exc:
                        console.status(f"wskit: /close: {exc}")
                        if not reader.has_more():
                            console.prompt()
                        continue
                    await _drain(out, state, linger)
                    out.close(code, reason)
                    state.we_closed = True
                    return
                if command == "ping":
                    data = rest.encode("utf-8")[:125]
                    try:
                        out.ping(data)
                    except Error as exc:  # not connected (--reconnect, between two)
                        console.status(f"wskit: /ping: {exc}")
                        continue
                    state.pings[data] = trio.current_time()
                elif command == "help":
                    console.status(_HELP)
                else:
                    console.status(f"wskit: unknown command /{command} (try /help)")
                if not reader.has_more():
                    console.prompt()
                continue
            text = line[1:] if line.startswith("//") else line
            out.send(text)
            console.sent(text)
            if not reader.has_more():
                console.prompt()
            await out.flush()  # backpressure: don't read stdin faster than we send
        # End of input: let the answers in flight arrive, then close normally.
        if state.reconnect:
            # What was sent while disconnected goes out on the next connection.
            await state.connected.wait()
            await out.flush()
        await _drain(out, state, linger)
        out.close(CloseCode.NORMAL)
        state.we_closed = True
    except Error:
        return  # the connection closed under us: on_close tells how


def cmd_client(args: argparse.Namespace) -> int:
    """``wskit client URL``: an interactive client, usable in pipes."""
    settings = settings_from(args)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    ssl_context: ssl.SSLContext | None = None
    if args.ca_file:
        try:
            ssl_context = ssl.create_default_context(cafile=args.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot load --ca-file {args.ca_file!r}: {exc}") from exc
    if args.linger < 0:
        raise UsageError(f"--linger must be >= 0, got {args.linger}")
    reconnect = _reconnect_from(args)
    state = _ClientState(reconnect is not None)
    factory = _client_factory(args, state)

    async def run() -> int:
        async with WebSocket(factory, settings) as ws:
            try:
                out = await ws.connect(args.url, ssl_context=ssl_context, reconnect=reconnect)
            except Error as err:
                print(f"wskit: {args.url}: {err}", file=sys.stderr, flush=True)
                return 1
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_pump_stdin, out, state, args.linger)
                await state.closed.wait()
                nursery.cancel_scope.cancel()
        # Success: the closing handshake completed, and either we asked for
        # it or the server closed normally (1000, or 1001 going away).
        completed = state.code != CloseCode.ABNORMAL
        console = state.console
        console.finish()
        # With --reconnect, the server's 1000/1001 were reconnected after: it
        # ends well only when we closed.
        server_done = not state.reconnect and state.code in (CloseCode.NORMAL, CloseCode.AWAY)
        if completed and (state.we_closed or server_done):
            if state.interactive:
                console.status(f"closed: {int(state.code)} {state.reason}".rstrip())
            return 0
        console.status(f"wskit: connection closed: {int(state.code)} {state.reason}".rstrip())
        return 1

    return trio.run(run)


def _reconnect_from(args: argparse.Namespace) -> Reconnect | None:
    """``--reconnect`` and its tuning options (which imply it)."""
    given = {}
    if args.reconnect_max_delay is not None:
        given["max_delay"] = args.reconnect_max_delay
        given["initial_delay"] = min(1.0, args.reconnect_max_delay)
    if args.reconnect_attempts is not None:
        given["max_attempts"] = args.reconnect_attempts
    if not args.reconnect and not given:
        return None
    try:
        return Reconnect(**given)
    except Error as err:
        raise UsageError(str(err)) from err
