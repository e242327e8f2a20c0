"""A reconnecting client: one handler and one ``Sender`` over successive connections.

Theory of operation. A :class:`Session` runs the client connections of one
``connect(..., reconnect=...)`` one after the other. Each is a fresh
:class:`~.driver.Connection` with the same id, the same handler (the factory
runs once) and the same :class:`~.outlet.Outlet`, so the same ``Sender``:
the session is what carries the outlet (``Outlet.carrier``), which makes it
hold sends in its outbox whenever no connection is open. The session is the
connections' ``Host``: it passes everything on to the WebSocket but the
factory's ``connection_lost``, which it calls once, at the very end.

After each connection (opened and ended, or failed to open) the session
decides, in this order: stop for good (the application closed, the
WebSocket shuts down, a stop code or status, ``max_attempts``); else the
delay (what the server asked for, or backoff: ``Reconnect.delay``); then
``on_reconnecting`` may change the delay or stop. The wait happens under the
next connection's scope, already registered, so a shutdown or a close
during it ends it like a dial.

When the session stops, what is still in the outbox is reported to
``on_error`` (kind ``QUEUE``), ``WebSocket.connect`` raises the last error
if no connection ever opened, and the factory's ``connection_lost`` runs.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from .._errors import ConnectionClosed, Error, ErrorKind
from .._settings import Reconnect, Settings
from .client import Opening, run_client
from .dispatch import Dispatcher, Hooks, resolve
from .driver import Connection, Host
from .phase import Phase
from .stats import ConnectionLog, Stats

__all__ = ["Session", "close_wish", "policy_from", "retry_after"]

log = logging.getLogger("wskit.client")

# ``retry-after=5``, ``Retry-After: 2.5``, ``retry after 30`` anywhere in a
# close reason (there is no standard; this mirrors the HTTP header's name).
_REASON_DELAY = re.compile(r"retry[-_ ]after\s*[=:]?\s*(\d{1,9}(?:\.\d+)?)", re.IGNORECASE)
#: Close codes by which a server asks to come back later: 1001 (going away,
#: e.g. shutting down for a deploy), 1012 (service restart), 1013 (try
#: again later, RFC 6455 section 7.4.1 and the IANA registry).
_SERVER_WISH_CODES = frozenset({1001, 1012, 1013})


def policy_from(value: Reconnect | bool | None) -> Reconnect | None:
    """``reconnect=``: a :class:`Reconnect`, ``True`` (the defaults) or off."""
    if value is None or value is False:
        return None
    if value is True:
        return Reconnect()
    if isinstance(value, Reconnect):
        return value
    raise Error(f"reconnect= takes a wskit.Reconnect, True or None, got {value!r}",
                ErrorKind.USAGE)


def close_wish(code: int, reason: str, policy: Reconnect) -> float | None:
    """The delay a server asked for when it closed, or ``None``."""
    found = _REASON_DELAY.search(reason)
    if found:
        return float(found.group(1))
    if code in _SERVER_WISH_CODES:
        return policy.server_delay
    return None


def retry_after(error: Error) -> float | None:
    """Seconds from the ``Retry-After`` header of a refused handshake
    (RFC 9110 section 10.2.3: delay-seconds or an HTTP-date), or ``None``."""
    response = error.response
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None  # an HTTP-date is always GMT; anything else is not one
    return max(0.0, when.timestamp() - time.time())


async def _wait_before_dial(conn: Connection, delay: float) -> bool:
    """Wait under the connection's own scope, so that a shutdown or a close
    meanwhile (``Connection.abort()``) ends the wait like it ends a dial.
    False if it was ended so; the dial then gets a fresh scope (a cancel
    scope is entered once)."""
    with conn.scope:
        await trio.sleep(delay)
    if conn.scope.cancel_called:
        return False
    conn.scope = trio.CancelScope()
    return True


class _Attempt(Opening):
    """One attempt's outcome; the first success also opens the session's."""

    __slots__ = ("session",)

    def __init__(self, session: Opening) -> None:
        super().__init__()
        self.session = session

    def finish(self, error: Error | None = None) -> None:
        super().finish(error)
        if error is None:
            self.session.finish()


class Session:
    """Successive client connections for one handler (module docstring)."""

    def __init__(self, host: Host, policy: Reconnect, url: str,
                 ssl_context: ssl.SSLContext | None, opening: Opening,
                 track: Callable[[Connection], None], rng: random.Random | None = None
                 ) -> None:
        self.host = host
        self.settings: Settings = host.settings
        #: The WebSocket's counters: a session's connections count with the rest.
        self.stats: Stats = host.stats
        self.policy = policy
        self.url = url
        self.ssl_context = ssl_context
        self.opening = opening
        self.track = track
        self.rng = rng if rng is not None else random.Random()
        self.id = 0
        self.handler: Any = None
        self.dispatch: Dispatcher | None = None
        self.conn: Connection | None = None
        #: Why reconnecting stopped ("" while it goes on).
        self.stopped = ""

    @property
    def log(self) -> ConnectionLog:
        """Records about the session (``on_reconnecting``) name its connection id."""
        return ConnectionLog(log, self.id)

    # -- Host: what its connections ask of the WebSocket -----------------


    @property
    def closing(self) -> bool:
        return self.host.closing

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        self.host.spawn(fn, *args)

    def opened(self, conn: Connection) -> None:
        self.host.opened(conn)

    def ended(self, conn: Connection) -> None:
        self.host.ended(conn)

    def release_slot(self, conn: Connection) -> None:
        self.host.release_slot(conn)

    def connection_lost(self, handler: Any) -> None:
        """Once per handler, at the end of the session (see :meth:`run`)."""

    # -- Carrier: what the outlet tells it -------------------------------

    def close_requested(self) -> None:
        """The application called ``close()``: no reconnect after this. A
        connection still being waited for or dialled ends now."""
        if not self.stopped:
            self.stopped = "closed by the application"
        conn = self.conn
        if conn is not None and conn.phase is Phase.CONNECTING:
            conn.abort()

    # -- Dispatcher's owner (on_reconnecting) ----------------------------

    def hook_failed(self) -> None:
        if not self.stopped:
            self.stopped = "on_reconnecting raised"

    # -- the loop ---------------------------------------------------------

    async def run(self, conn: Connection) -> None:
        """Run connections until reconnecting stops. Never raises."""
        self.id = conn.id
        conn.outlet.carrier = self
        attempt = 0
        error: Error | None = None
        try:
            while True:
                self.conn = conn
                tried = _Attempt(self.opening)
                await run_client(conn, self.url, self.ssl_context, tried)
                if self.handler is None and conn.dispatch is not None:
                    self.handler = conn.dispatch.hooks.handler
                    self.dispatch = Dispatcher(Hooks(self.handler), self)
                wish: float | None
                if conn.opened_at is not None:
                    attempt = 0
                    error = ConnectionClosed(conn.close_code, conn.close_reason)
                    wish = close_wish(int(conn.close_code), conn.close_reason, self.policy)
                else:
                    error = tried.error or Error(f"could not connect to {self.url}",
                                                 ErrorKind.IO, connection_id=conn.id)
                    wish = retry_after(error)
                self._check_stop(error, attempt + 1)
                if self.stopped:
                    break
                attempt += 1
                delay = self.policy.delay(attempt, wish, self.rng)
                conn = self._next_connection(conn)
                if not await self._wait(conn, attempt, delay, error):
                    break
        except Exception:  # pragma: no cover - a bug in wskit
            log.exception("connection %d: internal error in wskit's reconnecting", self.id)
            self.stopped = self.stopped or "internal error"
        finally:
            # Shielded and bounded, like on_close: the outbox is reported and
            # the factory told even when a hard shutdown cancels everything.
            deadline = trio.current_time() + (self.settings.close_timeout or 10.0)
            with trio.CancelScope(shield=True, deadline=deadline):
                await self._finish(error)

    def _check_stop(self, error: Error, attempt: int) -> None:
        policy = self.policy
        if self.stopped:
            return
        if self.host.closing:
            self.stopped = "the WebSocket is shutting down"
        elif isinstance(error, ConnectionClosed):
            if int(error.code) in policy.stop_codes:
                self.stopped = f"close code {int(error.code)} ends reconnecting"
        elif error.kind is ErrorKind.USAGE:
            self.stopped = "the connection cannot be opened as asked (bad URL?)"
        elif self.handler is None:
            self.stopped = "no handler (the factory failed)"
        elif error.status is not None and error.status in policy.stop_statuses:
            self.stopped = f"HTTP {error.status} ends reconnecting"
        if not self.stopped and policy.max_attempts is not None and (
                attempt > policy.max_attempts):
            self.stopped = f"gave up after {policy.max_attempts} attempt(s)"

    def _next_connection(self, before: Connection) -> Connection:
        conn = Connection(self, client=True, connection_id=before.id, outlet=before.outlet)
        handler = self.handler
        conn.make_handler = lambda: handler
        conn.outlet.drop_outbox = self.policy.drop_outbox
        self.track(conn)
        self.conn = conn
        return conn

    async def _wait(self, conn: Connection, attempt: int, delay: float, error: Error) -> bool:
        """``on_reconnecting``, then the wait; False if reconnecting stopped."""
        decided = await self._ask_handler(attempt, delay, error)
        if decided is not None and not self.stopped and not self.host.closing:
            log.info("connection %d: reconnecting to %s in %.3gs (attempt %d) after: %s",
                     conn.id, self.url, decided, attempt, error)
            if await _wait_before_dial(conn, decided):
                return True
        if not self.stopped:
            self.stopped = ("the WebSocket is shutting down" if self.host.closing
                            else "on_reconnecting said stop")
        await conn.end()  # never dialled: releases its registration
        return False

    async def _ask_handler(self, attempt: int, delay: float, error: Error) -> float | None:
        """The delay ``on_reconnecting`` settles on, or ``None`` to stop."""
        dispatch = self.dispatch
        hook = dispatch.hooks.on_reconnecting if dispatch is not None else None
        if dispatch is None or hook is None:
            return delay
        try:
            answer = await resolve(hook(attempt, delay, error))
        except Exception as exc:
            await dispatch.failed("on_reconnecting", exc)
            return None
        if answer is None or answer is True:
            return delay
        if answer is False:
            return None
        if isinstance(answer, int | float) and 0 <= answer < math.inf:
            return float(answer)
        await dispatch.error(Error(
            f"on_reconnecting returned {answer!r}: return None or True to wait {delay:.3g}s, "
            "a number of seconds to wait instead, or False to stop", ErrorKind.USAGE,
            connection_id=self.id))
        return None

    async def _finish(self, error: Error | None) -> None:
        conn = self.conn
        if conn is not None:
            count, size = conn.outlet.stop_holding()
        else:  # pragma: no cover - run() sets it first thing
            count = size = 0
        log.info("connection %d: stopped reconnecting to %s: %s", self.id, self.url,
                 self.stopped or "done")
        if count and self.dispatch is not None:
            await self.dispatch.error(Error(
                f"{count} message(s) ({size} bytes) sent while connection {self.id} was not "
                f"open were not sent: reconnecting stopped ({self.stopped})",
                ErrorKind.QUEUE, connection_id=self.id))
        if not self.opening.done.is_set():
            self.opening.finish(error or Error(f"connection to {self.url} was cancelled",
                                               ErrorKind.IO, connection_id=self.id))
        if self.handler is not None:
            self.host.connection_lost(self.handler)
