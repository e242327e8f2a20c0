"""Settings: every limit, timeout and switch, in one frozen object.

Sizes are bytes, times are seconds, and ``None`` turns a limit, timeout or
keepalive off. Each default says where it comes from; they are chosen so that
a server exposed to the internet is safe without tuning.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Literal

from ._errors import Error, ErrorKind

__all__ = ["Settings"]


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
    #: Believe ``Forwarded`` / ``X-Forwarded-For`` in
    #: ``Handshake.remote_addr()``. Only safe behind a proxy that sets them.
    trust_proxy_headers: bool = False

    # -- cluster -------------------------------------------------------
    #: Where the nodes of a cluster meet: ``"redis://[:password@]host:port/db"``
    #: (``rediss://`` for TLS), or ``None`` (the default) for one process
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
