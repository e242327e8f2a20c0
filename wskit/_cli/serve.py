"""``wskit echo`` and ``wskit serve``: the server options, loading
``module:attribute``, and running a server until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import ssl
import sys
import threading
import traceback
from collections.abc import Callable

import trio

from .. import _target
from .._core.messages import Message
from .._errors import Error, ErrorKind
from .._handler import FactoryLike
from .._sender import Sender
from .._websocket import WebSocket
from ..rooms import Rooms
from .logs import FORMATS, setup_logging
from .options import DEFAULT_PORT, UsageError, add_settings, settings_from
from .rooms import rooms_endpoints, wrap_rooms

log = logging.getLogger("wskit.cli")


def add_server_options(parser: argparse.ArgumentParser) -> None:
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
                        help="log level (default %(default)s: a line per connection opened "
                             "and closed; 'warning' keeps only trouble)")
    parser.add_argument("--log-format", default="text", choices=FORMATS,
                        help="'json': one JSON object per line, with the connection's "
                             "fields (default %(default)s)")
    add_settings(parser)


def server_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
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


def _run_server(factory: FactoryLike, args: argparse.Namespace) -> int:
    settings = settings_from(args)
    ssl_context = server_tls(args)
    setup_logging(args.log_level, args.log_format)

    try:
        websocket = WebSocket(factory, settings)  # e.g. --metrics-path without the extra
    except Error as err:
        raise UsageError(str(err)) from err

    async def serve() -> None:
        async with websocket as ws:
            try:
                host, port = await ws.listen((args.host, args.port), ssl_context=ssl_context)
            except Error as err:
                ws.shutdown()
                raise UsageError(str(err)) from err
            if isinstance(factory, Rooms):
                for line in rooms_endpoints(factory, ssl_context is not None, host, port):
                    log.info("%s", line)
            if getattr(args, "stop_on_eof", False):
                threading.Thread(target=_shutdown_at_eof, args=(ws,), daemon=True).start()

    try:
        trio.run(serve)
    except Error as err:
        if err.kind is not ErrorKind.BACKPLANE:
            raise
        print(f"wskit: error: {err}", file=sys.stderr, flush=True)  # Redis unreachable
        return 1
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
    """:func:`wskit._target.load_factory`, a mistake as a :class:`UsageError`."""
    try:
        return _target.load_factory(target)
    except Error as err:
        if err.kind is not ErrorKind.USAGE:
            raise
        raise UsageError(str(err)) from err


def split_target(target: str) -> tuple[str, str]:
    try:
        return _target.split_target(target)
    except Error as err:
        raise UsageError(str(err)) from err


def import_app(target: str) -> FactoryLike | None:
    """:func:`load_factory`; an application that raises while it is imported
    gets its traceback and one line on stderr, and ``None`` back (exit 1)."""
    try:
        return load_factory(target)
    except UsageError:
        raise
    except Exception:
        traceback.print_exc()
        print(f"wskit: error: importing {target} raised (see above)", file=sys.stderr)
        return None


def cmd_serve(args: argparse.Namespace) -> int:
    """``wskit serve module:factory``."""
    factory = import_app(args.target)
    if factory is None:
        return 1
    return _run_server(wrap_rooms(factory, args), args)
