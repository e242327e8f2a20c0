"""What the connections of one WebSocket did: the operator's log lines and totals.

One line at INFO when a connection opens and one when it closes (with its
close code, duration and traffic), one per refused handshake with its HTTP
status, failed TLS handshakes at INFO but at most a few per second. Every
record carries ``connection_id`` (and the line's other fields) as
``extra=`` attributes, so a JSON formatter can emit them as fields.

The per-message cost stays where it must: the connection counts its own
messages and bytes (integer increments in the driver and the outlet);
:class:`Stats` adds them up only when a connection ends, and the metrics
endpoint reads the live connections only when scraped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from typing import Any, Protocol

import trio

from .._core.messages import CloseCode

__all__ = ["ConnectionLog", "Counted", "Stats"]

#: TLS handshake failures logged per window; the rest are counted and
#: summed up in the next line that is logged.
TLS_LOG_BURST = 5
TLS_LOG_WINDOW = 10.0


class ConnectionLog(logging.LoggerAdapter[logging.Logger]):
    """A connection's logger: ``connection_id`` in every record, and the
    ``extra=`` a call gives merged in (the stdlib adapter would replace it)."""

    def __init__(self, logger: logging.Logger, connection_id: int) -> None:
        super().__init__(logger, {"connection_id": connection_id})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        given = kwargs.get("extra")
        base = self.extra or {}
        kwargs["extra"] = {**base, **given} if given else base
        return msg, kwargs


class Counted(Protocol):
    """What a connection tells about itself (``driver.Connection``)."""

    id: int
    client: bool
    opened_at: float | None
    close_code: CloseCode | int
    close_reason: str
    lost_why: str
    peer: str
    remote: str | None
    path: str
    messages_in: int
    messages_out: int
    bytes_in: int
    bytes_out: int

    @property
    def log(self) -> ConnectionLog: ...


def _code_name(code: CloseCode | int) -> str:
    return f"{int(code)} {code.name}" if isinstance(code, CloseCode) else str(code)


class Stats:
    """Totals of one WebSocket's connections (module docstring). Trio thread only."""

    __slots__ = ("_tls_logged", "_tls_suppressed", "_tls_window", "bytes_in", "bytes_out",
                 "closed", "handshake_failures", "messages_in", "messages_out", "on_rtt",
                 "opened", "tls_failures")

    def __init__(self) -> None:
        #: Connections that opened (both sides).
        self.opened = 0
        #: Connections that ended after opening, by close code.
        self.closed: dict[int, int] = {}
        #: Handshakes answered with an error status (>= 400), by status.
        self.handshake_failures: dict[int, int] = {}
        #: TLS handshakes that failed (server side).
        self.tls_failures = 0
        #: Traffic of the connections that ended (live ones count their own).
        self.messages_in = self.messages_out = self.bytes_in = self.bytes_out = 0
        #: Called with each keepalive round-trip time, in seconds (metrics).
        self.on_rtt: Callable[[float], None] | None = None
        self._tls_window = -TLS_LOG_WINDOW
        self._tls_logged = 0
        self._tls_suppressed = 0

    # -- connections ----------------------------------------------------

    def connection_opened(self, conn: Counted) -> None:
        self.opened += 1
        log = conn.log
        if log.isEnabledFor(logging.INFO):
            where = "to" if conn.client else "by"
            log.info("connection %d: opened %s %s on %s", conn.id, where, _who(conn),
                     conn.path, extra={"event": "open", **_fields(conn)})

    def connection_ended(self, conn: Counted) -> None:
        """The connection left the registry: its traffic joins the totals
        (from now on the metrics count it here, not among the live ones)."""
        self.messages_in += conn.messages_in
        self.messages_out += conn.messages_out
        self.bytes_in += conn.bytes_in
        self.bytes_out += conn.bytes_out

    def connection_closed(self, conn: Counted) -> None:
        """An opened connection ended (its close code known), before ``on_close``."""
        code = int(conn.close_code)
        self.closed[code] = self.closed.get(code, 0) + 1
        log = conn.log
        if not log.isEnabledFor(logging.INFO) or conn.opened_at is None:
            return
        duration = trio.current_time() - conn.opened_at
        lost = f" (lost: {conn.lost_why})" if conn.lost_why else ""
        log.info("connection %d: closed %s %r%s after %.3fs, in %d msg %d B, out %d msg "
                 "%d B, %s on %s", conn.id, _code_name(conn.close_code), conn.close_reason,
                 lost, duration, conn.messages_in, conn.bytes_in, conn.messages_out,
                 conn.bytes_out, _who(conn), conn.path,
                 extra={"event": "close", "close_code": code,
                        "close_reason": conn.close_reason, "lost": conn.lost_why or None,
                        "duration": round(duration, 6), "messages_in": conn.messages_in,
                        "messages_out": conn.messages_out, "bytes_in": conn.bytes_in,
                        "bytes_out": conn.bytes_out, **_fields(conn)})

    # -- handshakes -----------------------------------------------------

    def refused(self, log: ConnectionLog, connection_id: int, status: int, peer: str,
                path: str, why: str, *, level: int = logging.INFO) -> None:
        """A handshake answered with an error status: counted, one line."""
        self.handshake_failures[status] = self.handshake_failures.get(status, 0) + 1
        if log.isEnabledFor(level):
            log.log(level, "connection %d: refused %d by %s on %s: %s", connection_id,
                    status, peer, path, why,
                    extra={"event": "refused", "status": status, "peer": peer,
                           "path": path, "reason": why})

    def tls_failed(self, log: ConnectionLog, connection_id: int, peer: str, why: str) -> None:
        """A failed TLS handshake: INFO, at most :data:`TLS_LOG_BURST` lines per
        :data:`TLS_LOG_WINDOW` seconds (a scanner must not flood the log)."""
        self.tls_failures += 1
        now = trio.current_time()
        if now - self._tls_window >= TLS_LOG_WINDOW:
            self._tls_window, self._tls_logged = now, 0
        if self._tls_logged >= TLS_LOG_BURST:
            self._tls_suppressed += 1
            return
        self._tls_logged += 1
        suppressed, self._tls_suppressed = self._tls_suppressed, 0
        more = f" ({suppressed} more not logged)" if suppressed else ""
        log.info("connection %d: TLS handshake with %s failed: %s%s", connection_id, peer,
                 why, more, extra={"event": "tls_failed", "peer": peer, "reason": why,
                                   "suppressed": suppressed})

    def rtt(self, seconds: float) -> None:
        if self.on_rtt is not None:
            self.on_rtt(seconds)

    @property
    def closed_total(self) -> int:
        return sum(self.closed.values())


def _who(conn: Counted) -> str:
    """``host:port`` of the peer, or ``client (via proxy:port)`` behind a trusted proxy."""
    if conn.remote is not None and conn.remote != conn.peer.rpartition(":")[0]:
        return f"{conn.remote} (via {conn.peer})"
    return conn.peer


def _fields(conn: Counted) -> dict[str, Any]:
    return {"peer": conn.peer, "remote": conn.remote or conn.peer.rpartition(":")[0],
            "path": conn.path, "side": "client" if conn.client else "server"}
