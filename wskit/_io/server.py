"""The server side: listeners, the accept loop, and the opening handshake.

:func:`serve` runs one accepted connection to its end: it reads the request
(h11, in the core), asks the accept policy (``_core/accept.py``), then the
factory and ``on_request``, writes the 101 or the refusal, and hands an
opened connection to the driver. A peer that never sends a request holds
no handler and no ``max_connections`` slot: the factory runs only once the
request has been read.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from .._core.accept import admit, error_response, final_answer
from .._core.handshake import ServerHandshake, render_response
from .._core.http import Request, Response
from .._core.protocol import ConnectionCore
from .._errors import Error, ErrorKind
from .dispatch import resolve
from .driver import Connection, Host, extensions_for, make_handshake
from .transport import SOCKET_ERRORS, Transport, or_inf, why

__all__ = ["ServerHost", "accept_loop", "adopt_listener", "open_listeners", "serve"]

log = logging.getLogger("wskit")

# accept() errors that mean "out of resources for now" (trio.serve_listeners
# retries the same ones after the same pause), not a broken listener.
_ACCEPT_RETRY = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_ACCEPT_RETRY_DELAY = 0.1


class ServerHost(Host, Protocol):
    """What the server side needs beyond :class:`Host`: the load, for
    admission, and the answers it gives itself (health, metrics)."""

    @property
    def slots_in_use(self) -> int: ...
    def take_slot(self, conn: Connection) -> None: ...
    def own_answer(self, request: Request) -> Response | None:
        """The response to a request for ``Settings.health_path`` or
        ``metrics_path``; ``None`` for any other request."""


async def open_listeners(host: str, port: int) -> list[trio.SocketListener]:
    try:
        return await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        raise Error(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                    ErrorKind.IO) from exc


def adopt_listener(sock: socket.socket) -> trio.SocketListener:
    """A listener on a socket someone else bound and put in listening state:
    one inherited from a supervisor (``--workers``) or from systemd."""
    try:
        return trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    except (TypeError, ValueError, OSError) as exc:
        raise Error(f"cannot listen on {sock!r}: {exc} (pass a bound TCP socket on which "
                    "listen() was called)", ErrorKind.USAGE) from exc


async def accept_loop(listener: trio.SocketListener, nursery: trio.Nursery,
                      ssl_context: ssl.SSLContext | None,
                      serve_stream: Callable[[trio.abc.Stream], Awaitable[None]]) -> None:
    """trio.serve_listeners' accept loop, without the aclose_forcefully it
    wraps around every handler (a cancel scope and a checkpoint: ~7% of a
    handshake): a connection always closes its own stream."""
    async with listener:
        while True:
            try:
                stream: trio.abc.Stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in _ACCEPT_RETRY:
                    raise
                log.error("accept failed: %s; retrying in %ss",
                          os.strerror(exc.errno or 0), _ACCEPT_RETRY_DELAY)
                await trio.sleep(_ACCEPT_RETRY_DELAY)
                continue
            if ssl_context is not None:
                stream = trio.SSLStream(stream, ssl_context, server_side=True,
                                        https_compatible=True)
            nursery.start_soon(serve_stream, stream)


async def serve(conn: Connection, host: ServerHost, stream: trio.abc.Stream) -> None:
    """Run an accepted connection to its end. Never raises."""
    transport = conn.attach(stream)
    try:
        with conn.scope:
            if await _handshake(conn, host, transport):
                await conn.run_open()
        if conn.scope.cancelled_caught and conn.opened_at is None and not conn.lost_why:
            conn.log.info("connection %d: handshake from %s timed out after %ss",
                          conn.id, transport.peer(), conn.settings.handshake_timeout)
    except Exception:
        conn.log.exception("connection %d: internal error in wskit", conn.id)
    finally:
        await conn.end()


async def _handshake(conn: Connection, host: ServerHost, transport: Transport) -> bool:
    settings = conn.settings
    hs = ServerHandshake(max_header_size=settings.max_header_size)
    timeout = settings.handshake_timeout
    # The connection's own scope carries the deadline (a scope less per
    # connection); serve() says so when it expires. Set only when we must
    # wait: most requests come whole with the connection.
    timed = False
    if isinstance(transport.stream, trio.SSLStream):
        if timeout is not None:
            conn.scope.deadline, timed = trio.current_time() + timeout, True
        try:
            await transport.stream.do_handshake()
        except SOCKET_ERRORS as exc:
            host.stats.tls_failed(conn.log, conn.id, transport.peer(), why(exc))
            return False
    try:
        # The first read right away, and without waiting on plain TCP:
        # accepting was a checkpoint already.
        request = None
        if transport.fd is not None:
            data = transport.read_ready()
            if data is not None:
                request = hs.receive_data(data)
        if request is None:
            if timeout is not None and not timed:
                conn.scope.deadline, timed = trio.current_time() + timeout, True
            request = hs.receive_data(await transport.read(yield_first=False))
            while request is None:
                request = hs.receive_data(await transport.read())
    except Error as err:
        # A peer that leaves without a request (a TCP health check, a port
        # probe) is routine: DEBUG. A malformed request is INFO.
        if err.status is None:
            conn.log.debug("connection %d: no request from %s: %s", conn.id,
                           transport.peer(), err)
            return False
        host.stats.refused(conn.log, conn.id, err.status, transport.peer(), "?",
                           f"invalid request: {err}")
        await _respond(conn, transport, error_response(err))
        return False
    except SOCKET_ERRORS as exc:
        conn.log.debug("connection %d: lost during handshake: %s", conn.id, why(exc))
        return False
    if timed:
        conn.scope.deadline = math.inf

    if settings.health_path is not None or settings.metrics_path is not None:
        own = host.own_answer(request)
        if own is not None:
            await _respond(conn, transport, own)
            return False
    refusal = admit(request, settings, in_use=host.slots_in_use, closing=host.closing)
    if refusal is not None:
        host.stats.refused(conn.log, conn.id, refusal.response.status, transport.peer(),
                           request.path, refusal.why,
                           level=logging.WARNING if refusal.overload else logging.INFO)
        await _respond(conn, transport, refusal.response)
        return False
    if request.is_websocket:
        host.take_slot(conn)  # now, before any await: concurrent handshakes can't overshoot

    make, conn.make_handler = conn.make_handler, None  # not kept while idle
    assert make is not None
    try:
        hooks = conn.set_handler(make())
    except Exception as exc:
        # Logged once, with its traceback; counted as a 500 without a second line.
        conn.log.error("connection %d: the factory raised %s: %s", conn.id,
                       type(exc).__name__, exc, exc_info=exc)
        host.stats.refused(conn.log, conn.id, 500, transport.peer(), request.path,
                           "the factory raised", level=logging.DEBUG)
        await _respond(conn, transport, Response(500, "internal server error\n"))
        return False
    dispatch = conn.dispatch
    assert dispatch is not None

    response: Response | None = None
    if hooks.on_request is not None:
        try:
            response = await resolve(hooks.on_request(request))
        except Exception as exc:
            await dispatch.failed("on_request", exc)  # logged there, with its traceback
            host.stats.refused(conn.log, conn.id, 500, transport.peer(), request.path,
                               "on_request raised", level=logging.DEBUG)
            await _respond(conn, transport, Response(500, "internal server error\n"))
            return False
        if response is not None and not isinstance(response, Response):
            await dispatch.failed("on_request", TypeError(
                f"on_request returned {response!r}, not a Response or None"))
            await _respond(conn, transport, Response(500, "internal server error\n"))
            return False
    by_hook = response is not None
    response = final_answer(request, response)
    if response.status != 101:
        if response.status >= 400:
            host.stats.refused(conn.log, conn.id, response.status, transport.peer(),
                               request.path, "on_request refused it" if by_hook
                               else response.reason)
        await _respond(conn, transport, response)
        return False

    head, extensions = ServerHandshake.accept(request, response, extensions_for(conn))
    conn.core = ConnectionCore(client=False, extensions=extensions,
                               max_message_size=settings.max_message_size,
                               trailing_data=hs.trailing_data)
    conn.bytes_in = len(hs.trailing_data)  # frames that came with the request
    conn.handshake = make_handshake(conn, transport, request, response, extensions)
    try:
        await transport.write_raw(head)
    except (OSError, *SOCKET_ERRORS):
        return False
    return True


async def _respond(conn: Connection, transport: Transport, response: Response) -> None:
    """Answer with a plain HTTP response, then close gracefully."""
    conn.log.debug("connection %d: HTTP %d", conn.id, response.status)
    try:
        with trio.move_on_after(or_inf(conn.settings.close_timeout)):
            await transport.write_raw(render_response(response))
    except (OSError, *SOCKET_ERRORS):
        return
    await transport.close_gracefully(client=False, grace=conn.settings.close_timeout,
                                     scope=conn.scope)
