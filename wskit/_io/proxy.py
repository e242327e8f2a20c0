"""Dial a WebSocket server directly or through an HTTP ``CONNECT`` proxy.

:func:`open_stream` is the one call the client's dial path makes: it decides
whether ``Settings.proxy`` sends this URL through a proxy, opens the TCP
connection (to the server, or to the proxy and then the tunnel), and hands
back a stream that reaches the server. What goes over it next is unchanged:
for ``wss://`` the client runs TLS *inside* the tunnel, with the server's
host name for SNI and the certificate check (the proxy sees only an opaque
stream), then the WebSocket handshake with the server's ``Host``.

The decisions and the bytes of the ``CONNECT`` exchange are sans-I/O, in
``wskit._core.proxy``; this module only reads the environment and moves
bytes. Every wait here is inside the client's ``handshake_timeout``.
"""

from __future__ import annotations

import logging
import os

import trio

from .._core.proxy import ProxyConnect, ProxyURL, parse_proxy_url, proxy_from_environment
from .._errors import Error, ErrorKind
from .._settings import Settings
from .transport import SOCKET_ERRORS, why

__all__ = ["choose_proxy", "open_stream"]

log = logging.getLogger("wskit.client")


def choose_proxy(setting: str | None, secure: bool, host: str,
                 port: int) -> tuple[ProxyURL, str] | None:
    """The proxy for ``ws[s]://host:port`` under ``Settings.proxy``, and where
    it came from; ``None`` to connect directly. Reads the environment now
    (``"auto"``), so a change to it applies to the next connection."""
    if setting is None:
        return None
    if setting == "auto":
        return proxy_from_environment(secure, host, port, os.environ)
    return parse_proxy_url(setting, source="Settings.proxy"), "Settings.proxy"


async def open_stream(host: str, port: int, *, secure: bool, settings: Settings,
                      connection_id: int) -> trio.abc.Stream:
    """A stream to ``host:port``, through the proxy that ``settings.proxy`` picks.

    Without a proxy this is ``trio.open_tcp_stream(host, port)``, and its
    ``OSError`` is the caller's to word. Through a proxy every failure is a
    :class:`Error` that names the proxy: ``IO`` when it cannot be reached
    or hangs up, ``HTTP`` (with ``status``) when it refuses the tunnel
    (407: credentials), ``PROTOCOL`` when it does not speak HTTP.
    """
    try:
        chosen = choose_proxy(settings.proxy, secure, host, port)
    except Error as err:  # a malformed *_proxy variable
        raise err.for_connection(connection_id) from err.__cause__
    if chosen is None:
        return await trio.open_tcp_stream(host, port)
    proxy, source = chosen
    log.debug("connection %d: to %s:%d through proxy %s (%s)", connection_id, host, port,
              proxy.display, source)
    try:
        stream = await trio.open_tcp_stream(proxy.host, proxy.port)
    except OSError as exc:
        reason, first = _connect_failure(exc)
        raise Error(f"could not connect to proxy {proxy.display} (from {source}): {reason}; "
                    "check the proxy's address, or reach the server directly (NO_PROXY, "
                    "or Settings(proxy=None))", ErrorKind.IO,
                    connection_id=connection_id) from first
    try:
        await _tunnel(stream, proxy, host, port, settings)
    except BaseException as exc:
        await trio.aclose_forcefully(stream)
        if isinstance(exc, Error):
            raise exc.for_connection(connection_id) from exc.__cause__
        if isinstance(exc, SOCKET_ERRORS):
            raise Error(f"proxy {proxy.display} dropped the connection during CONNECT: "
                        f"{why(exc)}", ErrorKind.IO, connection_id=connection_id) from exc
        raise
    return stream


async def _tunnel(stream: trio.SocketStream, proxy: ProxyURL, host: str, port: int,
                  settings: Settings) -> None:
    connect = ProxyConnect(proxy, host, port, max_header_size=settings.max_header_size)
    await stream.send_all(connect.initiate())
    # Read what the proxy sends until its answer is complete. A server that
    # speaks first would leave its bytes in trailing_data; neither TLS nor
    # the WebSocket handshake lets a server speak first.
    while not connect.receive_data(await stream.receive_some(settings.read_size)):
        pass
    if connect.trailing_data:
        raise Error(f"the server behind proxy {proxy.display} sent data before the client "
                    "spoke", ErrorKind.PROTOCOL)


def _connect_failure(exc: OSError) -> tuple[str, OSError]:
    """Why trio's "all attempts to connect … failed" failed, and its first error.

    The reasons are the errno texts of each attempt (never trio's wording,
    which repeats the address); the first attempt's error is the cause to
    chain, never the exception group (a user never sees one).
    """
    cause = exc.__cause__
    attempts = [e for e in cause.exceptions if isinstance(e, OSError)] \
        if isinstance(cause, BaseExceptionGroup) else []
    errors = attempts or [exc]
    reasons = sorted({os.strerror(e.errno) if e.errno else str(e) for e in errors})
    first = errors[0]
    first.__context__ = None
    return "; ".join(reasons), first
