"""The ``wskit`` command (also ``python -m wskit``).

::

    wskit echo [--host H] [--port P]            an echo server
    wskit client URL                             stdin lines out, messages in
    wskit serve module:factory [options]         serve any factory
    wskit dev module:factory [options]           the same, restarted on changes
    wskit serve module:RoomService --rooms       room services as wskit.Rooms (also dev)

Exit status: 0 on success (a server stopped by Ctrl-C/SIGTERM, a client whose
connection closed normally); 1 when a client can't connect or its connection
ends abnormally, or the served module raised on import; 2 for usage errors
(bad arguments, a module or attribute that does not exist, a port in use,
unreadable TLS files), with one line on stderr.

This module is the command line's user interface: it prints to stdout and
stderr. Everything it does goes through the public API.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import importlib
import importlib.util
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import trio

from . import __version__
from ._core.http import Handshake, Request
from ._core.messages import CloseCode, Message
from ._errors import Error
from ._handler import Factory, FactoryLike, Handler
from ._rooms import Rooms
from ._sender import Sender
from ._settings import Settings
from ._websocket import WebSocket

__all__ = ["main"]

DEFAULT_PORT = 3012


class UsageError(Exception):
    """A mistake in what the user asked for: exit status 2, one line."""


# ----------------------------------------------------------------------
# Settings as options


def _none_or(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if text.lower() == "none":
            return None
        return convert(text)

    parse.__name__ = convert.__name__
    return parse


def size(text: str) -> int:
    """Bytes, with an optional binary suffix: ``65536``, ``64k``, ``1M``, ``1G``."""
    units = {"k": 2**10, "m": 2**20, "g": 2**30}
    text = text.strip().lower().removesuffix("ib").removesuffix("b")
    factor = units.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in units else text
    try:
        value = int(float(number) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (e.g. 65536, 64k, 1M)") \
            from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return value


def _positive(convert: Callable[[str], Any], what: str, text: str) -> Any:
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid {what} {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def count(text: str) -> int:
    """A positive integer."""
    value: int = _positive(int, "number", text)
    return value


def seconds(text: str) -> float:
    """A positive number of seconds."""
    value: float = _positive(float, "number of seconds", text)
    return value


#: (flag, Settings field, parser, help) for the valued options.
_VALUED = (
    ("--max-connections", "max_connections", _none_or(count),
     "open connections at once; the next handshake gets 503 (default 10000)"),
    ("--max-message-size", "max_message_size", _none_or(size),
     "largest message accepted, e.g. 64k or 16M; bigger ones get close 1009 (default 1M)"),
    ("--max-send-queue", "max_send_queue", _none_or(size),
     "bytes queued per connection before send() fails (default 4M)"),
    ("--handshake-timeout", "handshake_timeout", _none_or(seconds),
     "seconds for the opening handshake (default 10)"),
    ("--close-timeout", "close_timeout", _none_or(seconds),
     "seconds to wait for the closing handshake (default 10)"),
    ("--ping-interval", "ping_interval", _none_or(seconds),
     "seconds between keepalive pings; 'none' turns them off (default 20)"),
    ("--ping-timeout", "ping_timeout", _none_or(seconds),
     "seconds to wait for a pong before closing (default 20)"),
)


def _add_settings(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "settings", "wskit.Settings fields; 'none' turns a limit or timeout off")
    for flag, field, parse, help_text in _VALUED:
        group.add_argument(flag, dest=f"setting_{field}", type=parse, metavar="VALUE",
                           default=argparse.SUPPRESS, help=help_text)
    group.add_argument("--no-compression", dest="setting_compression", action="store_const",
                       const=None, default=argparse.SUPPRESS,
                       help="disable permessage-deflate")
    group.add_argument("--allowed-origin", dest="setting_allowed_origins", action="append",
                       metavar="ORIGIN", default=argparse.SUPPRESS,
                       help="accept only this Origin (repeatable; '' allows no Origin)")
    group.add_argument("--trust-proxy-headers", dest="setting_trust_proxy_headers",
                       action="store_const", const=True, default=argparse.SUPPRESS,
                       help="believe Forwarded / X-Forwarded-For (behind a proxy only)")


def _settings(args: argparse.Namespace) -> Settings:
    given = {name.removeprefix("setting_"): value for name, value in vars(args).items()
             if name.startswith("setting_")}
    try:
        return Settings(**given)
    except Error as err:
        raise UsageError(str(err)) from err


def _settings_argv(args: argparse.Namespace) -> list[str]:
    """The settings options given, as arguments again (for ``dev``'s child)."""
    argv: list[str] = []
    values = vars(args)
    for flag, field, _, _ in _VALUED:
        if f"setting_{field}" in values:
            value = values[f"setting_{field}"]
            argv += [flag, "none" if value is None else str(value)]
    if "setting_compression" in values:
        argv.append("--no-compression")
    for origin in values.get("setting_allowed_origins", ()):
        argv.append(f"--allowed-origin={origin}")
    if "setting_trust_proxy_headers" in values:
        argv.append("--trust-proxy-headers")
    return argv


# ----------------------------------------------------------------------
# Servers: echo, serve


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default %(default)s; 0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="port to bind (default %(default)s; 0 picks a free one)")
    parser.add_argument("--tls-cert", metavar="FILE",
                        help="serve wss:// with this certificate chain (PEM)")
    parser.add_argument("--tls-key", metavar="FILE",
                        help="private key of --tls-cert (PEM)")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"],
                        help="wskit log level (default %(default)s)")
    _add_settings(parser)


