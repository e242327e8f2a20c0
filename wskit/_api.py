"""The blocking one-liners: ``wskit.listen`` (one process, or a supervisor of
several) and ``wskit.connect``."""

from __future__ import annotations

import logging
import pickle
import ssl
import sys

import trio

from ._errors import Error, ErrorKind
from ._handler import FactoryLike
from ._io.reconnect import policy_from
from ._settings import Reconnect, Settings
from ._supervisor import Supervisor, open_sockets, stop_timeout_for
from ._target import load_factory, target_of
from ._websocket import WebSocket, parse_addr

__all__ = ["connect", "listen"]


def listen(
    addr: str | tuple[str, int],
    factory: FactoryLike | str,
    *,
    settings: Settings | None = None,
    ssl_context: ssl.SSLContext | None = None,
    workers: int = 1,
) -> None:
    """Serve ``factory`` on ``addr`` (``"host:port"``) until shut down.

    Blocks. Shutdown comes from ``Sender.shutdown()``, ``WebSocket.shutdown()``
    or SIGINT/SIGTERM (``Settings.shutdown_on_interrupt``): every open
    connection gets close code 1001, then this returns normally. Raises
    ``wskit.Error`` (kind ``IO``) if ``addr`` can't be bound.

    ``factory`` may be named as ``"module:attr"`` (imported here, the
    current directory first on ``sys.path``).

    ``workers=N`` (N > 1) serves the port from N processes, this one being
    their supervisor (what ``wskit serve --workers N`` does; see
    ``docs/topics/workers.md``). Each worker imports the factory, so it must
    be ``"module:attr"`` or a module-level function or class of an
    importable module (not of the script being run); ``settings`` is sent
    to each worker; ``ssl_context`` cannot cross a process boundary, so for
    TLS use ``wskit serve --workers N --tls-cert … --tls-key …`` or a
    proxy. SIGINT/SIGTERM stop every worker gracefully and this returns; a
    worker that keeps failing at start-up ends it with ``wskit.Error``
    (``USAGE`` for a usage error, ``CUSTOM`` for a crash). Must be called
    from the main thread.
    """

    _refuse_inside_trio("listen", "await ws.listen(addr)")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise Error(f"workers must be a positive int, got {workers!r}", ErrorKind.USAGE)
    if workers > 1:
        _supervise(addr, factory, settings, ssl_context, workers)
        return
    made = load_factory(factory) if isinstance(factory, str) else factory

    async def main() -> None:
        async with WebSocket(made, settings) as ws:
            await ws.listen(addr, ssl_context=ssl_context)

    trio.run(main)


def _supervise(addr: str | tuple[str, int], factory: FactoryLike | str,
               settings: Settings | None, ssl_context: ssl.SSLContext | None,
               workers: int) -> None:
    if ssl_context is not None:
        raise Error("an ssl.SSLContext cannot be handed to worker processes: with workers > 1 "
                    "use 'wskit serve --workers N --tls-cert FILE --tls-key FILE', or "
                    "terminate TLS in a proxy", ErrorKind.USAGE)
    target = target_of(factory)
    settings = settings if settings is not None else Settings()
    host, port = parse_addr(addr)
    level = logging.getLogger("wskit").getEffectiveLevel()
    name = next((name for limit, name in _LEVELS if level <= limit), "error")
    command = [sys.executable, "-m", "wskit", "serve", target, "--log-level", name]
    sockets = open_sockets(host, port)
    try:
        supervisor = Supervisor(command, workers, sockets, payload=pickle.dumps(settings),
                                stop_timeout=stop_timeout_for(settings.close_timeout))
        status = supervisor.run()
    finally:
        for sock in sockets:
            sock.close()
    if status != 0:
        kind = ErrorKind.USAGE if status == 2 else ErrorKind.CUSTOM
        raise Error(supervisor.error or f"the workers stopped with status {status}", kind)


_LEVELS = ((logging.DEBUG, "debug"), (logging.INFO, "info"), (logging.WARNING, "warning"))


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
