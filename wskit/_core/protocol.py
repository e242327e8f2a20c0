"""One open WebSocket connection, sans I/O: bytes in, events and bytes out.

Theory of operation. ``ConnectionCore`` wraps wsproto's frame-level
``Connection`` (the opening handshake is done by :mod:`.handshake`). Feed it
what the socket read with :meth:`receive_data` and get back complete events:
:class:`Message` objects (fragments already joined), :class:`Ping`,
:class:`Pong`, :class:`CloseReceived`, :class:`Failed` or :class:`Lost`.
Everything the protocol obliges us to send — pongs, the echo of a close
frame, the close frame that fails a connection — is queued by the core
itself; the I/O layer only has to write :meth:`take_output` out, and call
:meth:`answer_close` when it reaches a ``CloseReceived`` or ``Failed``
event (so replies to the messages before it are sent first).

States (RFC 6455 section 7)::

    OPEN --close()--> LOCAL_CLOSING --peer's close--> CLOSED
    OPEN --peer's close, answer_close() (echo)-----> CLOSED
    OPEN --protocol error / too big, answer_close()> FAILED
    any  --end of stream without close-------------> CLOSED (Lost, 1006)

This module must not import trio (``tests/test_layers.py`` checks).
"""

from __future__ import annotations

import enum
import struct

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    TextMessage,
)
from wsproto.events import (
    Ping as WsPing,
)
from wsproto.events import (
    Pong as WsPong,
)
from wsproto.extensions import Extension
from wsproto.frame_protocol import (
    CloseReason,
    Frame,
    FrameDecoder,
    FrameProtocol,
    Opcode,
    ParseFailed,
    RsvBits,
)

from .._errors import Error, ErrorKind
from .messages import CloseCode, Message, close_code

__all__ = [
    "CloseReceived",
    "ConnectionCore",
    "CoreEvent",
    "CoreState",
    "Failed",
    "Lost",
    "Ping",
    "Pong",
    "check_close",
]


class CoreState(enum.Enum):
    """Where the connection is in its life (RFC 6455 section 7)."""

    OPEN = "open"
    #: We sent a close frame and wait for the peer's (section 7.1.2).
    LOCAL_CLOSING = "local closing"
    #: The closing handshake completed, or the stream ended.
    CLOSED = "closed"
    #: We failed the connection (section 7.1.7): our close frame is queued
    #: and the TCP stream should be closed without waiting for an answer.
    FAILED = "failed"


class Ping:
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class Pong(Ping):
    __slots__ = ()


class CloseReceived:
    """The peer's close frame: it started the closing handshake, or answered ours."""

    __slots__ = ("code", "reason")

    def __init__(self, code: CloseCode | int, reason: str) -> None:
        self.code = code
        self.reason = reason


class Failed:
    """The peer broke the protocol or a limit; our close frame is queued."""

    __slots__ = ("code", "error", "reason")

    def __init__(self, code: CloseCode, reason: str, error: Error) -> None:
        self.code = code
        #: The reason in the close frame we sent.
        self.reason = reason
        self.error = error


class Lost:
    """The stream ended without a close frame (close code 1006)."""

    __slots__ = ()


CoreEvent = Message | Ping | Pong | CloseReceived | Failed | Lost

_NO_RSV = RsvBits(False, False, False)
_ERROR_KINDS = {
    CloseCode.SIZE: ErrorKind.CAPACITY,
    CloseCode.INVALID: ErrorKind.ENCODING,
}


class MessageSizeLimit(Extension):
    """Enforces ``max_message_size`` inside wsproto's frame parser.

    Never negotiated (it uses no RSV bit); it rides along in the extension
    list because wsproto calls extensions with each frame header before the
    payload is read, so an oversized uncompressed message is refused from
    its header without buffering it. Placed after permessage-deflate, it
    sees inflated bytes and counts them.
    """

    name = "wskit-message-size-limit"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._size = 0
        self._compressed = False
        self._control = False

    def enabled(self) -> bool:
        return True

    def offer(self) -> bool:
        return False

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        self._control = opcode.iscontrol()
        if self._control:
            return _NO_RSV
        if opcode is not Opcode.CONTINUATION:
            self._size = 0
            self._compressed = rsv.rsv1
        if not self._compressed:
            self._size += payload_length
            if self._size > self.limit:
                return CloseReason.MESSAGE_TOO_BIG
        return _NO_RSV

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if self._compressed and not self._control:
            self._size += len(data)
            if self._size > self.limit:
                return CloseReason.MESSAGE_TOO_BIG
        return data

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        return None

    def frame_outbound(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        data: bytes,
        fin: bool,
    ) -> tuple[RsvBits, bytes]:
        return rsv, data


