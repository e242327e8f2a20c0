"""The only module that touches wsproto's internals.

wsproto's semantic versioning covers its public API only; everything here
relies on private attributes or on overriding internal hooks, so it may
break on any wsproto release (``setup.cfg`` pins ``wsproto>=1.2,<1.4``, and
``tests/test_wsproto_latest.py`` runs the core and conformance suites
against the newest wsproto). Each use says which public API is missing and
what it buys. ``tests/test_wsproto_fence.py`` checks that no other module of
``wskit`` reads a private wsproto attribute.

What is fenced here:

- :class:`FrameLayer`: wsproto's ``FrameProtocol`` with a frame decoder that
  refuses an oversized message from its frame headers (no payload is
  buffered for it), unmasks a whole binary frame straight into its
  :class:`~wskit._core.messages.BinaryMessage`, unmasks the other frames
  with the C masker, masks a client's frames in one pass, and accepts close
  codes registered after wsproto's table was written (1014).
- :class:`DeflateState`: named accessors for the state of wsproto's
  ``PerMessageDeflate`` that :class:`~wskit._core.deflate.BoundedDeflate`
  needs to inflate within a budget.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import TYPE_CHECKING, Protocol, TypeAlias

from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import (
    Buffer,
    CloseReason,
    Frame,
    FrameDecoder,
    FrameProtocol,
    MessageDecoder,
    Opcode,
    ParseFailed,
    RsvBits,
    XorMaskerSimple,
)

from .masking import (
    LARGE,
    MessageBuffer,
    MessageBufferProtocol,
    apply_mask,
    expect_large,
    mask_frame,
)
from .messages import BinaryMessage

__all__ = ["LATE_REGISTERED", "DeflateState", "FrameLayer", "Inflater", "SinkHolder"]

#: A zlib decompression object. zlib exports no public name for its type
#: (typeshed calls it ``zlib._Decompress``); naming it here keeps the
#: private name in the fenced module.
if TYPE_CHECKING:
    Inflater: TypeAlias = zlib._Decompress
else:
    Inflater = type(zlib.decompressobj())

_BINARY = Opcode.BINARY  # looked up once: read for every frame header
_CONTINUATION = Opcode.CONTINUATION

# Registered in IANA's WebSocket close code registry (RFC 6455 section 11.7)
# after wsproto's table was written: 1014 "Bad Gateway". wsproto refuses it
# as an "unknown reserved code"; browsers and websockets accept it.
LATE_REGISTERED = frozenset({1014})


class SinkHolder(Protocol):
    """Whoever wants to know where the next bytes of the stream may be read
    straight into: the binary frame being assembled, when nothing else is
    buffered (its ``MessageBuffer.read_from``), else ``None``. The frame
    decoder sets the attribute when that changes, so that reading it costs
    one attribute look-up per read."""

    payload_sink: MessageBufferProtocol | None


class _Masker(XorMaskerSimple):
    """Unmasks (RFC 6455 5.3) a frame's payload, in any number of pieces,
    with :func:`~wskit._core.masking.apply_mask` (C when built)."""

    def process(self, data: bytes | bytearray) -> bytearray:
        size = len(data)
        if not size:
            return bytearray()
        # Private: XorMaskerSimple keeps the (rotating) key in _masking_key
        # and has no public accessor; a masker must continue mid-key when a
        # frame's payload arrives in several reads.
        key = bytes(self._masking_key)
        turn = size & 3
        if turn:  # the next piece starts mid-key
            self._masking_key = key[turn:] + key[:turn]
        # wsproto copies the result into a bytearray or bytes next: a bytes
        # object here is as good (and a copy less).
        return apply_mask(data, key)  # type: ignore[return-value]


class _Buffer(Buffer):
    """wsproto's receive buffer, without its copies of large reads.

    wsproto's ``Buffer`` appends every read to one bytearray (a copy) and
    slices each payload out of it (a second copy). Here a read that arrives
    with nothing left over is kept as it is, a payload that spans the whole
    read is handed on as that same object, and what was consumed is
    skipped by an offset: a 1 MiB message read in 256 KiB pieces is copied
    by the masker only, not three times more. Same interface, same
    semantics (``len()`` counts the consumed-but-uncommitted bytes too).
    """

    def __init__(self) -> None:
        super().__init__()
        self.buffer: bytes | bytearray = b""  # type: ignore[assignment]
        self.start = 0  # where the uncommitted bytes begin

    def feed(self, new_bytes: bytes) -> None:
        if self.start == len(self.buffer):
            # Kept, not copied: only an immutable object (a caller's
            # bytearray could change under us).
            self.buffer, self.start = bytes(new_bytes), 0
        else:  # a partial header or control frame is waiting: join them
            rest = bytearray(memoryview(self.buffer)[self.start:])
            rest += new_bytes
            self.buffer, self.start = rest, 0

    def consume_exactly(self, nbytes: int) -> bytearray | None:
        if len(self.buffer) - self.start - self.bytes_used < nbytes:
            return None
        return self.consume_at_most(nbytes)

    def consume_at_most(self, nbytes: int) -> bytearray:
        if not nbytes:
            return bytearray()
        begin = self.start + self.bytes_used
        end = min(begin + nbytes, len(self.buffer))
        self.bytes_used += end - begin
        if begin == 0 and end == len(self.buffer):
            return self.buffer  # type: ignore[return-value]
        return self.buffer[begin:end]  # type: ignore[return-value]

    def commit(self) -> None:
        self.start += self.bytes_used
        self.bytes_used = 0
        if self.start == len(self.buffer):  # all read: keep no reference
            self.buffer, self.start = b"", 0

    def __len__(self) -> int:
        return len(self.buffer) - self.start

    def take(self, nbytes: int) -> bytes | memoryview | None:
        """Up to ``nbytes`` of what is buffered, consumed and committed at
        once, as a view (no copy; ``None`` when nothing is buffered). The
        caller must be done with the view before the next :meth:`feed`."""
        buffer = self.buffer
        begin = self.start + self.bytes_used
        size = len(buffer)
        end = min(begin + nbytes, size)
        if end == begin:
            return None
        self.bytes_used = 0
        if end == size:  # all read: keep no reference
            self.buffer, self.start = b"", 0
            if begin == 0:
                return buffer  # type: ignore[return-value]
        else:
            self.start = end
        return memoryview(buffer)[begin:end]


class _FrameDecoder(FrameDecoder):
    """wsproto's frame parser, refusing an oversized message from its headers,
    and assembling a whole binary frame itself.

    Each data frame's header announces its payload length before the payload
    is read: the running total of an uncompressed message is checked there,
    so a peer announcing too much is refused with 1009 at once, and nothing
    is buffered for it. Compressed frames are counted as they inflate, by
    :class:`~wskit._core.deflate.BoundedDeflate`.

    A binary frame that is a whole message (FIN set, no extension, no
    fragmented message under way: what browsers and most libraries send) is
    unmasked piece by piece, as the reads bring it, straight into its
    :class:`~wskit._core.messages.BinaryMessage` (a
    :class:`~wskit._core.masking.MessageBuffer`), and comes out as one
    frame whose payload is that message. wsproto's path would hand out one
    frame per read, each unmasked into a fresh ``bytes``, for the core to
    join and copy into the message: three passes over a large message and
    three times the memory instead of one. Every other frame takes wsproto's
    path.
    """

    def __init__(self, client: bool, extensions: list[Extension], limit: int | None,
                 messages: MessageDecoder, holder: SinkHolder) -> None:
        super().__init__(client, extensions)
        self.buffer: _Buffer = _Buffer()
        self.limit = limit
        self.message_size = 0
        self.message_compressed = False
        #: The binary frame being assembled (``None``: none, or wsproto's path).
        self.assembly: MessageBufferProtocol | None = None
        #: wsproto's message decoder: a frame that arrives inside a
        #: fragmented message takes wsproto's path, so its protocol error is
        #: raised at its header, as before.
        self.messages = messages
        #: Told where the payload sink is whenever that changes.
        self.holder = holder

    # Internal hook: wsproto has no public "frame header parsed" callback
    # (extensions see the header, but only after wsproto started buffering
    # and with no way to refuse by size). Overriding parse_header() is the
    # only place where the payload length is known and nothing is copied.
    def parse_header(self) -> bool:
        # Every read ends with a call that finds no header: answered here
        # without wsproto's consume-and-roll-back (a header is >= 2 bytes).
        if len(self.buffer) < 2:
            return False
        if not super().parse_header():
            return False
        limit, header = self.limit, self.header
        assert header is not None
        opcode = header.opcode
        if limit is not None and not opcode.iscontrol():
            if opcode is not _CONTINUATION:
                self.message_size = 0
                self.message_compressed = header.rsv.rsv1
            if not self.message_compressed:
                self.message_size += header.payload_len
                if self.message_size > limit:
                    raise ParseFailed("message too big", CloseReason.MESSAGE_TOO_BIG)
        masker = self.masker
        if (opcode is _BINARY and header.fin and not self.extensions
                and self.messages.opcode is None):
            # Private: the key of the masker wsproto just built for this
            # frame (no public accessor).
            key = bytes(masker._masking_key) if isinstance(masker, XorMaskerSimple) else None
            if header.payload_len >= LARGE:
                expect_large()
            self.assembly = MessageBuffer(BinaryMessage, header.payload_len, key)
        elif isinstance(masker, XorMaskerSimple):
            # Private, as above: the key, handed to the faster masker.
            self.masker = _Masker(masker._masking_key)
        return True

    # Internal hook: FrameProtocol pulls frames from process_buffer(); a
    # frame being assembled is answered here, any other by wsproto.
    def process_buffer(self) -> Frame | None:
        if self.header is None and not self.parse_header():
            return None
        assembly = self.assembly
        if assembly is None:
            return FrameDecoder.process_buffer(self)  # (no super(): the common path)
        holder = self.holder
        if assembly.missing:
            piece = self.buffer.take(assembly.missing)
            if piece is None or assembly.add(piece):
                # The rest comes with the next reads, and nothing else is
                # buffered: they may go straight into the message.
                holder.payload_sink = assembly
                return None
        self.assembly = None
        self.header = self.effective_opcode = self.masker = None
        holder.payload_sink = None
        return Frame(_BINARY, assembly.finish(), True, True)


class FrameLayer(FrameProtocol):
    """wsproto's frame layer with wskit's message limit, and accepting close
    codes registered since wsproto was written.

    Used through ``FrameProtocol``'s public methods only (``receive_bytes``,
    ``received_frames``, ``send_data``, ``ping``, ``pong``, ``close``).
    """

    def __init__(self, client: bool, extensions: list[Extension], limit: int | None,
                 holder: SinkHolder | None = None) -> None:
        """``holder``: whose ``payload_sink`` attribute the decoder keeps up
        to date (see :class:`SinkHolder`); this layer's own by default."""
        super().__init__(client, extensions)
        self.payload_sink: MessageBufferProtocol | None = None
        # Private: FrameProtocol builds its FrameDecoder itself and takes no
        # decoder class; ours (the header size check, the small masker, the
        # binary frame assembly) is put in its place before its first use
        # (the parsing generator reads the attribute lazily).
        self._frame_decoder = _FrameDecoder(client, self.extensions, limit,
                                            self._message_decoder, holder or self)

    @property
    def at_rest(self) -> bool:
        """Whether wsproto holds nothing of a frame or a message: the next
        bytes start a new frame of a new message (so
        :func:`~wskit._core.smallframes.take_small` may read them first).

        Private: the decoder's buffer and current header, and the message
        decoder's opcode (set while a fragmented message is under way);
        wsproto has no public "between messages" test.
        """
        decoder = self._frame_decoder
        return (decoder.header is None and not decoder.buffer
                and self._message_decoder.opcode is None)

    # Private hook: every frame wsproto sends (data, ping, pong, close) is
    # built by _serialize_frame(), which masks a client's payload with its
    # pure-Python XorMaskerSimple (~0.4 GB/s) and takes no other masker.
    # This builds the same frame (RFC 6455 5.2) with mask_frame (header, key
    # and masked payload written into one new buffer in one pass); the
    # server side, which masks nothing, stays wsproto's.
    def _serialize_frame(self, opcode: Opcode, payload: bytes | bytearray = b"",
                         fin: bool = True) -> bytearray:
        if not self.client:
            return super()._serialize_frame(opcode, payload, fin)
        rsv = RsvBits(False, False, False)
        for extension in reversed(self.extensions):
            rsv, payload = extension.frame_outbound(self, opcode, rsv, bytes(payload), fin)
        first = (fin << 7) | (rsv.rsv1 << 6) | (rsv.rsv2 << 5) | (rsv.rsv3 << 4) | opcode
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", first, 0x80 | size)
        elif opcode.iscontrol():
            raise ValueError("payload too long for control frame")
        elif size < 65536:
            header = struct.pack("!BBH", first, 0x80 | 126, size)
        else:
            header = struct.pack("!BBQ", first, 0x80 | 127, size)
        if size >= LARGE:
            expect_large()
        # Section 5.3: a fresh, unpredictable key for every frame.
        key = os.urandom(4)
        return mask_frame(header, payload, key)  # type: ignore[return-value]

    # Private hook: wsproto validates close codes against its own table in
    # _process_close() with no way to extend it; this accepts the codes of
    # LATE_REGISTERED (1014) and leaves every other code to wsproto.
    def _process_close(self, frame: Frame) -> Frame:
        data = frame.payload
        if isinstance(data, (bytes, bytearray)) and len(data) >= 2:
            (code,) = struct.unpack("!H", data[:2])
            if code in LATE_REGISTERED:
                try:
                    reason = bytes(data[2:]).decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ParseFailed(f"Error decoding CLOSE reason: {exc}",
                                      CloseReason.INVALID_FRAME_PAYLOAD_DATA) from exc
                return Frame(frame.opcode, (code, reason), frame.frame_finished,
                             frame.message_finished)
        return super()._process_close(frame)


