"""``Sender``: how a handler (or any thread) talks to its connection.

Every method but :meth:`Sender.flush` is non-blocking and safe to call from
any thread. Calls made in the WebSocket's own Trio thread act at once; calls
from other threads are handed to that thread in order (the portal keeps the
order of one thread's calls), after the queue limit was checked in the
calling thread so that ``send`` raises there. What other threads hand over
is bounded by ``Settings.max_thread_queue``: past it, the calling thread
waits for the Trio thread to catch up.

A ``Sender`` holds its connection's :class:`~wskit._io.outlet.Outlet` and the
WebSocket's :class:`~wskit._hub.hub.Hub`, never the driver or the WebSocket.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._core.messages import BinaryMessage, CloseCode, Sendable, TextMessage, to_payload
from ._core.protocol import check_close
from ._errors import Error, ErrorKind
from ._hub.delivery import send_from_anywhere
from ._io.outlet import Outlet, Timeout
from ._io.reconnect import policy_from
from ._settings import Reconnect

if TYPE_CHECKING:
    from ._hub.comms import Comms
    from ._hub.hub import Hub

__all__ = ["Sender"]

_NO_PARAMS: Mapping[str, str] = types.MappingProxyType({})


class Sender:
    """The handle a handler uses to act on its connection (``self.out``).

    ``broadcaster()`` returns a Sender of the whole WebSocket: its ``send``,
    ``ping`` and ``close`` act on every open connection.
    """

    __slots__ = ("_comms", "_outlet", "_portal", "connection_id", "hub", "route_params")

    def __init__(self, outlet: Outlet | None, hub: Hub, comms: Comms) -> None:
        self._outlet = outlet
        #: The WebSocket's registry, backplane and portal: for layers built
        #: on wskit (rooms); handlers need not touch it.
        self.hub = hub
        self._portal = hub.portal
        self._comms = comms
        #: Unique per connection in the process, and in the cluster with a
        #: backplane (``connection_id >> 32`` is then its node); 0 for a
        #: broadcaster.
        self.connection_id = outlet.connection_id if outlet is not None else 0
        #: The parameters of the route that matched this connection, set by
        #: ``wskit.Router`` (per connection; read them with ``Router.params``).
        self.route_params: Mapping[str, str] = _NO_PARAMS

    def send(self, msg: Sendable) -> None:
        """Queue a message: ``str`` → text, bytes-like → binary.

        Raises ``Error(kind=QUEUE)`` if the outgoing queue is over
        ``Settings.max_send_queue`` or the connection is closed, and
        ``Error(kind=USAGE)`` for something that is not a message. Sent
        before the handshake completes, it is delivered right after it.
        """
        cls = msg.__class__
        # str, bytes and received messages (an echo) go to the outlet as
        # they are (the hot path).
        data: str | bytes = (
            msg if cls is str or cls is TextMessage or cls is bytes or cls is BinaryMessage
            else to_payload(msg))  # type: ignore[assignment]
        outlet = self._outlet
        if outlet is None:
            self.hub.broadcast(data)
        elif threading.get_ident() == self._portal.thread_id:
            outlet.send(data)
        else:
            send_from_anywhere(self._portal, outlet, data)

    def broadcast(self, msg: Sendable) -> None:
        """Send to every open connection of this WebSocket (this one included).

        A recipient whose queue is full misses the message; that is reported
        to its own ``on_error`` and never raised here.
        """
        self.hub.broadcast(to_payload(msg))

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Start the closing handshake (idempotent); ``on_close`` follows.

        Raises ``Error(kind=USAGE)`` for a code that may not be sent
        (1005, 1006, 1015, < 1000, 1004, 1014-2999, >= 5000) or a reason over
        123 UTF-8 bytes.
        """
        code = int(code)
        check_close(code, reason)  # raise in the caller's thread, not later
        if self._outlet is None:
            self._portal.call(self.hub.close_all, code, reason)
        else:
            self._portal.call(self._outlet.close, code, reason)

    def ping(self, data: bytes = b"") -> None:
        """Send a ping (at most 125 bytes); ``on_pong`` gets the answer."""
        self._control(True, bytes(data))

    def pong(self, data: bytes = b"") -> None:
        """Send an unsolicited pong (pings are answered for you)."""
        self._control(False, bytes(data))

    def _control(self, ping: bool, data: bytes) -> None:
        if len(data) > 125:
            raise Error("ping/pong payload must be at most 125 bytes (RFC 6455 5.5)",
                        ErrorKind.USAGE)
        if self._outlet is None:
            self._portal.call(self.hub.control_all, ping, data)
        else:
            self._portal.call(self._outlet.control, ping, data)

    def timeout(self, delay_s: float, token: Any = None) -> Timeout:
        """Call ``on_timeout(token)`` after ``delay_s`` seconds."""
        if self._outlet is None:
            raise Error("a broadcaster has no handler to time out", ErrorKind.TIMER)
        if delay_s < 0:
            raise Error(f"timeout delay must be >= 0, got {delay_s}", ErrorKind.TIMER)
        timer = Timeout(float(delay_s), token, self.cancel)
        self._portal.call(self._outlet.start_timer, timer)
        return timer

    def cancel(self, timeout: Timeout) -> None:
        """Cancel a pending timeout (no-op if it fired or was cancelled)."""
        if self._outlet is not None:
            self._portal.call(self._outlet.cancel_timer, timeout)

    def connect(self, url: str, *, reconnect: Reconnect | bool | None = None) -> None:
        """Open a client connection to ``url`` from the same WebSocket.

        Returns at once; the new connection's handler (made by the same
        factory) sees ``on_open`` or, if it fails, ``on_error``. With
        ``reconnect=`` (a :class:`wskit.Reconnect` or ``True``), that
        handler and its Sender carry on over new connections whenever one
        drops (see ``WebSocket.connect``).
        """
        self.hub.connect(url, policy_from(reconnect))

    def shutdown(self) -> None:
        """Shut the whole WebSocket down (every connection gets 1001)."""
        self.hub.shutdown()

    @property
    def comms(self) -> Comms:
        """The WebSocket's :class:`Comms`: send to any connection by its id."""
        return self._comms

    @property
    def queued_bytes(self) -> int:
        """Bytes this connection has accepted from ``send`` and the kernel has
        not taken yet (0 for a broadcaster). A snapshot, for the Trio thread."""
        return self._outlet.queued_bytes if self._outlet is not None else 0

    async def flush(self) -> None:
        """Wait until the outgoing queue is below ``max_send_queue``.

        For ``async`` handlers that send a lot: ``out.send(x); await out.flush()``.
        Returns at once if the connection is closed (a later ``send`` raises).
        """
        if self._outlet is not None:
            await self._outlet.flush()

    def __repr__(self) -> str:
        return f"<wskit.Sender connection_id={self.connection_id}>"
