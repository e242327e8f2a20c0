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

While wsproto holds no partial frame or message, a read's leading whole,
small, final data frames are decoded by :func:`.smallframes.take_small`
(no wsproto objects per message) and only the rest goes to wsproto, which
also refuses whatever must be refused: the events are the same either way.

The states and their transitions are the table ``_TRANSITIONS`` below; the
core changes state only through ``_move()``, which refuses any other move.

This module drives wsproto through :class:`.frames.FrameLayer`; it touches
no wsproto internals itself.

This module must not import trio (``tests/test_layers.py`` checks).
"""

from __future__ import annotations

import enum
import struct
from typing import cast

from wsproto.extensions import Extension
from wsproto.frame_protocol import Opcode, ParseFailed

from .._errors import Error, ErrorKind
from .frames import LATE_REGISTERED, FrameLayer
from .masking import MessageBufferProtocol
from .messages import BinaryMessage, CloseCode, Message, TextMessage, close_code
from .smallframes import close_frame, take_close, take_small

__all__ = [
    "CloseReceived",
    "ConnectionCore",
    "CoreEvent",
    "CoreState",
    "Failed",
    "Lost",
    "Ping",
    "Pong",
    "ReadInto",
    "check_close",
    "encode_frame",
]


class CoreState(enum.Enum):
    """Where the connection is in its life (RFC 6455 section 7.1)."""

    #: Messages flow both ways (section 4.1, "_The WebSocket Connection is
    #: Established_").
    OPEN = "open"
    #: We sent a close frame and wait for the peer's (section 7.1.2).
    LOCAL_CLOSING = "local closing"
    #: The peer sent a close frame; our answer is owed, sent by
    #: ``answer_close()`` once the messages read before it were handled:
    #: until then we may still send (section 5.5.1), but read nothing more.
    REMOTE_CLOSING = "remote closing"
    #: The peer broke the protocol or a limit: our close frame is owed
    #: (section 7.1.7), sent by ``answer_close()``; sending still works
    #: until then, reading does not.
    FAILING = "failing"
    #: The closing handshake completed, or the stream ended.
    CLOSED = "closed"
    #: We failed the connection (section 7.1.7): our close frame is queued
    #: and the TCP stream should be closed without waiting for an answer.
    FAILED = "failed"


# Theory of operation: the moves the core can make, and nothing else.
#
#   OPEN --close()----------------------> LOCAL_CLOSING --peer's close--> CLOSED
#                                                       --bad frame-----> FAILED
#   OPEN --peer's close-----------------> REMOTE_CLOSING --answer_close()--> CLOSED
#   OPEN --bad frame / too big----------> FAILING --answer_close()--------> FAILED
#   OPEN, LOCAL_CLOSING --end of stream without close (Lost, 1006)-------> CLOSED
#
# REMOTE_CLOSING and FAILING read nothing more (section 5.5.1: nothing after
# a close frame; 7.1.7: nothing after a failure); data may still be sent in
# them, so replies to messages read before the close go out first.
_TRANSITIONS: dict[CoreState, frozenset[CoreState]] = {
    CoreState.OPEN: frozenset({CoreState.LOCAL_CLOSING, CoreState.REMOTE_CLOSING,
                               CoreState.FAILING, CoreState.CLOSED}),
    CoreState.LOCAL_CLOSING: frozenset({CoreState.CLOSED, CoreState.FAILED}),
    CoreState.REMOTE_CLOSING: frozenset({CoreState.CLOSED}),
    CoreState.FAILING: frozenset({CoreState.FAILED}),
    CoreState.CLOSED: frozenset(),
    CoreState.FAILED: frozenset(),
}
# Where frames may still be queued: before our close frame is.
_SENDING = frozenset({CoreState.OPEN, CoreState.REMOTE_CLOSING, CoreState.FAILING})
# For the per-message paths: Python 3.11 looks a member up on its Enum class
# through EnumType.__getattr__, four times the cost of a global.
_OPEN = CoreState.OPEN
_LOCAL_CLOSING = CoreState.LOCAL_CLOSING
_REMOTE_CLOSING = CoreState.REMOTE_CLOSING
_FAILING = CoreState.FAILING


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


class ReadInto:
    """Says that ``size`` bytes were read straight into
    :attr:`ConnectionCore.payload_sink` (0: the stream ended), for
    :meth:`ConnectionCore.receive_data`; ``len()`` is that size."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size


_ERROR_KINDS = {
    CloseCode.SIZE: ErrorKind.CAPACITY,
    CloseCode.INVALID: ErrorKind.ENCODING,
}


