"""Settings: every limit, timeout and switch, in one frozen object.

Sizes are bytes, times are seconds, and ``None`` turns a limit, timeout or
keepalive off. Each default says where it comes from; they are chosen so that
a server exposed to the internet is safe without tuning.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import random
from collections.abc import Collection
from typing import Literal

from ._core.proxy import parse_proxy_url
from ._errors import Error, ErrorKind

__all__ = ["DEFAULT_STOP_CODES", "DEFAULT_STOP_STATUSES", "LOOPBACK", "Reconnect", "Settings"]

#: What ``trust_proxy_headers=True`` trusts: a proxy on this machine.
LOOPBACK = ("127.0.0.0/8", "::1")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """Configuration shared by every connection of a :class:`WebSocket`.

    Build one with keywords and pass it as ``settings=``; use
    ``dataclasses.replace(settings, field=value)`` to derive another.
    """

    # -- limits ---------------------------------------------------------
    #: Open connections at once (server side). The next handshake gets
    #: 503. ws-rs's 100 surprised its users; 10,000 fits this machine's
    #: memory many times over and still stops a flood.
    max_connections: int | None = 10_000
    #: Largest message accepted, after decompression; a bigger one is
    #: refused with close 1009. 1 MiB, like websockets.
    max_message_size: int | None = 2**20
    #: Bytes of frames queued for one connection before ``send()`` raises
    #: ``ErrorKind.QUEUE``. 4 MiB: room for a few large messages, bounded
    #: against a peer that never reads.
    max_send_queue: int | None = 4 * 2**20
    #: Bytes that other threads may have handed to the WebSocket's Trio
    #: thread and that it has not taken yet (sends, broadcasts and room sends
    #: made from a thread, all connections together). A thread whose send
    #: would exceed it *blocks* until the Trio thread catches up, so memory
    #: stays bounded however fast a producer thread is. 16 MiB: four full
    #: send queues in flight.
    max_thread_queue: int | None = 16 * 2**20
    #: Bytes of the HTTP request or response head (request line plus
    #: headers). 16 KiB, like h11's default; nginx's default is 8 KiB x 4.
    max_header_size: int = 16 * 2**10
    #: Bytes read from the socket at once: 64 KiB lets wsproto parse large
    #: frames in big pieces (it is ~2x faster than with 4 KiB reads).
    read_size: int = 64 * 2**10

    # -- timeouts ------------------------------------------------------
    #: Seconds for the TLS and opening handshake; a peer trickling its
    #: request is dropped after that. 10 s, like websockets.
    handshake_timeout: float | None = 10.0
    #: Seconds to wait for the peer's close frame (and then its end of the
    #: TCP stream) after we sent ours. 10 s, like websockets.
    close_timeout: float | None = 10.0

    # -- keepalive -----------------------------------------------------
    #: Seconds between pings sent on a quiet connection. 20 s, like
    #: websockets: under the idle timeouts of common proxies (60 s).
    ping_interval: float | None = 20.0
    #: Seconds to wait for the pong before the peer is considered gone.
    ping_timeout: float | None = 20.0

    # -- protocol ------------------------------------------------------
    #: ``"deflate"`` offers (client) and accepts (server) permessage-deflate
    #: (RFC 7692); ``None`` turns compression off.
    compression: Literal["deflate"] | None = "deflate"
    #: Window of our own compressor, 9-15 (2**bits bytes). 12 keeps zlib's
    #: state near 32 KiB per connection instead of 256 KiB at 15, for a
    #: slightly worse ratio; websockets defaults to the same.
    deflate_window_bits: int = 12
    #: Reset the compression context after every message, both directions:
    #: less memory between messages, worse ratio on similar messages.
    deflate_no_context_takeover: bool = False
    #: Origins allowed to open a connection (server side), compared with the
    #: ``Origin`` header; others get 403. ``None`` allows any origin and
    #: requests without the header. Put ``""`` in the collection to also
    #: allow clients that send no ``Origin`` (non-browser clients).
    allowed_origins: Collection[str] | None = None

    # -- sockets and process -------------------------------------------
    #: Disable Nagle's algorithm: WebSocket messages are latency-bound.
    tcp_nodelay: bool = True
    #: SIGINT and SIGTERM shut down gracefully (close 1001 to everyone)
    #: when the WebSocket runs in the main thread.
    shutdown_on_interrupt: bool = True

    # -- behind a reverse proxy (see the proxies guide) ------------------
    #: Shorthand for ``trusted_proxies=("127.0.0.0/8", "::1")``: believe the
    #: forwarding header of a proxy on this machine. Ignored when
    #: ``trusted_proxies`` is given.
    trust_proxy_headers: bool = False
    #: Addresses and networks (``"10.0.0.5"``, ``"10.0.0.0/8"``) of the
    #: reverse proxies in front of this server. Only a TCP peer in this list
    #: may tell us the client's address (``Handshake.remote_addr()``, the
    #: logs); from anyone else the header is ignored. Empty: no proxy.
    trusted_proxies: Collection[str] = ()
    #: How many proxies in front of us append to the header: the client is
    #: at most this many entries from the right (fewer if an entry is not a
    #: trusted proxy). 1 for one nginx; a forged entry left of it is ignored.
    proxy_hops: int = 1
    #: The header the trusted proxies set: ``"x-forwarded-for"`` (nginx's
    #: ``$proxy_add_x_forwarded_for``) or ``"forwarded"`` (RFC 7239). The
    #: other header is ignored: a client could have sent it.
    proxy_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"

    # -- operations -------------------------------------------------------
    #: Answer ``GET`` on this path (on every listening port, before the
    #: factory) with Prometheus metrics. Needs ``pip install 'wskit[metrics]'``.
    #: ``None`` (the default): no metrics endpoint.
    metrics_path: str | None = None
    #: Answer ``GET`` on this path with 200 ``ok``, before the origin check
    #: and the factory (a plain server's liveness check; once shutting down
    #: the port refuses connections). ``None``: no health check.
    health_path: str | None = None

    # -- client --------------------------------------------------------
    #: HTTP proxy for client connections (``CONNECT``, RFC 9110 section
    #: 9.3.6; ``wss://`` runs TLS to the server inside the tunnel).
    #: ``"auto"`` reads the environment like the rest of the Python
    #: ecosystem (websockets >= 15, urllib, requests, httpx): ``wss_proxy``
    #: or ``https_proxy`` for ``wss://``; ``ws_proxy``, ``https_proxy`` or
    #: ``http_proxy`` for ``ws://``; ``no_proxy`` lists hosts to reach
    #: directly, and loopback is always direct (as Go and Chromium do).
    #: ``None`` never uses a proxy; ``"http://user:password@host:port"``
    #: uses that one for every URL. See docs/howto/client-proxy.md. Left
    #: out of ``repr()``: the URL may hold a password.
    proxy: str | None = dataclasses.field(default="auto", repr=False)

    # -- cluster -------------------------------------------------------
    #: Where the nodes of a cluster meet: ``"redis://[:password@]host:port/db"``
    #: (``rediss://…?ssl_ca_certs=/path/ca.pem`` for TLS, the server's host
    #: name checked), or ``None`` (the default) for one process
    #: alone. With it, ``connection_id`` is unique in the cluster, and
    #: ``Comms``, broadcasts and ``wskit.Rooms`` reach clients on every
    #: node sharing that Redis database (one database per cluster). Needs
    #: the ``wskit[redis]`` extra (coredis). See docs/topics/scaling.md.
    backplane: str | None = None
    #: Seconds a node's registration, and its ownership of a room, last in
    #: Redis without renewal (renewed five times per lease). A dead node's
    #: rooms are re-created on a live node within about this time; remote
    #: ``comms.ids`` are as fresh as a fifth of it. 5 s: a dead node is
    #: noticed quickly, a busy node's event loop has ample slack.
    backplane_lease: float = 5.0

    def __post_init__(self) -> None:
        for name in (
            "max_connections",
            "max_message_size",
            "max_send_queue",
            "max_thread_queue",
            "handshake_timeout",
            "close_timeout",
            "ping_interval",
            "ping_timeout",
        ):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise Error(
                    f"Settings.{name} must be positive or None, got {value!r}",
                    ErrorKind.USAGE,
                )
        for name in ("max_header_size", "read_size"):
            if getattr(self, name) <= 0:
                raise Error(
                    f"Settings.{name} must be positive, got {getattr(self, name)!r}",
                    ErrorKind.USAGE,
                )
        if self.compression not in ("deflate", None):
            raise Error(
                f"Settings.compression must be 'deflate' or None, got {self.compression!r}",
                ErrorKind.USAGE,
            )
        if not 9 <= self.deflate_window_bits <= 15:
            raise Error(
                f"Settings.deflate_window_bits must be 9-15, got {self.deflate_window_bits!r}",
                ErrorKind.USAGE,
            )
        self._check_proxies()
        for name in ("metrics_path", "health_path"):
            path = getattr(self, name)
            if path is not None and not (isinstance(path, str) and path.startswith("/")):
                raise Error(f"Settings.{name} must be a path starting with '/' or None, "
                            f"got {path!r}", ErrorKind.USAGE)
        if self.metrics_path is not None and self.metrics_path == self.health_path:
            raise Error("Settings.metrics_path and health_path must differ", ErrorKind.USAGE)
        if self.proxy is not None and not isinstance(self.proxy, str):
            raise Error(
                f"Settings.proxy must be 'auto', None or an http:// URL, got {self.proxy!r}",
                ErrorKind.USAGE,
            )
        if self.proxy not in ("auto", None):
            parse_proxy_url(self.proxy, source="Settings.proxy")  # raises USAGE
        if self.backplane is not None:
            check_backplane_url(self.backplane)
        if not self.backplane_lease >= 0.5:
            raise Error(
                f"Settings.backplane_lease must be at least 0.5 seconds, got "
                f"{self.backplane_lease!r}",
                ErrorKind.USAGE,
            )
        if isinstance(self.allowed_origins, str):
            raise Error(
                "Settings.allowed_origins takes a collection of origins, not one string",
                ErrorKind.USAGE,
            )

    def _check_proxies(self) -> None:
        if isinstance(self.trusted_proxies, str):
            raise Error("Settings.trusted_proxies takes a collection of addresses or "
                        "networks, not one string: trusted_proxies=['10.0.0.5']",
                        ErrorKind.USAGE)
        entries = tuple(self.trusted_proxies)
        for entry in entries:
            try:
                ipaddress.ip_network(str(entry).strip(), strict=False)
            except ValueError:
                raise Error(f"Settings.trusted_proxies: {entry!r} is not an IP address or "
                            "network (e.g. '10.0.0.5', '10.0.0.0/8', '::1')",
                            ErrorKind.USAGE) from None
        object.__setattr__(self, "trusted_proxies", entries)  # hashable, fixed
        if isinstance(self.proxy_hops, bool) or not isinstance(self.proxy_hops, int) \
                or self.proxy_hops < 1:
            raise Error(f"Settings.proxy_hops must be an integer >= 1, got "
                        f"{self.proxy_hops!r}", ErrorKind.USAGE)
        if self.proxy_header not in ("x-forwarded-for", "forwarded"):
            raise Error("Settings.proxy_header must be 'x-forwarded-for' or 'forwarded', "
                        f"got {self.proxy_header!r}", ErrorKind.USAGE)

    def proxies(self) -> tuple[str, ...]:
        """The proxies whose forwarding header is believed: ``trusted_proxies``,
        or the loopback networks under ``trust_proxy_headers``; ``()``: none."""
        if self.trusted_proxies:
            return tuple(self.trusted_proxies)
        return LOOPBACK if self.trust_proxy_headers else ()

# ----------------------------------------------------------------------
# Reconnecting clients

#: Close codes after which a reconnecting client stops for good: 1008
#: (policy violation) says the server refuses *this* client, so asking
#: again would only be refused again. Add your own 4000-4999 codes.
DEFAULT_STOP_CODES: frozenset[int] = frozenset({1008})
#: HTTP statuses of a refused handshake that end reconnecting: the request
#: itself is wrong (400), not allowed (401, 403) or aimed at nothing (404,
#: 410); asking again the same way cannot succeed. 5xx, 408 and 429 are
#: retried.
DEFAULT_STOP_STATUSES: frozenset[int] = frozenset({400, 401, 403, 404, 410})


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Reconnect:
    """How a client reconnects: pass it as ``connect(..., reconnect=Reconnect())``.

    After a connection drops, or an attempt to open one fails, the next
    attempt waits a delay chosen in this order:

    1. a close code in ``stop_codes`` or an HTTP status in ``stop_statuses``
       ends reconnecting for good (so does ``max_attempts``);
    2. a delay the server asked for: a ``Retry-After`` header on the refused
       handshake (any status, typically 503 or 429), or ``retry-after=N``
       (``retry-after: N`` too) in the reason of its close frame; else
       ``server_delay`` after close code 1012 (restart), 1013 (try again
       later) or 1001 (going away). It is never shortened: with jitter the
       wait is drawn between it and one and a half times it; it is capped
       at ``max_server_delay``;
    3. otherwise exponential backoff with full jitter: attempt ``n`` (1, 2,
       ...) waits a uniformly random time in ``[0, min(max_delay,
       initial_delay * factor ** (n - 1))]``, so clients dropped together
       do not come back together.

    The attempt count starts again at 1 once a connection opens. Times are
    seconds.
    """

    #: Upper bound of the first attempt's delay (with full jitter, the
    #: first retry comes within a second).
    initial_delay: float = 1.0
    #: Growth of the bound per failed attempt.
    factor: float = 2.0
    #: The bound stops growing here: one minute, like most browsers' and
    #: websockets' reconnecting clients (90 s).
    max_delay: float = 60.0
    #: ``"full"``: a uniformly random delay up to the bound (AWS's "full
    #: jitter", the best spread after a mass disconnection); ``None``: the
    #: bound itself (deterministic; for tests and single clients).
    jitter: Literal["full"] | None = "full"
    #: Consecutive failed attempts before giving up; ``None`` tries forever.
    max_attempts: int | None = None
    #: Close codes that end reconnecting (see :data:`DEFAULT_STOP_CODES`).
    stop_codes: Collection[int] = DEFAULT_STOP_CODES
    #: HTTP statuses that end reconnecting (:data:`DEFAULT_STOP_STATUSES`).
    stop_statuses: Collection[int] = DEFAULT_STOP_STATUSES
    #: What 1012, 1013 and 1001 ask for when the reason names no delay: a
    #: server that restarts is usually back within a couple of seconds.
    server_delay: float = 2.0
    #: The longest delay a server may ask for: a wrong ``Retry-After``
    #: cannot park a client for days. Ten minutes.
    max_server_delay: float = 600.0
    #: ``True``: what was sent while no connection was open is dropped when
    #: the next connection opens (and reported to ``on_error``, kind
    #: ``QUEUE``) instead of being sent on it.
    drop_outbox: bool = False

    def __post_init__(self) -> None:
        for name in ("initial_delay", "max_delay", "server_delay", "max_server_delay"):
            value = getattr(self, name)
            # The backoff's own delays must be positive: at 0 a client would
            # spin against a server that refuses it. A server may ask for 0.
            low = 0.0 if name.endswith("server_delay") else 1e-9
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                    low <= value < float("inf")):
                raise Error(f"Reconnect.{name} must be a number of seconds "
                            f"{'>= 0' if low == 0 else '> 0'}, got {value!r}", ErrorKind.USAGE)
        if isinstance(self.factor, bool) or not isinstance(self.factor, int | float) or not (
                1 <= self.factor < float("inf")):
            raise Error(f"Reconnect.factor must be >= 1, got {self.factor!r}", ErrorKind.USAGE)
        if self.jitter not in ("full", None):
            raise Error(f"Reconnect.jitter must be 'full' or None, got {self.jitter!r}",
                        ErrorKind.USAGE)
        if self.max_attempts is not None and (
                isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int)
                or self.max_attempts < 1):
            raise Error(f"Reconnect.max_attempts must be a positive int or None, got "
                        f"{self.max_attempts!r}", ErrorKind.USAGE)
        for name in ("stop_codes", "stop_statuses"):
            value = getattr(self, name)
            if isinstance(value, str | bytes | int) or not all(
                    isinstance(v, int) for v in value):
                raise Error(f"Reconnect.{name} takes a collection of ints, got {value!r}",
                            ErrorKind.USAGE)
            object.__setattr__(self, name, frozenset(int(v) for v in value))

    def delay(self, attempt: int, wish: float | None, rng: random.Random) -> float:
        """Seconds to wait before attempt number ``attempt`` (1, 2, ...).

        ``wish`` is what the server asked for (``None`` if nothing); ``rng``
        draws the jitter (a seeded one gives reproducible delays).
        """
        if wish is not None:
            wish = min(max(wish, 0.0), self.max_server_delay)
            return wish + rng.uniform(0, wish / 2) if self.jitter else wish
        exponent = min(max(attempt - 1, 0), 1024)  # no float overflow after years
        try:
            bound = min(self.max_delay, self.initial_delay * self.factor ** exponent)
        except OverflowError:
            bound = self.max_delay
        return rng.uniform(0, bound) if self.jitter else bound


def check_backplane_url(url: object) -> None:
    """Raise ``Error(USAGE)`` unless ``url`` is a ``redis://`` or ``rediss://`` URL."""
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://")):
        raise Error(
            f"Settings.backplane takes a Redis URL, 'redis://[:password@]host:port/db' or "
            f"'rediss://…' for TLS, got {redact(url)!r}",
            ErrorKind.USAGE,
        )


def redact(url: object) -> object:
    """The URL without its password, for messages and logs."""
    if not isinstance(url, str) or "@" not in url:
        return url
    scheme, sep, rest = url.partition("://")
    credentials, _, host = rest.rpartition("@")
    user = credentials.partition(":")[0]
    return f"{scheme}{sep}{user + ':' if user else ':'}***@{host}" if sep else "***"
