"""``Sender``: how a handler (or any thread) talks to its connection.

Every method but :meth:`Sender.flush` is non-blocking and safe to call from
any thread. Calls made in the WebSocket's own Trio thread act at once; calls
from other threads are handed to that thread in order
(``TrioToken.run_sync_soon`` keeps FIFO order per calling thread), after the
queue limit was checked in the calling thread so that ``send`` raises there.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ._core.messages import CloseCode, Message
from ._core.protocol import check_close
from ._errors import Error, ErrorKind

if TYPE_CHECKING:
    import trio

    from ._comms import Comms
    from ._connection import Connection
    from ._websocket import WebSocket

__all__ = ["Sender", "Timeout", "to_message"]


def to_message(msg: Message | str | bytes | bytearray | memoryview) -> Message:
    """``str`` is text, bytes-like is binary, a :class:`Message` stays as it is."""
    if isinstance(msg, Message):
        return msg
    if isinstance(msg, (str, bytes, bytearray, memoryview)):
        return Message(msg)
    raise Error(
        f"cannot send {type(msg).__name__}: send str (text), bytes (binary) or a Message",
        ErrorKind.USAGE,
    )


class Timeout:
    """A pending timer from :meth:`Sender.timeout`; ``cancel()`` stops it."""

    __slots__ = ("_sender", "delay", "scope", "token")

    def __init__(self, sender: Sender, delay: float, token: Any) -> None:
        self.token = token
        self.delay = delay
        self._sender = sender
        self.scope: trio.CancelScope | None = None

    def cancel(self) -> None:
        """Cancel the timer; harmless if it already fired. Thread-safe."""
        self._sender.cancel(self)

    def __repr__(self) -> str:
        return f"<wskit.Timeout {self.delay}s token={self.token!r}>"


class Sender:
    """The handle a handler uses to act on its connection (``self.out``).

    ``broadcaster()`` returns a Sender of the whole WebSocket: its ``send``,
    ``ping`` and ``close`` act on every open connection.
    """

    __slots__ = ("_conn", "_ws", "connection_id")

    def __init__(self, ws: WebSocket, conn: Connection | None) -> None:
        self._ws = ws
        self._conn = conn
        #: Unique per connection in this process (0 for a broadcaster).
        self.connection_id = conn.id if conn is not None else 0

    def _in_trio_thread(self) -> bool:
        return threading.get_ident() == self._ws._thread_id

    def send(self, msg: Message | str | bytes | bytearray | memoryview) -> None:
        """Queue a message: ``str`` → text, bytes-like → binary.

        Raises ``Error(kind=QUEUE)`` if the outgoing queue is over
        ``Settings.max_send_queue`` or the connection is closed. Sent before
        the handshake completes, it is delivered right after it.
        """
        cls = msg.__class__
        # str and bytes go to the core as they are (the hot path); a Message
        # gives its payload; other bytes-likes are copied to bytes.
        if cls is str or cls is bytes:
            data: str | bytes = msg  # type: ignore[assignment]
        elif cls is Message:
            data = msg.data  # type: ignore[union-attr]
        else:
            data = to_message(msg).data
        conn = self._conn
        if conn is None:
            self.broadcast(data)
        elif threading.get_ident() == self._ws._thread_id:
            conn.send(data)
        else:
            conn.check_queue(len(data))
            self._ws._run_soon(conn.send_from_thread, data)

    def broadcast(self, msg: Message | str | bytes | bytearray | memoryview) -> None:
        """Send to every open connection of this WebSocket (this one included).

        A recipient whose queue is full misses the message; that is reported
        to its own ``on_error`` and never raised here.
        """
        data = to_message(msg).data
        if self._in_trio_thread():
            self._ws._broadcast(data)
        else:
            self._ws._run_soon(self._ws._broadcast, data)

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Start the closing handshake (idempotent); ``on_close`` follows.

        Raises ``Error(kind=USAGE)`` for a code that may not be sent
        (1005, 1006, 1015, < 1000, 1004, 1014-2999, >= 5000) or a reason over
        123 UTF-8 bytes.
        """
        code = int(code)
        check_close(code, reason)  # raise in the caller's thread, not later
        if self._conn is None:
            self._ws._call(self._ws._close_all, code, reason)
        else:
            self._ws._call(self._conn.close, code, reason)

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
        if self._conn is None:
            self._ws._call(self._ws._control_all, ping, data)
        else:
            self._ws._call(self._conn.control, ping, data)

    def timeout(self, delay_s: float, token: Any = None) -> Timeout:
        """Call ``on_timeout(token)`` after ``delay_s`` seconds."""
        if self._conn is None:
            raise Error("a broadcaster has no handler to time out", ErrorKind.TIMER)
        if delay_s < 0:
            raise Error(f"timeout delay must be >= 0, got {delay_s}", ErrorKind.TIMER)
        timer = Timeout(self, float(delay_s), token)
        self._ws._call(self._conn.start_timer, timer)
        return timer

    def cancel(self, timeout: Timeout) -> None:
        """Cancel a pending timeout (no-op if it fired or was cancelled)."""
        if self._conn is not None:
            self._ws._call(self._conn.cancel_timer, timeout)

    def connect(self, url: str) -> None:
        """Open a client connection to ``url`` from the same WebSocket.

        Returns at once; the new connection's handler (made by the same
        factory) sees ``on_open`` or, if it fails, ``on_error``.
        """
        self._ws._call(self._ws._connect_soon, url)

    def shutdown(self) -> None:
        """Shut the whole WebSocket down (every connection gets 1001)."""
        self._ws.shutdown()

    @property
    def comms(self) -> Comms:
        """The WebSocket's :class:`Comms`: send to any connection by its id."""
        return self._ws.comms

    async def flush(self) -> None:
        """Wait until the outgoing queue is below ``max_send_queue``.

        For ``async`` handlers that send a lot: ``out.send(x); await out.flush()``.
        Returns at once if the connection is closed (a later ``send`` raises).
        """
        if self._conn is not None:
            await self._conn.flush()

    def __repr__(self) -> str:
        return f"<wskit.Sender connection_id={self.connection_id}>"