class DeflateState(PerMessageDeflate):
    """wsproto's permessage-deflate, with named access to the state it keeps
    private, for :class:`~wskit._core.deflate.BoundedDeflate`.

    ``PerMessageDeflate`` inflates each chunk with no size limit and always
    compresses with zlib's default memory level; bounding both needs its
    zlib objects and its per-message flags, which it has no public API for.
    """

    def forget_agreement(self) -> None:  # pragma: no cover (its caller is defensive)
        """Undo what a declined ``accept()`` set: not negotiated after all.

        Private: ``_enabled`` is set by wsproto's ``accept()`` and has no
        public setter; BoundedDeflate refuses offers wsproto would take
        (RFC 7692 section 5) after calling it.
        """
        self._enabled = False

    def start_compressor(self, bits: int, mem_level: int) -> None:
        """Create the compressor now, with our memory level, if there is none.

        Private: wsproto creates ``_compressor`` lazily with zlib's default
        memLevel (8) and takes no option; ours (5) cuts 112 KiB per
        connection.
        """
        if self._compressor is None:
            self._compressor = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -bits, mem_level
            )

    @property
    def inflater(self) -> Inflater | None:
        """The zlib inflater of the current context (``None`` between contexts).

        Private: wsproto's ``_decompressor``; BoundedDeflate inflates with
        ``max_length`` itself, and must share the context wsproto resets.
        """
        return self._decompressor

    @inflater.setter
    def inflater(self, value: Inflater | None) -> None:
        self._decompressor = value

    @property
    def inbound_compressed(self) -> bool | None:
        """Whether the message being received has RSV1 set (``None``: no
        message started). Private: wsproto's ``_inbound_compressed``."""
        return self._inbound_compressed

    @property
    def inbound_is_compressible(self) -> bool | None:
        """Whether the frame being received is a data frame. Private:
        wsproto's ``_inbound_is_compressible``."""
        return self._inbound_is_compressible

    def end_inbound_message(self) -> None:
        """Mark the received message finished, as wsproto does after its
        final frame. Private: wsproto resets ``_inbound_compressed``."""
        self._inbound_compressed = None
