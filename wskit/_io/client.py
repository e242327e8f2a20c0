"""The client side: parse the URL, dial, do the opening handshake, run.

:func:`run_client` never raises: whether the connection opened or why it
could not is told to :class:`Opening` (what ``WebSocket.connect`` awaits)
and, for a handler that exists by then, to its ``on_error``.
"""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

import trio

from .._core.handshake import ClientHandshake
from .._core.http import Request, Response
from .._core.protocol import ConnectionCore
from .._errors import Error, ErrorKind
from .dispatch import resolve
from .driver import Connection, extensions_for, make_handshake
from .proxy import open_stream
from .transport import SOCKET_ERRORS, or_inf, why

__all__ = ["Opening", "parse_url", "run_client"]


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


async def run_client(conn: Connection, url: str, ssl_context: ssl.SSLContext | None,
                     opening: Opening) -> None:
    """Connect, handshake and run to the end. Never raises."""
    try:
        with conn.scope:
            try:
                await _dial(conn, url, ssl_context)
            except Error as err:
                conn.log.info("connection %d: could not open %s: %s", conn.id, url, err)
                if conn.dispatch is not None:
                    await conn.dispatch.error(err)
                opening.finish(err)
            else:
                await conn.run_open(opening.finish)
    except Exception:
        conn.log.exception("connection %d: internal error in wskit", conn.id)
    finally:
        opening.finish(Error(f"connection to {url} was cancelled", ErrorKind.IO,
                             connection_id=conn.id))
        await conn.end()


async def _dial(conn: Connection, url: str, ssl_context: ssl.SSLContext | None) -> None:
    settings = conn.settings
    secure, host, port, host_header = parse_url(url)
    make, conn.make_handler = conn.make_handler, None
    assert make is not None
    try:
        hooks = conn.set_handler(make())
    except Exception as exc:
        raise _wrap(conn, "the factory", exc) from exc
    request = Request.for_url(url)
    if hooks.build_request is not None:
        try:
            request = await resolve(hooks.build_request(url))
        except Exception as exc:
            raise _wrap(conn, "build_request", exc) from exc
        if not isinstance(request, Request):
            raise Error(f"build_request returned {request!r}, not a wskit.Request",
                        ErrorKind.CUSTOM, connection_id=conn.id)
    extensions = extensions_for(conn)
    hs = ClientHandshake(request, host=host_header, extensions=extensions,
                         max_header_size=settings.max_header_size)
    timeout = or_inf(settings.handshake_timeout)
    response: Response | None = None
    with trio.move_on_after(timeout) as scope:
        try:
            stream: trio.abc.Stream = await open_stream(host, port, secure=secure,
                                                        settings=settings,
                                                        connection_id=conn.id)
        except OSError as exc:
            # The cause is one OSError, not trio's group of every attempt:
            # the message already names each reason (never an ExceptionGroup
            # in what a user sees).
            raise Error(f"could not connect to {host}:{port}: {_os_reason(exc)}",
                        ErrorKind.IO, connection_id=conn.id) from _first_os_error(exc)
        transport = conn.attach(stream)
        try:
            if secure:
                context = ssl_context or ssl.create_default_context()
                stream = trio.SSLStream(stream, context, server_hostname=host,
                                        https_compatible=True)
                transport = conn.attach(stream)
                try:
                    await stream.do_handshake()
                except trio.BrokenResourceError as exc:
                    cause = exc.__cause__ or exc
                    hint = (" (a private CA? pass ssl_context= with it; on the command "
                            "line, --ca-file)"
                            if isinstance(cause, ssl.SSLCertVerificationError) else "")
                    raise Error(f"TLS handshake with {host}:{port} failed: {cause}{hint}",
                                ErrorKind.SSL, connection_id=conn.id) from cause
            await stream.send_all(hs.initiate())
            while response is None:
                response = hs.receive_data(await stream.receive_some(settings.read_size))
        except SOCKET_ERRORS as exc:
            raise Error(f"connection to {host}:{port} lost during the handshake: "
                        f"{why(exc)}", ErrorKind.IO, connection_id=conn.id) from exc
        except Error as err:
            raise err.for_connection(conn.id) from err.__cause__
    if scope.cancelled_caught or response is None:
        raise Error(f"opening handshake with {url} timed out after {timeout}s",
                    ErrorKind.IO, connection_id=conn.id)
    if hooks.on_response is not None:
        try:
            await resolve(hooks.on_response(response))
        except Exception as exc:
            raise _wrap(conn, "on_response", exc) from exc
    conn.core = ConnectionCore(client=True, extensions=hs.enabled_extensions,
                               max_message_size=settings.max_message_size,
                               trailing_data=hs.trailing_data)
    conn.bytes_in = len(hs.trailing_data)  # frames that came with the response
    conn.handshake = make_handshake(conn, transport, request, response,
                                    hs.enabled_extensions)


def _wrap(conn: Connection, name: str, exc: Exception) -> Error:
    error = Error(f"{name} raised {type(exc).__name__}: {exc}", ErrorKind.CUSTOM,
                  connection_id=conn.id)
    error.__cause__ = exc
    return error


def _first_os_error(exc: OSError) -> OSError:
    """The first attempt's own error behind trio's "all attempts … failed"."""
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup):
        for inner in cause.exceptions:
            if isinstance(inner, OSError):
                inner.__context__ = None
                return inner
    return exc


def _os_reason(exc: OSError) -> str:
    """The errno text behind trio's "all attempts to connect … failed"."""
    def reason(err: OSError) -> str:
        text = err.strerror or str(err)
        # trio words it "Error connecting to ('127.0.0.1', 80): Connection
        # refused"; the address is in our message already.
        return text.rpartition("): ")[2] if text.startswith("Error connecting to") else text

    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup):
        reasons = {reason(e) for e in cause.exceptions if isinstance(e, OSError)}
        if reasons:
            return "; ".join(sorted(reasons))
    return reason(exc)


def parse_url(url: str) -> tuple[bool, str, int, str]:
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
