"""``wskit echo`` and ``wskit serve``: the server options, loading
``module:attribute``, and running a server until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import ssl
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

import trio

from .._core.messages import Message
from .._errors import Error, ErrorKind
from .._handler import Factory, FactoryLike
from .._sender import Sender
from .._websocket import WebSocket
from .options import DEFAULT_PORT, UsageError, add_settings, settings_from
from .rooms import wrap_rooms


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
                        help="wskit log level (default %(default)s)")
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


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _run_server(factory: FactoryLike, args: argparse.Namespace) -> int:
    settings = settings_from(args)
    ssl_context = server_tls(args)
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
    """Import ``module:attribute`` (the current directory first on sys.path).

    A :class:`Factory` subclass is instantiated; a Handler class or any
    callable is used as it is. Raises :class:`UsageError` for a malformed
    target, a module that does not exist, or a missing attribute; other
    exceptions raised while importing propagate.
    """
    module_name, attr = split_target(target)
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


def split_target(target: str) -> tuple[str, str]:
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"{target!r}: expected module:attribute, e.g. myapp:factory")
    return module_name, attr


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
    return _run_server(wrap_rooms(factory, args), args)
