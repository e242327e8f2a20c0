"""The accept policy: whether a server lets a request in, decided without I/O.

A pure function of the request, the settings and the server's load, so that
every refusal can be tested without a socket. The order matters and is the
one operators expect: a server that is shutting down refuses everything
(503), then the ``Origin`` check (403, before anything else can leak), then
the upgrade headers (400/426), then ``max_connections`` (503 with
``Retry-After``). What passes goes on to the factory and ``on_request``;
:func:`final_answer` turns their verdict into the response to send.
"""

from __future__ import annotations

import dataclasses

from .._errors import Error
from .._settings import Settings
from .handshake import ServerHandshake
from .http import Request, Response

__all__ = ["Refusal", "admit", "error_response", "final_answer"]


@dataclasses.dataclass(frozen=True, slots=True)
class Refusal:
    """A request turned away: the answer to send and why (for the log).

    ``overload`` marks refusals an operator should see at WARNING (the
    server is full); the others are the client's doing (INFO).
    """

    response: Response
    why: str
    overload: bool = False


def admit(request: Request, settings: Settings, *, in_use: int, closing: bool) -> Refusal | None:
    """``None`` if the request may go on to the factory; else the refusal.

    ``in_use`` is the number of ``max_connections`` slots taken now;
    ``closing`` whether the server is shutting down.
    """
    if closing:
        return Refusal(Response(503, "server is shutting down\n"), "server is shutting down")
    allowed = settings.allowed_origins
    if allowed is not None and (request.origin or "") not in allowed:
        return Refusal(Response(403, "origin not allowed\n"),
                       f"origin {request.origin!r} refused")
    if not request.is_websocket:
        return None  # plain HTTP: on_request may answer it (a page, a health check)
    try:
        ServerHandshake.check_upgrade(request)
    except Error as err:
        return Refusal(error_response(err), f"bad upgrade: {err}")
    limit = settings.max_connections
    if limit is not None and in_use >= limit:
        return Refusal(Response(503, "too many connections, try again later\n",
                                [("Retry-After", "1")]),
                       f"{in_use} connections open (max_connections)", overload=True)
    return None


def final_answer(request: Request, response: Response | None) -> Response:
    """What to send once ``on_request`` answered ``response`` (``None``: accept).

    An upgrade accepted by default gets its 101; a plain HTTP request that
    nothing answered gets 426, and a 101 for a request that is not an upgrade
    is refused with 426 too (it cannot be honoured).
    """
    if response is None:
        if request.is_websocket:
            return request.accept()
        return Response(426, "this endpoint speaks WebSocket only\n",
                        [("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")])
    if response.status == 101 and not request.is_websocket:
        return Response(426, "not a WebSocket upgrade request\n", [("Upgrade", "websocket")])
    return response


def error_response(err: Error) -> Response:
    """The HTTP answer to a request refused with ``err``; 426 says which
    version we speak (RFC 6455 section 4.4)."""
    extra = [("Sec-WebSocket-Version", "13")] if err.status == 426 else None
    return Response(err.status or 400, f"{err}\n", extra)