def _server_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    cert, key = args.tls_cert, args.tls_key
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise UsageError("--tls-cert and --tls-key go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load the TLS certificate {cert!r} and key {key!r}: "
                         f"{getattr(exc, 'strerror', None) or exc}") from exc
    return context


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _run_server(factory: FactoryLike, args: argparse.Namespace) -> int:
    settings = _settings(args)
    ssl_context = _server_tls(args)
    _setup_logging(args.log_level)

    async def serve() -> None:
        async with WebSocket(factory, settings) as ws:
            try:
                await ws.listen((args.host, args.port), ssl_context=ssl_context)
            except Error as err:
                ws.shutdown()
                raise UsageError(str(err)) from err
            if getattr(args, "stop_on_eof", False):
                threading.Thread(target=_shutdown_at_eof, args=(ws,), daemon=True).start()

    trio.run(serve)
    return 0


def _shutdown_at_eof(ws: WebSocket) -> None:
    """``dev``'s children: the end of stdin (the parent died) shuts down."""
    with contextlib.suppress(OSError):
        while os.read(sys.stdin.fileno(), 4096):
            pass
    ws.shutdown()  # thread-safe


def _echo(out: Sender) -> Callable[[Message], None]:
    return out.send


def cmd_echo(args: argparse.Namespace) -> int:
    """``wskit echo``: every message goes back to its sender."""
    return _run_server(_echo, args)


def load_factory(target: str) -> FactoryLike:
    """Import ``module:attribute`` (the current directory first on sys.path).

    A :class:`Factory` subclass is instantiated; a Handler class or any
    callable is used as it is. Raises :class:`UsageError` for a malformed
    target, a module that does not exist, or a missing attribute; other
    exceptions raised while importing propagate.
    """
    module_name, attr = _split_target(target)
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise UsageError(f"cannot import module {module_name!r}: {exc}") from exc
        raise  # an import inside the module failed: the traceback tells where
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"module {module_name!r} has no attribute {attr!r}") from None
    if isinstance(obj, type) and issubclass(obj, Factory):
        obj = obj()
    if not callable(obj) and not isinstance(obj, Factory):
        raise UsageError(f"{target} is {type(obj).__name__}, not a factory (a callable "
                         "taking a Sender, a Handler subclass or a wskit.Factory)")
    factory: FactoryLike = obj
    return factory


def _split_target(target: str) -> tuple[str, str]:
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"{target!r}: expected module:attribute, e.g. myapp:factory")
    return module_name, attr