# Registered in IANA's WebSocket close code registry (RFC 6455 section 11.7)
# after wsproto's table was written: 1014 "Bad Gateway". wsproto refuses it
# as an "unknown reserved code"; browsers and websockets accept it.
_LATE_REGISTERED = frozenset({1014})


class _FrameProtocol(FrameProtocol):
    """wsproto's frame layer, accepting close codes registered since it was written."""

    def _process_close(self, frame: Frame) -> Frame:
        data = frame.payload
        if isinstance(data, (bytes, bytearray)) and len(data) >= 2:
            (code,) = struct.unpack("!H", data[:2])
            if code in _LATE_REGISTERED:
                try:
                    reason = bytes(data[2:]).decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ParseFailed(f"Error decoding CLOSE reason: {exc}",
                                      CloseReason.INVALID_FRAME_PAYLOAD_DATA) from exc
                return Frame(frame.opcode, (code, reason), frame.frame_finished,
                             frame.message_finished)
        return super()._process_close(frame)


# RFC 6455 section 7.4.1: the codes an endpoint may put in a close frame
# (1005, 1006 and 1015 are for reporting only); 3000-4999 are for libraries
# and applications (section 7.4.2).
_SENDABLE = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, *_LATE_REGISTERED}
)


def check_close(code: int, reason: str) -> None:
    """Raise unless ``code`` and ``reason`` may be sent in a close frame."""
    if code not in _SENDABLE and not 3000 <= code <= 4999:
        raise Error(f"close code {code} may not be sent (RFC 6455 section 7.4)",
                    ErrorKind.PROTOCOL)
    if len(reason.encode("utf-8")) > 123:
        raise Error("close reason must be at most 123 UTF-8 bytes (RFC 6455 section 5.5)",
                    ErrorKind.PROTOCOL)


