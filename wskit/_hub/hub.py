"""The hub: one WebSocket's registry, backplane and thread portal together.

What a ``Sender``, ``Comms`` and rooms need from the WebSocket beyond their
own connection, behind public names: they never see the ``WebSocket``
itself. Methods are safe from any thread unless they say otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .._errors import Error, ErrorKind
from .._io.outlet import byte_size
from .._io.portal import Portal
from .._settings import Reconnect
from .backplane import Backplane, LocalBackplane
from .registry import Registry

__all__ = ["Hub"]

log = logging.getLogger("wskit.cluster")


class Hub:
    """Registry, backplane and portal of one WebSocket (module docstring)."""

    __slots__ = ("_closing", "_connect", "_shutdown", "_spawn", "backplane", "on_error",
                 "portal", "registry")

    def __init__(self, portal: Portal, *, spawn: Callable[..., None],
                 connect: Callable[..., None], shutdown: Callable[[], None],
                 closing: Callable[[], bool]) -> None:
        self.portal = portal
        self.registry = Registry()
        self.backplane: Backplane = LocalBackplane(self.registry)
        self._spawn = spawn
        self._connect = connect
        self._shutdown = shutdown
        self._closing = closing
        #: ``Comms.on_error``: where failures of cross-node deliveries are
        #: reported, in the Trio thread (``None``: logged).
        self.on_error: Callable[[Error], Any] | None = None

    def report(self, error: Error) -> None:
        """A delivery to another node failed after its send returned: hand it
        to ``on_error``, or log it (an outage of the backplane itself is
        logged once by the backplane, not per message)."""
        handler = self.on_error
        if handler is not None:
            try:
                handler(error)
            except Exception:
                log.exception("Comms.on_error raised")
        elif error.kind is not ErrorKind.BACKPLANE:
            log.warning("%s", error)

    @property
    def closing(self) -> bool:
        """Whether the WebSocket has begun shutting down."""
        return self._closing()

    def broadcast(self, data: str | bytes, exclude: frozenset[int] = frozenset()) -> None:
        """To every open connection but ``exclude``, from any thread."""
        self.registry.require_whole("broadcast")
        portal = self.portal
        if portal.in_trio_thread():
            self.backplane.broadcast(data, exclude)
        else:
            portal.run_soon(self.backplane.broadcast, data, exclude, size=byte_size(data))

    def close_all(self, code: int, reason: str) -> None:
        """In the Trio thread: start the closing handshake everywhere."""
        for outlet in list(self.registry.open.values()):
            outlet.close(code, reason)

    def control_all(self, ping: bool, data: bytes) -> None:
        """In the Trio thread: a ping or pong to every open connection."""
        for outlet in list(self.registry.open.values()):
            if outlet.is_open:
                outlet.control(ping, data)

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """In the Trio thread: run ``fn(*args)`` in the WebSocket's nursery."""
        self._spawn(fn, *args)

    def connect(self, url: str, reconnect: Reconnect | None = None) -> None:
        """Open a client connection from the same WebSocket (any thread);
        ``reconnect`` is a checked ``Reconnect`` policy or ``None``."""
        self.portal.call(self._connect, url, reconnect)

    def shutdown(self) -> None:
        self._shutdown()