def _add_rooms_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "rooms", "serve a wskit.RoomService class (or any (room_id, ctx) -> service "
                 "callable) as wskit.Rooms: /ws/{room}, /status, /rooms")
    group.add_argument("--rooms", action="store_true",
                       help="wrap the target in wskit.Rooms")
    group.add_argument("--grace", type=_non_negative, metavar="SECONDS",
                       default=argparse.SUPPRESS,
                       help="seconds an empty room is kept for a rejoin (default 10)")
    group.add_argument("--slow-client", choices=["disconnect", "drop"],
                       default=argparse.SUPPRESS,
                       help="a client too slow to read: close it with 1008 (default) or "
                            "drop its messages")
    group.add_argument("--max-client-queue", type=size, metavar="SIZE",
                       default=argparse.SUPPRESS,
                       help="bytes waiting for a client before it counts as slow "
                            "(default 256k)")


_ROOMS_OPTIONS = (("grace", "--grace"), ("slow_client", "--slow-client"),
                  ("max_client_queue", "--max-client-queue"))


def _non_negative(text: str) -> float:
    """A number of seconds, 0 included."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _rooms_argv(args: argparse.Namespace) -> list[str]:
    """The rooms options given, as arguments again (for ``dev``'s child)."""
    values = vars(args)
    argv = ["--rooms"] if values.get("rooms") else []
    for field, flag in _ROOMS_OPTIONS:
        if field in values:
            argv += [flag, str(values[field])]
    return argv


def _rooms_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``wskit.Rooms`` options given; they need ``--rooms``."""
    values = vars(args)
    given = {field: values[field] for field, _ in _ROOMS_OPTIONS if field in values}
    if given and not values.get("rooms"):
        flags = ", ".join(flag for field, flag in _ROOMS_OPTIONS if field in given)
        raise UsageError(f"{flags} need --rooms")
    return given


def _wrap_rooms(factory: FactoryLike, args: argparse.Namespace) -> FactoryLike:
    """``--rooms``: the loaded service inside ``wskit.Rooms``."""
    given = _rooms_options(args)
    if not args.rooms:
        return factory
    if isinstance(factory, Factory):
        raise UsageError(f"{args.target} is a {type(factory).__name__}, not a room service: "
                         "--rooms takes a wskit.RoomService class (serve a wskit.Rooms "
                         "instance without --rooms)")
    try:
        return Rooms(factory, **given)  # type: ignore[arg-type]
    except Error as err:
        raise UsageError(str(err)) from err


def cmd_serve(args: argparse.Namespace) -> int:
    """``wskit serve module:factory``."""
    try:
        factory = load_factory(args.target)
    except UsageError:
        raise
    except Exception:
        traceback.print_exc()
        print(f"wskit: error: importing {args.target} raised (see above)", file=sys.stderr)
        return 1
    return _run_server(_wrap_rooms(factory, args), args)


# ----------------------------------------------------------------------
# dev: serve in a child process, restart it when a source file changes


def _watch_roots(module_name: str) -> list[Path]:
    """Where the module's sources live: its top-level package, or its file.

    Only the top-level name is looked up, which imports nothing.
    """
    top = module_name.partition(".")[0]
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError) as exc:
        raise UsageError(f"cannot import module {module_name!r}: {exc}") from exc
    if spec is None:
        raise UsageError(f"cannot import module {module_name!r}: No module named {top!r}")
    if spec.submodule_search_locations:
        return [Path(p) for p in spec.submodule_search_locations]
    if spec.origin and os.path.isfile(spec.origin):
        return [Path(spec.origin)]
    raise UsageError(f"module {top!r} has no source files to watch")


def _scan(roots: Sequence[Path], only_python: bool = True) -> dict[str, tuple[int, int]]:
    """``{path: (mtime_ns, size)}`` of every watched file under ``roots``."""
    found: dict[str, tuple[int, int]] = {}

    def add(path: str) -> None:
        with contextlib.suppress(OSError):
            stat = os.stat(path)
            found[path] = (stat.st_mtime_ns, stat.st_size)

    for root in roots:
        if root.is_file():
            add(str(root))
            continue
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
            for name in files:
                if not only_python or name.endswith(".py"):
                    add(os.path.join(folder, name))
    return found


def _changed(old: dict[str, tuple[int, int]], new: dict[str, tuple[int, int]]) -> str | None:
    for path in sorted(old.keys() | new.keys()):
        if old.get(path) != new.get(path):
            return path
    return None


def _check_port(host: str, port: int) -> int:
    """Bind like the server will (SO_REUSEADDR), to report a port in use up
    front; port 0 becomes a concrete free port that every restart keeps."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        bound: int = sock.getsockname()[1]
    return bound


def _raise_interrupt(signum: int, frame: Any) -> NoReturn:
    raise KeyboardInterrupt


def cmd_dev(args: argparse.Namespace) -> int:
    """``wskit dev module:factory``: serve, and restart on every source change."""
    module_name, _ = _split_target(args.target)
    roots = _watch_roots(module_name)
    extra = [Path(p) for p in args.watch or ()]
    port = _check_port(args.host, args.port)
    _server_tls(args)  # report bad TLS files now, not from every child
    _settings(args)
    _rooms_options(args)
    argv = [sys.executable, "-m", "wskit", "serve", args.target, "--host", args.host,
            "--port", str(port), "--log-level", args.log_level, "--stop-on-eof",
            *_settings_argv(args), *_rooms_argv(args)]
    if args.tls_cert:
        argv += ["--tls-cert", args.tls_cert, "--tls-key", args.tls_key]
    # A fresh import each time: no stale bytecode when an edit keeps the size
    # and the second of the mtime (what .pyc files are checked against).
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}

    def snapshot() -> dict[str, tuple[int, int]]:
        return {**_scan(roots), **_scan(extra, only_python=False)}

    def start() -> subprocess.Popen[bytes]:
        # Its own process group: Ctrl-C reaches only us, and we stop the
        # child once, gracefully. Its stdin is a pipe that only we hold: if
        # we die (even by SIGKILL), it sees the end of input and shuts down.
        return subprocess.Popen(argv, env=env, stdin=subprocess.PIPE,
                                start_new_session=True)

    def stop(child: subprocess.Popen[bytes]) -> None:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)  # graceful: 1001 to every client
            try:
                child.wait(timeout=args.stop_timeout)
            except subprocess.TimeoutExpired:
                print(f"wskit dev: the server did not stop within {args.stop_timeout}s; "
                      "killing it", file=sys.stderr, flush=True)
                child.kill()
                child.wait()
        if child.stdin is not None:
            child.stdin.close()

    signal.signal(signal.SIGTERM, _raise_interrupt)
    files = snapshot()
    print(f"wskit dev: serving {args.target} on port {port}; watching {len(files)} files "
          f"under {', '.join(str(r) for r in [*roots, *extra])}", file=sys.stderr, flush=True)
    child = start()
    first, reported = True, False
    try:
        while True:
            time.sleep(args.poll_interval)
            code = child.poll()
            if code is not None and not reported:
                reported = True
                if first and code == 2:
                    return 2  # a usage error (missing attribute...): the child said which
                print(f"wskit dev: the server exited with status {code}; waiting for a "
                      "change", file=sys.stderr, flush=True)
            current = snapshot()
            path = _changed(files, current)
            if path is not None:
                files = current
                print(f"wskit dev: {path} changed; restarting", file=sys.stderr, flush=True)
                stop(child)
                child, first, reported = start(), False, False
    except KeyboardInterrupt:
        stop(child)
        return 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdin is not None:
            child.stdin.close()