class ConnectionCore:
    """The protocol state of one open connection (client or server side)."""

    def __init__(
        self,
        *,
        client: bool,
        extensions: list[Extension],
        max_message_size: int | None,
        trailing_data: bytes = b"",
    ) -> None:
        exts = list(extensions)
        self._limit = max_message_size
        if max_message_size is not None:
            exts.append(MessageSizeLimit(max_message_size))
        self._ws = ws = Connection(ConnectionType.CLIENT if client else ConnectionType.SERVER)
        ws._proto = _FrameProtocol(client, exts)
        # Frames that arrived with the handshake are parsed first.
        if trailing_data:
            ws.receive_data(trailing_data)
        self.state = CoreState.OPEN
        # The close frame we owe the peer, and the state once it is sent: see
        # answer_close().
        self._owed: tuple[int, str, CoreState] | None = None
        self._out: list[bytes] = []
        #: Bytes queued in the output and not yet taken by :meth:`take_output`.
        self.output_size = 0
        self._parts: list[str | bytes | bytearray] = []

    # -- receiving -------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | None) -> list[CoreEvent]:
        """Feed what the socket read; ``None`` or ``b""`` means end of stream."""
        if self.state in (CoreState.CLOSED, CoreState.FAILED) or self._owed is not None:
            return []  # nothing after a close frame is read (section 5.5.1)
        ws = self._ws
        ws.receive_data(bytes(data) if data else None)
        return self._events()

    def pending_events(self) -> list[CoreEvent]:
        """Events from bytes that came with the handshake (``trailing_data``)."""
        return self._events()

    def _events(self) -> list[CoreEvent]:
        ws = self._ws
        events: list[CoreEvent] = []
        append = events.append
        for event in ws.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                if self.state is not CoreState.OPEN:
                    continue  # section 7.1.4: data after our close is discarded
                if event.message_finished and not self._parts:
                    append(Message(event.data))
                else:
                    self._parts.append(event.data)
                    if event.message_finished:
                        append(self._join())
            elif isinstance(event, WsPing):
                if ws.state is ConnectionState.OPEN:  # no pong after our close
                    self._queue(ws.send(event.response()))
                append(Ping(bytes(event.payload)))
            elif isinstance(event, WsPong):
                append(Pong(bytes(event.payload)))
            elif isinstance(event, CloseConnection):
                append(self._on_close(event))
                break
        return events

    def _join(self) -> Message:
        parts, self._parts = self._parts, []
        if isinstance(parts[0], str):
            return Message("".join(parts))  # type: ignore[arg-type]
        return Message(b"".join(parts))  # type: ignore[arg-type]

    def _on_close(self, event: CloseConnection) -> CoreEvent:
        ws = self._ws
        if event.code == CloseReason.ABNORMAL_CLOSURE and ws.state is ConnectionState.CLOSED:
            self.state = CoreState.CLOSED
            return Lost()
        if ws.state is ConnectionState.REMOTE_CLOSING:
            # The peer started the closing handshake: we owe it the echo of
            # its code (7.1.2), sent by answer_close() once the messages that
            # came before the close frame have been handled (5.5.1 lets us
            # finish what we were sending).
            echo = event.response()
            self._owed = (echo.code, echo.reason or "", CoreState.CLOSED)
            return CloseReceived(close_code(event.code), event.reason or "")
        if ws.state is ConnectionState.CLOSED:
            # The peer answered the close frame we sent.
            self.state = CoreState.CLOSED
            return CloseReceived(close_code(event.code), event.reason or "")
        # wsproto reports a parse failure as a CloseConnection while its state
        # stays OPEN or LOCAL_CLOSING: we must fail the connection (7.1.7).
        code = close_code(event.code)
        code = code if isinstance(code, CloseCode) else CloseCode.PROTOCOL
        reason = event.reason or ""
        if code is CloseCode.SIZE and self._limit is not None:
            reason = f"message larger than {self._limit} bytes"
        if ws.state is ConnectionState.OPEN:
            self._owed = (code, reason, CoreState.FAILED)
        else:  # we had sent our close already
            self.state = CoreState.FAILED
        kind = _ERROR_KINDS.get(code, ErrorKind.PROTOCOL)
        if code is CloseCode.SIZE:
            what = f"peer sent a {reason}"
        elif code is CloseCode.INVALID:
            what = f"peer sent invalid data ({reason})"
        else:
            what = f"peer violated the protocol ({reason})"
        return Failed(code, reason, Error(f"{what}; closed with {code.value}", kind))

    def answer_close(self) -> None:
        """Send the close frame owed since :class:`CloseReceived` or :class:`Failed`.

        Until then the connection stays OPEN, so replies to messages that
        arrived before the close frame still go out.
        """
        owed, self._owed = self._owed, None
        if owed is None:
            return
        code, reason, final = owed
        self._queue(self._ws.send(CloseConnection(code=code, reason=reason)))
        self.state = final

    # -- sending -------------------------------------------------------

    def send(self, message: Message) -> int:
        """Queue one message; returns the bytes it adds to the output."""
        if self.state is not CoreState.OPEN:
            raise Error(f"cannot send: connection is {self.state.value}", ErrorKind.QUEUE)
        # Straight to the frame layer: Connection.send() would only re-check
        # the state we checked and wrap the payload in an event object.
        return self._queue(self._ws._proto.send_data(message.data))

    def ping(self, data: bytes) -> int:
        return self._control(WsPing(payload=data))

    def pong(self, data: bytes) -> int:
        return self._control(WsPong(payload=data))

    def _control(self, event: WsPing | WsPong) -> int:
        if self.state is not CoreState.OPEN:
            raise Error(f"cannot send a control frame: connection is {self.state.value}",
                        ErrorKind.QUEUE)
        if len(event.payload) > 125:
            raise Error("ping/pong payload must be at most 125 bytes (RFC 6455 5.5)",
                        ErrorKind.PROTOCOL)
        # The frame layer directly: wsproto's Connection refuses control
        # frames while a close answer is owed, which answer_close() sends.
        proto = self._ws._proto
        payload = bytes(event.payload)
        return self._queue(proto.ping(payload) if isinstance(event, WsPing)
                           else proto.pong(payload))

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> bool:
        """Start the closing handshake; ``False`` if it already started."""
        if self.state is not CoreState.OPEN:
            return False
        check_close(code, reason)
        if self._owed is not None:
            self.answer_close()  # the peer closed (or failed) first: answer it
            return False
        self._queue(self._ws.send(CloseConnection(code=code, reason=reason)))
        self.state = CoreState.LOCAL_CLOSING
        return True

    def _queue(self, frame: bytes | bytearray) -> int:
        self._out.append(frame)  # type: ignore[arg-type]
        self.output_size += len(frame)
        return len(frame)

    def take_output(self) -> bytes:
        """Everything queued to send since the last call, as one buffer."""
        out = self._out
        if not out:
            return b""
        data = bytes(out[0]) if len(out) == 1 else b"".join(out)
        out.clear()
        self.output_size = 0
        return data

    @property
    def has_output(self) -> bool:
        return bool(self._out)
