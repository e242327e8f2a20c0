"""The plain HTTP a :class:`wskit.Rooms` answers on its port: ``GET /status``
(a health check), ``GET /rooms`` (the JSON summary) and the optional page."""

from __future__ import annotations

import json
from typing import Any, Protocol

from .._core.http import Response


class _Served(Protocol):
    """What is answered (``wskit.Rooms``)."""

    @property
    def status_path(self) -> str | None: ...
    @property
    def rooms_path(self) -> str | None: ...
    @property
    def page(self) -> str | bytes | None: ...

    def summary(self) -> dict[str, Any]: ...
    def health(self) -> str: ...


def plain_response(rooms: _Served, path: str) -> Response | None:
    """The answer to a plain (not WebSocket) request for ``path``, or
    ``None`` when it is none of ``status_path``, ``rooms_path`` and ``/``
    with a ``page``."""
    if path == rooms.status_path:
        # 200 either way: a degraded node still serves its own clients, and
        # every node degrades at once when Redis goes (a 503 from all of
        # them would take the whole service down).
        return Response(200, rooms.health() + "\n")
    if path == rooms.rooms_path:
        body = json.dumps(rooms.summary(), indent=1) + "\n"
        return Response(200, body, {"Content-Type": "application/json",
                                    "Cache-Control": "no-store"})
    if path == "/" and rooms.page is not None:
        return Response(200, rooms.page, {"Content-Type": "text/html; charset=utf-8"})
    return None