# ----------------------------------------------------------------------
# client


class _ClientState:
    def __init__(self) -> None:
        self.closed = trio.Event()
        self.opened = False
        #: We started the closing handshake (end of input or /close).
        self.we_closed = False
        self.code: CloseCode | int = CloseCode.ABNORMAL
        self.reason = ""
        #: Set by each message (the client lingers until none comes).
        self.activity = trio.Event()
        self.pings: dict[bytes, float] = {}
        self.pong = trio.Event()
        self.interactive = sys.stdin.isatty()


def _client_factory(args: argparse.Namespace, state: _ClientState) -> type[Handler]:
    headers = []
    for header in args.header or ():
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header {header!r}: expected 'Name: value'")
        headers.append((name.strip(), value.strip()))

    class Client(Handler):
        def build_request(self, url: str) -> Request:
            return Request.for_url(url, headers=headers, subprotocols=args.subprotocol or (),
                                   origin=args.origin)

        def on_open(self, handshake: Handshake) -> None:
            state.opened = True
            if state.interactive:
                chosen = f" (subprotocol {handshake.subprotocol})" if handshake.subprotocol else ""
                print(f"connected to {args.url}{chosen}; type lines to send, /help for "
                      "commands", file=sys.stderr, flush=True)

        def on_message(self, msg: Message) -> None:
            state.activity.set()
            data = msg.data
            line = data if isinstance(data, str) else f"[binary {len(data)} bytes] {data.hex()}"
            try:
                print(line, flush=True)
            except OSError:  # stdout went away (a closed pipe): stop politely
                self.out.close(CloseCode.NORMAL)

        def on_pong(self, data: bytes) -> None:
            sent = state.pings.pop(data, None)
            if sent is not None:
                state.pong.set()
                if data.startswith(b"wskit-cli"):
                    return
                print(f"pong {data.decode('utf-8', 'replace')!r} after "
                      f"{(trio.current_time() - sent) * 1000:.1f} ms", file=sys.stderr, flush=True)

        def on_error(self, err: Error) -> None:
            if not state.opened:
                return  # cmd_client reports a failed connect itself, once
            print(f"wskit: {err}", file=sys.stderr, flush=True)

        def on_close(self, code: CloseCode | int, reason: str) -> None:
            state.code, state.reason = code, reason
            state.closed.set()

    return Client


