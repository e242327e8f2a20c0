"""The blocking one-liners: ``wskit.listen`` and ``wskit.connect``."""

from __future__ import annotations

import ssl

import trio

from ._errors import Error, ErrorKind
from ._handler import FactoryLike
from ._io.reconnect import policy_from
from ._settings import Reconnect, Settings
from ._websocket import WebSocket

__all__ = ["connect", "listen"]


def listen(
    addr: str | tuple[str, int],
    factory: FactoryLike,
    *,
    settings: Settings | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Serve ``factory`` on ``addr`` (``"host:port"``) until shut down.

    Blocks. Shutdown comes from ``Sender.shutdown()``, ``WebSocket.shutdown()``
    or SIGINT/SIGTERM (``Settings.shutdown_on_interrupt``): every open
    connection gets close code 1001, then this returns normally. Raises
    ``wskit.Error`` (kind ``IO``) if ``addr`` can't be bound.
    """

    _refuse_inside_trio("listen", "await ws.listen(addr)")

    async def main() -> None:
        async with WebSocket(factory, settings) as ws:
            await ws.listen(addr, ssl_context=ssl_context)

    trio.run(main)


def connect(
    url: str,
    factory: FactoryLike,
    *,
    settings: Settings | None = None,
    ssl_context: ssl.SSLContext | None = None,
    reconnect: Reconnect | bool | None = None,
) -> None:
    """Connect to ``url`` (``ws://`` or ``wss://``) and run until it closes.

    Blocks until this connection, and every connection opened from it with
    ``Sender.connect()``, has closed. Raises ``wskit.Error`` if the connection
    can't be opened: refused or timed out (``IO``), handshake rejected
    (``HTTP``, with ``status``), bad URL (``USAGE``), TLS (``SSL``).

    ``reconnect=`` (a :class:`wskit.Reconnect`, or ``True`` for its
    defaults) keeps the same handler going over new connections whenever one
    drops, until the policy stops or the handler closes; then this returns
    (or raises the last error if no connection ever opened).
    """

    _refuse_inside_trio("connect", "await ws.connect(url)")
    policy_from(reconnect)  # a wrong value fails here, before any loop runs

    async def main() -> None:
        async with WebSocket(factory, settings) as ws:
            await ws.connect(url, ssl_context=ssl_context, reconnect=reconnect)

    trio.run(main)


def _refuse_inside_trio(name: str, instead: str) -> None:
    """The blocking helpers run their own Trio loop; inside one they can't."""
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return  # not inside trio.run(): fine
    raise Error(f"wskit.{name}() blocks and runs its own Trio loop, so it cannot be called "
                f"from async code; there, use 'async with wskit.WebSocket(factory) as ws: "
                f"{instead}'", ErrorKind.USAGE)