# RFC 6455 section 7.4.1: the codes an endpoint may put in a close frame
# (1005, 1006 and 1015 are for reporting only); 3000-4999 are for libraries
# and applications (section 7.4.2).
_SENDABLE = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, *LATE_REGISTERED}
)


def check_close(code: int, reason: str) -> None:
    """Raise unless ``code`` and ``reason`` may be sent in a close frame."""
    if code not in _SENDABLE and not 3000 <= code <= 4999:
        raise Error(f"close code {code} may not be sent (RFC 6455 section 7.4): use 1000-1003, "
                    "1007-1013, or 3000-4999 for your own", ErrorKind.USAGE)
    if len(reason.encode("utf-8")) > 123:
        raise Error("close reason must be at most 123 UTF-8 bytes (RFC 6455 section 5.5)",
                    ErrorKind.USAGE)


class ConnectionCore:
    """The protocol state of one open connection (client or server side).

    It drives wsproto's frame layer (``FrameProtocol``, through
    :class:`.frames.FrameLayer`) directly: wsproto's ``Connection`` on top of
    it only adds an event object per frame and a state machine that this
    class keeps itself (:class:`CoreState`, moved by ``_move()`` only).
    Read :attr:`state` freely; never assign it.
    """

    def __init__(
        self,
        *,
        client: bool,
        extensions: list[Extension],
        max_message_size: int | None,
        trailing_data: bytes = b"",
    ) -> None:
        #: Where the next bytes of the stream may be read straight into: the
        #: rest of a binary frame being assembled, when nothing else is
        #: buffered (``None`` otherwise: read as usual). After reading into
        #: it with its ``read_from()``, pass :class:`ReadInto` to
        #: :meth:`receive_data`. A plain attribute, kept up to date by the
        #: frame layer (this core is its ``SinkHolder``): read once per read.
        self.payload_sink: MessageBufferProtocol | None = None
        # wsproto's frame layer, made when first needed (_layer()): a server
        # connection without extensions whose messages are all small, and
        # that the peer closes, never needs it (a tenth of a handshake).
        self._proto: FrameLayer | None = None
        self._client = client
        self._extensions = list(extensions)
        # Server side without extensions: frames need no mask and no deflate.
        self._plain = not client and not extensions
        # No extensions: small messages may skip wsproto (take_small)...
        self._small = not extensions
        # ... when wsproto holds no partial frame or message (checked after
        # each time wsproto decodes, in _events()).
        self._fast = self._small and not trailing_data
        self._masked = not client  # a server reads masked frames
        self._limit = max_message_size
        #: Where the connection is; changed by ``_move()`` only.
        self.state = CoreState.OPEN
        self._out: list[bytes | bytearray] = []
        #: Bytes queued in the output and not yet taken by :meth:`take_output`.
        self.output_size = 0
        self._parts: list[str | bytes | bytearray] = []
        # The code and reason of the close frame owed in REMOTE_CLOSING or
        # FAILING (None: an empty close frame), sent by answer_close().
        self._answer: tuple[int | None, str] = (None, "")
        # Frames that arrived with the handshake are parsed first.
        if trailing_data:
            self._layer().receive_bytes(trailing_data)

    def _layer(self) -> FrameLayer:
        proto = self._proto
        if proto is None:
            proto = self._proto = FrameLayer(self._client, self._extensions, self._limit, self)
        return proto

    # -- receiving -------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | ReadInto | None) -> list[CoreEvent]:
        """Feed what the socket read; ``None`` or ``b""`` means end of stream
        (and so does ``ReadInto(0)``)."""
        state = self.state
        if state is not _OPEN and state is not _LOCAL_CLOSING:
            return []  # nothing after a close frame is read (section 5.5.1)
        if not data:
            # Section 7.1.5: closed without a close frame: code 1006.
            self._move(CoreState.CLOSED)
            self._parts.clear()
            return [Lost()]
        if data.__class__ is ReadInto:  # already in the frame being assembled
            return self._events()
        if self._fast and state is _OPEN:
            # The common read: whole small messages, read without wsproto
            # (smallframes.py); whatever else follows is wsproto's.
            events: list[CoreEvent]
            events, used = take_small(data, self._masked, self._limit)  # type: ignore[assignment,arg-type]
            if used == len(data):
                return events
            if data[used] == 0x88:  # type: ignore[index]  # a close frame: the usual end
                close = take_close(data, used, self._masked)  # type: ignore[arg-type]
                if close is not None:
                    events.append(self._on_close(*close))
                    return events
            if used:
                self._layer().receive_bytes(data[used:])  # type: ignore[arg-type,index]
                events += self._events()
                return events
        self._layer().receive_bytes(data)  # type: ignore[arg-type]
        return self._events()

    def pending_events(self) -> list[CoreEvent]:
        """Events from bytes that came with the handshake (``trailing_data``)."""
        if self._proto is None:
            return []  # nothing came with it: wsproto's layer is not needed yet
        return self._events()

    def _events(self) -> list[CoreEvent]:
        events: list[CoreEvent] = []
        append = events.append
        proto = self._layer()
        try:
            for frame in proto.received_frames():
                opcode = frame.opcode
                if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                    if self.state is not CoreState.OPEN:
                        continue  # section 7.1.4: data after our close is discarded
                    payload = frame.payload
                    if not frame.message_finished:
                        self._parts.append(payload)  # type: ignore[arg-type]
                    elif self._parts:
                        self._parts.append(payload)  # type: ignore[arg-type]
                        append(self._join())
                    else:
                        append(_message(payload))  # type: ignore[arg-type]
                elif opcode is Opcode.PING:
                    if self.state is CoreState.OPEN:  # no pong after our close
                        self._queue(proto.pong(frame.payload))  # type: ignore[arg-type]
                    append(Ping(bytes(frame.payload)))  # type: ignore[arg-type]
                elif opcode is Opcode.PONG:
                    append(Pong(bytes(frame.payload)))  # type: ignore[arg-type]
                else:  # Opcode.CLOSE: wsproto refuses every other opcode (5.2)
                    code, reason = cast("tuple[int, str]", frame.payload)
                    append(self._on_close(code, reason))
                    break
        except ParseFailed as exc:
            append(self._fail(exc))
        self._fast = self._small and proto.at_rest
        return events

    def _join(self) -> Message:
        parts, self._parts = self._parts, []
        if isinstance(parts[0], str):
            return _message("".join(parts))  # type: ignore[arg-type]
        return _message(b"".join(parts))  # type: ignore[arg-type]

    def _on_close(self, code: int, reason: str) -> CoreEvent:
        if self.state is CoreState.LOCAL_CLOSING:
            # The peer answered the close frame we sent.
            self._move(CoreState.CLOSED)
            return CloseReceived(close_code(code), reason)
        # The peer started the closing handshake: we owe it the echo of its
        # code (7.1.2), sent by answer_close() once the messages that came
        # before the close frame have been handled (5.5.1 lets us finish
        # what we were sending). A close without a code (1005) is answered
        # with an empty close frame.
        self._answer = (None if code == CloseCode.STATUS else code, reason)
        self._move(CoreState.REMOTE_CLOSING)
        return CloseReceived(close_code(code), reason)

    def _fail(self, exc: ParseFailed) -> CoreEvent:
        # Section 7.1.7: fail the connection with the code the error calls for.
        code = close_code(exc.code)
        code = code if isinstance(code, CloseCode) else CloseCode.PROTOCOL
        reason = str(exc)
        if code is CloseCode.SIZE and self._limit is not None:
            reason = f"message larger than {self._limit} bytes"
        if self.state is CoreState.OPEN:
            self._answer = (code, reason)
            self._move(CoreState.FAILING)
        else:  # we had sent our close already
            self._move(CoreState.FAILED)
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

        Until then the connection is REMOTE_CLOSING or FAILING, where
        sending still works, so replies to messages that arrived before the
        close frame go out first. In any other state this does nothing.
        """
        state = self.state
        if state is CoreState.REMOTE_CLOSING:
            final = CoreState.CLOSED
        elif state is CoreState.FAILING:
            final = CoreState.FAILED
        else:
            return
        code, reason = self._answer
        if final is CoreState.CLOSED and self._plain:
            # The echo of the peer's close frame, whose reason fits (it
            # came in one): the bytes wsproto would write, without wsproto.
            self._queue(close_frame(code, reason))
        else:
            self._queue(self._layer().close(code, reason if code is not None else None))
        self._move(final)

    def _move(self, new: CoreState) -> None:
        """The one place the state changes, along ``_TRANSITIONS`` only."""
        if new not in _TRANSITIONS[self.state]:
            raise Error(f"connection core cannot go from {self.state.value} to {new.value}",
                        ErrorKind.INTERNAL)
        self.state = new
        if new is not CoreState.OPEN and new is not CoreState.LOCAL_CLOSING:
            self.payload_sink = None  # nothing more is read

    # -- sending -------------------------------------------------------

    def send(self, data: str | bytes) -> int:
        """Queue one message (``str`` text, ``bytes`` binary); returns its bytes.

        Raises :class:`Error` (``QUEUE``) once our close frame is queued.
        """
        state = self.state
        if state is not _OPEN and state is not _REMOTE_CLOSING and state is not _FAILING:
            raise Error(f"cannot send: connection is {state.value}", ErrorKind.QUEUE)
        if self._plain:
            # A server frame without extensions is a header and the payload
            # as it is. A small one is joined into one buffer (one plain
            # write() for the common reply); a larger one is queued as two
            # buffers, written with one writev(), so that it is never copied
            # onto its header.
            if isinstance(data, str):
                payload = data.encode("utf-8")
                heads = _TEXT_HEADS
            else:
                payload, heads = data, _BINARY_HEADS
            size = len(payload)
            if size < 126:
                frame = heads[size] + payload
                self._out.append(frame)
                size += 2
            else:
                head = frame_header(heads is _TEXT_HEADS, size)
                if size <= _JOIN:
                    self._out.append(head + payload)
                else:
                    self._out.append(head)
                    self._out.append(payload)
                size += len(head)
            self.output_size += size
            return size
        return self._queue(self._layer().send_data(data))

    @property
    def shares_frames(self) -> bool:
        """Whether a frame from :func:`encode_frame` is what this connection
        would send: server side (no mask) and no extension (no deflate)."""
        return self._plain

    def send_frame(self, frame: bytes) -> int:
        """Queue a frame encoded once for many connections (a broadcast)."""
        state = self.state
        if state is not _OPEN and state is not _REMOTE_CLOSING and state is not _FAILING:
            raise Error(f"cannot send: connection is {state.value}", ErrorKind.QUEUE)
        return self._queue(frame)

    def ping(self, data: bytes) -> int:
        return self._control(True, data)

    def pong(self, data: bytes) -> int:
        return self._control(False, data)

    def _control(self, ping: bool, data: bytes) -> int:
        if self.state not in _SENDING:
            raise Error(f"cannot send a control frame: connection is {self.state.value}",
                        ErrorKind.QUEUE)
        if len(data) > 125:
            raise Error("ping/pong payload must be at most 125 bytes (RFC 6455 5.5)",
                        ErrorKind.USAGE)
        proto = self._layer()
        return self._queue(proto.ping(data) if ping else proto.pong(data))

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> bool:
        """Start the closing handshake; ``False`` if it already started.

        When the peer closed (or failed) first, its owed answer is sent
        instead. Raises :class:`Error` (``USAGE``) for a code or reason that
        may not be sent.
        """
        state = self.state
        if state not in _SENDING:
            return False
        check_close(code, reason)
        if state is not CoreState.OPEN:
            self.answer_close()  # the peer closed (or failed) first: answer it
            return False
        self._queue(self._layer().close(code, reason))
        self._move(CoreState.LOCAL_CLOSING)
        return True

    def _queue(self, frame: bytes | bytearray) -> int:
        self._out.append(frame)
        self.output_size += len(frame)
        return len(frame)

    def take_buffers(self) -> list[bytes | bytearray]:
        """Everything queued to send since the last call, as a list of buffers
        (for ``writev``; the list is the caller's)."""
        out = self._out
        if not out:
            return out
        self._out = []
        self.output_size = 0
        return out

    def take_output(self) -> bytes | bytearray:
        """Everything queued to send since the last call, as one buffer
        (the frame itself when there is one: no copy of a large message)."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self.output_size = 0
        return data

    @property
    def has_output(self) -> bool:
        return bool(self._out)


_new_text = str.__new__
_new_binary = bytes.__new__


def _message(data: str | bytes | bytearray) -> Message:
    """A message without the type checks of its constructor: the core makes
    one per received message, from what wsproto decoded (a whole binary
    frame comes from the frame layer as its message already)."""
    if data.__class__ is BinaryMessage:
        return data
    if isinstance(data, str):
        return _new_text(TextMessage, data)
    return _new_binary(BinaryMessage, data)


# Up to this payload size a frame is one buffer: copying the payload costs
# less than writev()'s second buffer.
_JOIN = 4096
# The headers of the final unmasked frames with a 7-bit length, made once.
_TEXT_HEADS = [bytes((0x81, size)) for size in range(126)]
_BINARY_HEADS = [bytes((0x82, size)) for size in range(126)]


def frame_header(text: bool, size: int) -> bytes:
    """The header of an unmasked, final data frame (RFC 6455 5.2)."""
    first = 0x81 if text else 0x82
    if size < 126:
        return bytes((first, size))
    if size < 65536:
        return struct.pack("!BBH", first, 126, size)
    return struct.pack("!BBQ", first, 127, size)


def encode_frame(data: str | bytes) -> bytes:
    """One unmasked, final data frame, as a server without extensions sends
    it: the same bytes for every such connection."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    return frame_header(isinstance(data, str), len(payload)) + payload