_HELP = """commands:
  /close [CODE [REASON]]  close the connection (default 1000) and exit
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


async def _pump_stdin(out: Sender, state: _ClientState, linger: float) -> None:
    reader = _LineReader(sys.stdin.fileno())
    try:
        while (line := await reader.readline()) is not None:
            if line.startswith("/") and not line.startswith("//"):
                command, _, rest = line[1:].partition(" ")
                if command == "close":
                    code_text, _, reason = rest.strip().partition(" ")
                    try:
                        out.close(int(code_text) if code_text else CloseCode.NORMAL, reason)
                        state.we_closed = True
                    except (ValueError, Error) as exc:
                        print(f"wskit: /close: {exc}", file=sys.stderr, flush=True)
                        continue
                    return
                if command == "ping":
                    data = rest.encode("utf-8")[:125]
                    state.pings[data] = trio.current_time()
                    out.ping(data)
                elif command == "help":
                    print(_HELP, file=sys.stderr, flush=True)
                else:
                    print(f"wskit: unknown command /{command} (try /help)", file=sys.stderr,
                          flush=True)
                continue
            out.send(line[1:] if line.startswith("//") else line)
            await out.flush()  # backpressure: don't read stdin faster than we send
        # End of input: let the answers in flight arrive, then close normally.
        if linger > 0:
            # The pong proves the server has read everything we sent; then
            # wait until no message came for `linger` seconds.
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
        out.close(CloseCode.NORMAL)
        state.we_closed = True
    except Error:
        return  # the connection closed under us: on_close tells how


def cmd_client(args: argparse.Namespace) -> int:
    """``wskit client URL``: an interactive client, usable in pipes."""
    settings = _settings(args)
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
    state = _ClientState()
    factory = _client_factory(args, state)

    async def run() -> int:
        async with WebSocket(factory, settings) as ws:
            try:
                out = await ws.connect(args.url, ssl_context=ssl_context)
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
        if completed and (state.we_closed or state.code in (CloseCode.NORMAL, CloseCode.AWAY)):
            if state.interactive:
                print(f"closed: {int(state.code)} {state.reason}".rstrip(), file=sys.stderr)
            return 0
        print(f"wskit: connection closed: {int(state.code)} {state.reason}".rstrip(),
              file=sys.stderr, flush=True)
        return 1

    return trio.run(run)


# ----------------------------------------------------------------------
# The parser


def build_parser() -> argparse.ArgumentParser:
    """The ``wskit`` argument parser, with one subcommand per verb."""
    parser = argparse.ArgumentParser(
        prog="wskit",
        description="wskit: callback-style WebSocket servers and clients on Trio.",
        epilog="Run 'wskit COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"wskit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    echo = commands.add_parser(
        "echo", help="run an echo server",
        description="Run an echo server: every message goes back to its sender. "
                    "Ctrl-C closes every connection with 1001 and exits 0.")
    _add_server_options(echo)
    echo.set_defaults(run=cmd_echo)

    client = commands.add_parser(
        "client", help="an interactive client (stdin lines out, messages in)",
        description="Connect to URL. Each line of stdin is sent as a text message; each "
                    "message received is printed on stdout (binary as hex). Status goes to "
                    "stderr. At the end of stdin the client waits for the answers in flight "
                    "(see --linger), closes with 1000 and exits 0 once the closing handshake "
                    "is done. Commands: /close [CODE [REASON]], /ping [TEXT], //TEXT sends "
                    "/TEXT, /help.",
        epilog="example: printf 'hello\\nworld\\n' | wskit client ws://127.0.0.1:3012")
    client.add_argument("url", help="ws:// or wss:// URL")
    client.add_argument("--header", action="append", metavar="'NAME: VALUE'",
                        help="extra handshake header (repeatable)")
    client.add_argument("--subprotocol", action="append", metavar="NAME",
                        help="offer this subprotocol (repeatable)")
    client.add_argument("--origin", help="send this Origin header")
    client.add_argument("--ca-file", metavar="FILE",
                        help="trust this CA bundle (PEM) for wss:// instead of the system's")
    client.add_argument("--linger", type=float, default=0.5, metavar="SECONDS",
                        help="at the end of stdin, wait until the server has read everything "
                             "and no message came for this long before closing "
                             "(default %(default)s; 0 closes at once)")
    _add_settings(client)
    client.set_defaults(run=cmd_client)

    target_help = ("module:attribute of a factory: a function or closure taking a Sender, "
                   "a wskit.Handler subclass, a wskit.Factory (class or instance) or a "
                   "wskit.Router (with --rooms: a wskit.RoomService class); the module is "
                   "imported with the current directory first on sys.path")
    serve = commands.add_parser(
        "serve", help="serve a factory from an importable module",
        description="Serve the factory named by module:attribute (like uvicorn). Ctrl-C or "
                    "SIGTERM closes every connection with 1001 and exits 0.",
        epilog="example: wskit serve examples.router:router --port 8000 "
               "--max-message-size 64k")
    serve.add_argument("target", metavar="module:factory", help=target_help)
    _add_server_options(serve)
    _add_rooms_options(serve)
    serve.add_argument("--stop-on-eof", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(run=cmd_serve)

    dev = commands.add_parser(
        "dev", help="serve a factory and restart it when a source file changes",
        description="Like 'serve', in a child process that is restarted (on the same port) "
                    "whenever a .py file of the module's top-level package changes (mtimes "
                    "are polled). Open connections get 1001 at each restart.",
        epilog="example: wskit dev myapp:factory --port 8000")
    dev.add_argument("target", metavar="module:factory", help=target_help)
    _add_server_options(dev)
    _add_rooms_options(dev)
    dev.add_argument("--watch", action="append", metavar="PATH",
                     help="also restart when a file under PATH changes (repeatable)")
    dev.add_argument("--poll-interval", type=seconds, default=0.5, metavar="SECONDS",
                     help="seconds between two scans of the files (default %(default)s)")
    dev.add_argument("--stop-timeout", type=seconds, default=10.0, metavar="SECONDS",
                     help="seconds a stopping server may take before it is killed "
                          "(default %(default)s)")
    dev.set_defaults(run=cmd_dev)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``wskit`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except UsageError as err:
        print(f"wskit: error: {err}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:  # before the server installed its own handler
        return 130
