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
from collections.abc import Callable
from typing import cast

from wsproto.extensions import Extension
from wsproto.frame_protocol import (
    CloseReason,
    Frame,
    FrameDecoder,
    FrameProtocol,
    Opcode,
    ParseFailed,
    XorMaskerSimple,
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
    "encode_frame",
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

_ERROR_KINDS = {
    CloseCode.SIZE: ErrorKind.CAPACITY,
    CloseCode.INVALID: ErrorKind.ENCODING,
}


# Registered in IANA's WebSocket close code registry (RFC 6455 section 11.7)
# after wsproto's table was written: 1014 "Bad Gateway". wsproto refuses it
# as an "unknown reserved code"; browsers and websockets accept it.
_LATE_REGISTERED = frozenset({1014})


# Below this payload size one big-integer XOR unmasks faster than wsproto's
# four strided translate() calls (3x at 64 bytes, even at 2 KiB); above it
# wsproto's way is faster (measured: 1.1 GB/s against 0.5 GB/s at 64 KiB).
_SMALL_FRAME = 2048


class _SmallMasker(XorMaskerSimple):
    """Unmasks (RFC 6455 5.3) a small frame's payload, in any number of pieces."""

    def process(self, data: bytes | bytearray) -> bytearray:
        size = len(data)
        if not size:
            return bytearray()
        key = bytes(self._masking_key)
        mask = (key * ((size >> 2) + 1))[:size]
        value = int.from_bytes(data, "little") ^ int.from_bytes(mask, "little")
        turn = size & 3
        if turn:  # the next piece starts mid-key
            self._masking_key = key[turn:] + key[:turn]
        # wsproto copies the result into a bytearray or bytes next: a bytes
        # object here is as good (and a copy less).
        return value.to_bytes(size, "little")  # type: ignore[return-value]


class _FrameDecoder(FrameDecoder):
    """wsproto's frame parser, refusing an oversized message from its headers.

    Each data frame's header announces its payload length before the payload
    is read: the running total of an uncompressed message is checked there,
    so a peer announcing too much is refused with 1009 at once, and nothing
    is buffered for it. Compressed frames are counted as they inflate, by
    :class:`~wskit._core.deflate.BoundedDeflate`.
    """

    def __init__(self, client: bool, extensions: list[Extension], limit: int | None) -> None:
        super().__init__(client, extensions)
        self.limit = limit
        self.message_size = 0
        self.message_compressed = False

    def parse_header(self) -> bool:
        if not super().parse_header():
            return False
        limit, header = self.limit, self.header
        if (header is not None and header.payload_len <= _SMALL_FRAME
                and isinstance(self.masker, XorMaskerSimple)):
            self.masker = _SmallMasker(self.masker._masking_key)
        if limit is not None and header is not None and not header.opcode.iscontrol():
            if header.opcode is not Opcode.CONTINUATION:
                self.message_size = 0
                self.message_compressed = header.rsv.rsv1
            if not self.message_compressed:
                self.message_size += header.payload_len
                if self.message_size > limit:
                    raise ParseFailed("message too big", CloseReason.MESSAGE_TOO_BIG)
        return True


class _FrameProtocol(FrameProtocol):
    """wsproto's frame layer with wskit's message limit, and accepting close
    codes registered since wsproto was written."""

    def __init__(self, client: bool, extensions: list[Extension], limit: int | None) -> None:
        super().__init__(client, extensions)
        # Replaced before its first use: the parsing generator reads it lazily.
        self._frame_decoder = _FrameDecoder(client, self.extensions, limit)

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
        raise Error(f"close code {code} may not be sent (RFC 6455 section 7.4): use 1000-1003, "
                    "1007-1013, or 3000-4999 for your own", ErrorKind.USAGE)
    if len(reason.encode("utf-8")) > 123:
        raise Error("close reason must be at most 123 UTF-8 bytes (RFC 6455 section 5.5)",
                    ErrorKind.USAGE)


class ConnectionCore:
    """The protocol state of one open connection (client or server side).

    It drives wsproto's frame layer (``FrameProtocol``) directly: wsproto's
    ``Connection`` on top of it only adds an event object per frame and a
    state machine that this class keeps itself (see the module docstring).
    """

    def __init__(
        self,
        *,
        client: bool,
        extensions: list[Extension],
        max_message_size: int | None,
        trailing_data: bytes = b"",
    ) -> None:
        self._proto = _FrameProtocol(client, list(extensions), max_message_size)
        # Server side without extensions: frames need no mask and no deflate.
        self._plain = not client and not self._proto.extensions
        self._limit = max_message_size
        self.state = CoreState.OPEN
        self._out: list[bytes | bytearray] = []
        #: Bytes queued in the output and not yet taken by :meth:`take_output`.
        self.output_size = 0
        self._parts: list[str | bytes | bytearray] = []
        # The close frame we owe the peer, and the state once it is sent: see
        # answer_close().
        self._owed: tuple[int | None, str, CoreState] | None = None
        # Frames that arrived with the handshake are parsed first.
        if trailing_data:
            self._proto.receive_bytes(trailing_data)

    # -- receiving -------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | None) -> list[CoreEvent]:
        """Feed what the socket read; ``None`` or ``b""`` means end of stream."""
        if self.state in (CoreState.CLOSED, CoreState.FAILED) or self._owed is not None:
            return []  # nothing after a close frame is read (section 5.5.1)
        if not data:
            # Section 7.1.5: closed without a close frame: code 1006.
            self.state = CoreState.CLOSED
            self._parts.clear()
            return [Lost()]
        self._proto.receive_bytes(data)  # type: ignore[arg-type]
        return self._events()

    def pending_events(self) -> list[CoreEvent]:
        """Events from bytes that came with the handshake (``trailing_data``)."""
        return self._events()

    def _events(self) -> list[CoreEvent]:
        events: list[CoreEvent] = []
        append = events.append
        try:
            for frame in self._proto.received_frames():
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
                        self._queue(self._proto.pong(frame.payload))  # type: ignore[arg-type]
                    append(Ping(bytes(frame.payload)))  # type: ignore[arg-type]
                elif opcode is Opcode.PONG:
                    append(Pong(bytes(frame.payload)))  # type: ignore[arg-type]
                elif opcode is Opcode.CLOSE:
                    code, reason = cast("tuple[int, str]", frame.payload)
                    append(self._on_close(code, reason))
                    break
        except ParseFailed as exc:
            append(self._fail(exc))
        return events

    def _join(self) -> Message:
        parts, self._parts = self._parts, []
        if isinstance(parts[0], str):
            return _message("".join(parts))  # type: ignore[arg-type]
        return _message(b"".join(parts))  # type: ignore[arg-type]

    def _on_close(self, code: int, reason: str) -> CoreEvent:
        if self.state is CoreState.LOCAL_CLOSING:
            # The peer answered the close frame we sent.
            self.state = CoreState.CLOSED
            return CloseReceived(close_code(code), reason)
        # The peer started the closing handshake: we owe it the echo of its
        # code (7.1.2), sent by answer_close() once the messages that came
        # before the close frame have been handled (5.5.1 lets us finish
        # what we were sending). A close without a code (1005) is answered
        # with an empty close frame.
        self._owed = (None if code == CloseCode.STATUS else code, reason, CoreState.CLOSED)
        return CloseReceived(close_code(code), reason)

    def _fail(self, exc: ParseFailed) -> CoreEvent:
        # Section 7.1.7: fail the connection with the code the error calls for.
        code = close_code(exc.code)
        code = code if isinstance(code, CloseCode) else CloseCode.PROTOCOL
        reason = str(exc)
        if code is CloseCode.SIZE and self._limit is not None:
            reason = f"message larger than {self._limit} bytes"
        if self.state is CoreState.OPEN:
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
        self._queue(self._proto.close(code, reason if code is not None else None))
        self.state = final

    # -- sending -------------------------------------------------------

    def send(self, data: str | bytes) -> int:
        """Queue one message (``str`` text, ``bytes`` binary); returns its bytes."""
        if self.state is not CoreState.OPEN:
            raise Error(f"cannot send: connection is {self.state.value}", ErrorKind.QUEUE)
        if self._plain:
            # A server frame without extensions is a header and the payload
            # as it is: queued as two buffers, written with one writev(), so
            # a large payload is never copied onto its header.
            payload = data.encode("utf-8") if isinstance(data, str) else data
            head = frame_header(isinstance(data, str), len(payload))
            self._out.append(head)
            self._out.append(payload)
            size = len(head) + len(payload)
            self.output_size += size
            return size
        return self._queue(self._proto.send_data(data))

    @property
    def shares_frames(self) -> bool:
        """Whether a frame from :func:`encode_frame` is what this connection
        would send: server side (no mask) and no extension (no deflate)."""
        return self._plain

    def send_frame(self, frame: bytes) -> int:
        """Queue a frame encoded once for many connections (a broadcast)."""
        if self.state is not CoreState.OPEN:
            raise Error(f"cannot send: connection is {self.state.value}", ErrorKind.QUEUE)
        return self._queue(frame)

    def ping(self, data: bytes) -> int:
        return self._control(True, data)

    def pong(self, data: bytes) -> int:
        return self._control(False, data)

    def _control(self, ping: bool, data: bytes) -> int:
        if self.state is not CoreState.OPEN:
            raise Error(f"cannot send a control frame: connection is {self.state.value}",
                        ErrorKind.QUEUE)
        if len(data) > 125:
            raise Error("ping/pong payload must be at most 125 bytes (RFC 6455 5.5)",
                        ErrorKind.USAGE)
        proto = self._proto
        return self._queue(proto.ping(data) if ping else proto.pong(data))

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> bool:
        """Start the closing handshake; ``False`` if it already started."""
        if self.state is not CoreState.OPEN:
            return False
        check_close(code, reason)
        if self._owed is not None:
            self.answer_close()  # the peer closed (or failed) first: answer it
            return False
        self._queue(self._proto.close(code, reason))
        self.state = CoreState.LOCAL_CLOSING
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


_new_message = object.__new__
# The slots' own descriptors set them without Message.__setattr__'s guard.
_set_data: Callable[[Message, str | bytes], None] = vars(Message)["_data"].__set__
_set_size: Callable[[Message, int], None] = vars(Message)["_size"].__set__


def _message(data: str | bytes | bytearray) -> Message:
    """A Message without the checks and ``__setattr__`` guard of its
    constructor: the core makes one per received message."""
    msg: Message = _new_message(Message)
    _set_data(msg, bytes(data) if isinstance(data, bytearray) else data)
    _set_size(msg, -1)
    return msg


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
