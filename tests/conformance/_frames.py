"""Hand-made WebSocket frames, handshakes and permessage-deflate, independent of wskit.

Nothing here imports wskit or wsproto: the suite checks wskit against this
second, deliberately small reading of RFC 6455 (framing, section 5.2;
masking, 5.3; control frames, 5.5; close codes, 7.4) and RFC 7692
(permessage-deflate).

``frame()`` builds any frame, valid or not (reserved bits and opcodes,
non-minimal lengths, lying lengths, unmasked client frames).
``FrameParser`` splits a byte stream into :class:`Frame` objects, and
``Reassembler`` turns the frames a wskit endpoint sent into a transcript of
events while checking that wskit itself sends only valid frames:

    ("text", payload)  ("binary", payload)  ("ping", payload)
    ("pong", payload)  ("close", code or None, reason bytes)

Text payloads stay bytes so that echoes compare byte for byte.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import struct
import zlib

__all__ = [
    "BINARY",
    "CLOSE",
    "CONT",
    "PING",
    "PONG",
    "REGISTERED_CODES",
    "TEXT",
    "Deflate",
    "Event",
    "Frame",
    "FrameParser",
    "Reassembler",
    "accept_token",
    "close_payload",
    "fragments",
    "frame",
    "mask",
    "message",
    "parse_extension",
    "parse_head",
    "upgrade_request",
    "upgrade_response",
    "valid_close_code",
]

CONT, TEXT, BINARY = 0x0, 0x1, 0x2
CLOSE, PING, PONG = 0x8, 0x9, 0xA
_NAMES = {TEXT: "text", BINARY: "binary", PING: "ping", PONG: "pong"}
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: ("text" | "binary" | "ping" | "pong", payload) or ("close", code, reason).
Event = tuple[object, ...]

# Section 7.4: codes a peer may put in a close frame. 1000-2999 are the
# protocol's own; of them only the RFC's and the IANA-registered
# (1012 Service Restart, 1013 Try Again Later, 1014 Bad Gateway) are
# defined; 1004 is reserved; 1005, 1006 and 1015 must never be sent.
REGISTERED_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                              1012, 1013, 1014})


def valid_close_code(code: int) -> bool:
    return code in REGISTERED_CODES or 3000 <= code <= 4999


# ----------------------------------------------------------------------
# Building frames (section 5.2)


def mask(data: bytes, key: bytes) -> bytes:
    """XOR ``data`` with the 4-byte masking ``key`` (section 5.3)."""
    n = len(data)
    if not n:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    key: bytes | None = None,
    length_bytes: int | None = None,
    declared: int | None = None,
) -> bytes:
    """One frame, exactly as described, valid or not.

    ``rsv`` is the 3-bit RSV field as Autobahn numbers it (4 = RSV1,
    2 = RSV2, 1 = RSV3). ``length_bytes`` forces the extended length form
    (0, 2 or 8 bytes) even where it is not minimal; ``declared`` puts a
    length in the header that differs from the payload that follows.
    """
    size = len(payload) if declared is None else declared
    first = (0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0x0F)
    mask_bit = 0x80 if masked else 0
    if length_bytes is None:
        length_bytes = 0 if size < 126 else 2 if size < 2**16 else 8
    if length_bytes == 0:
        header = struct.pack("!BB", first, mask_bit | size)
    elif length_bytes == 2:
        header = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, size)
    if not masked:
        return header + payload
    key = os.urandom(4) if key is None else key
    return header + key + mask(payload, key)


def close_payload(code: int | None, reason: bytes | str = b"") -> bytes:
    """The body of a close frame: 2-byte code then the reason (section 5.5.1)."""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    if code is None:
        return reason
    return struct.pack("!H", code) + reason


def fragments(payload: bytes, size: int) -> list[bytes]:
    """``payload`` cut into pieces of ``size`` bytes (at least one piece)."""
    return [payload[i:i + size] for i in range(0, len(payload), size)] or [b""]


def message(opcode: int, pieces: list[bytes], *, rsv: int = 0, masked: bool = True) -> bytes:
    """A message sent as one frame per piece (the first with ``opcode``)."""
    out = []
    for i, piece in enumerate(pieces):
        out.append(frame(opcode if i == 0 else CONT, piece, fin=i == len(pieces) - 1,
                         rsv=rsv if i == 0 else 0, masked=masked))
    return b"".join(out)


# ----------------------------------------------------------------------
# Parsing frames


@dataclasses.dataclass(frozen=True)
class Frame:
    fin: bool
    rsv: int
    opcode: int
    payload: bytes
    masked: bool


class FrameParser:
    """Splits a byte stream into frames; ``feed`` then ``next`` until ``None``."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def next(self) -> Frame | None:
        buf = self.buffer
        if len(buf) < 2:
            return None
        fin, rsv, opcode = bool(buf[0] & 0x80), buf[0] >> 4 & 7, buf[0] & 0x0F
        masked, size, start = bool(buf[1] & 0x80), buf[1] & 0x7F, 2
        if size == 126:
            if len(buf) < 4:
                return None
            size, start = struct.unpack_from("!H", buf, 2)[0], 4
            assert size >= 126, f"non-minimal 16-bit length {size}"
        elif size == 127:
            if len(buf) < 10:
                return None
            size, start = struct.unpack_from("!Q", buf, 2)[0], 10
            assert size >= 2**16, f"non-minimal 64-bit length {size}"
            assert not size >> 63, "64-bit length with the high bit set"
        key = b""
        if masked:
            if len(buf) < start + 4:
                return None
            key, start = bytes(buf[start:start + 4]), start + 4
        if len(buf) < start + size:
            return None
        payload = bytes(buf[start:start + size])
        del buf[:start + size]
        if masked:
            payload = mask(payload, key)
        return Frame(fin, rsv, opcode, payload, masked)


class Reassembler:
    """Frames a wskit endpoint sent -> events, asserting that each is valid.

    ``masked``: whether the sender must mask (a client) or must not (a
    server), section 5.1. ``inflate``: the receiving half of a negotiated
    permessage-deflate, or ``None`` when none was negotiated (then every
    RSV bit must be clear, section 5.2).
    """

    def __init__(self, *, masked: bool, inflate: Deflate | None = None) -> None:
        self.masked = masked
        self.inflate = inflate
        self.closed = False
        self._opcode: int | None = None
        self._compressed = False
        self._parts: list[bytes] = []

    def add(self, f: Frame) -> list[Event]:
        who = "client" if self.masked else "server"
        assert not self.closed, f"{who} sent a frame after its close frame: {f}"
        assert f.masked == self.masked, f"{who} frame masking is wrong (section 5.1): {f}"
        rsv_allowed = 4 if (self.inflate is not None and f.opcode in (TEXT, BINARY)) else 0
        assert f.rsv & ~rsv_allowed == 0, f"{who} set a reserved bit: {f}"
        if f.opcode >= 8:
            assert f.fin, f"{who} fragmented a control frame: {f}"
            assert len(f.payload) <= 125, f"{who} sent a control frame over 125 bytes"
            if f.opcode == CLOSE:
                self.closed = True
                return [self._close(f.payload)]
            assert f.opcode in (PING, PONG), f"{who} sent reserved opcode {f.opcode:#x}"
            return [(_NAMES[f.opcode], f.payload)]
        if f.opcode == CONT:
            assert self._opcode is not None, f"{who} sent a continuation with no message"
        else:
            assert f.opcode in (TEXT, BINARY), f"{who} sent reserved opcode {f.opcode:#x}"
            assert self._opcode is None, f"{who} started a message inside another"
            self._opcode, self._compressed = f.opcode, bool(f.rsv & 4)
        self._parts.append(f.payload)
        if not f.fin:
            return []
        payload = b"".join(self._parts)
        opcode, compressed = self._opcode, self._compressed
        self._opcode, self._parts = None, []
        if compressed:
            assert self.inflate is not None
            payload = self.inflate.decompress(payload)
        if opcode == TEXT:
            payload.decode("utf-8")  # wskit must send valid UTF-8 (section 8.1)
        return [(_NAMES[opcode], payload)]

    def _close(self, body: bytes) -> Event:
        if not body:
            return ("close", None, b"")
        assert len(body) >= 2, "close frame with a 1-byte body (section 5.5.1)"
        code = struct.unpack("!H", body[:2])[0]
        assert valid_close_code(code), f"close code {code} may not be sent (section 7.4)"
        reason = body[2:]
        reason.decode("utf-8")
        return ("close", code, reason)


# ----------------------------------------------------------------------
# The opening handshake (section 4)


def accept_token(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode()


def upgrade_request(host: str, port: int, *, path: str = "/", extensions: str | None = None,
                    key: str | None = None) -> tuple[bytes, str]:
    """(request bytes, Sec-WebSocket-Key) of a client's upgrade request."""
    key = key or base64.b64encode(os.urandom(16)).decode("ascii")
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if extensions is not None:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), key


def upgrade_response(key: str, *, extensions: str | None = None) -> bytes:
    """A server's 101 answer to ``key``."""
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_token(key)}",
    ]
    if extensions is not None:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_head(data: bytes) -> tuple[str, dict[str, list[str]], bytes]:
    """(start line, headers by lower-case name, bytes after the head)."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"incomplete HTTP head: {data!r}"
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return lines[0], headers, rest


def parse_extension(value: str) -> tuple[str, dict[str, str | None]]:
    """``permessage-deflate; a=1; b`` -> ("permessage-deflate", {"a": "1", "b": None})."""
    name, *params = (p.strip() for p in value.split(";"))
    parsed: dict[str, str | None] = {}
    for param in params:
        key, eq, val = param.partition("=")
        parsed[key.strip()] = val.strip().strip('"') if eq else None
    return name, parsed


# ----------------------------------------------------------------------
# permessage-deflate (RFC 7692)


class Deflate:
    """One direction of permessage-deflate: compress or decompress messages.

    ``window_bits`` is the LZ77 window (9-15); ``no_context_takeover``
    resets the state after each message (section 7.1.1).
    """

    _TAIL = b"\x00\x00\xff\xff"

    def __init__(self, window_bits: int = 15, *, no_context_takeover: bool = False) -> None:
        self.window_bits = window_bits
        self.no_context_takeover = no_context_takeover
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None

    def compress(self, data: bytes) -> bytes:
        """The compressed payload of one message (section 7.2.1)."""
        if self._compressor is None:
            self._compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED,
                                                -self.window_bits)
        out = self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(self._TAIL)
        if self.no_context_takeover:
            self._compressor = None
        return out[:-4]

    def decompress(self, data: bytes) -> bytes:
        """The payload of one compressed message (section 7.2.2)."""
        if self._decompressor is None:
            # A window as small as negotiated: a peer that used a larger one
            # makes this fail ("invalid distance too far back").
            self._decompressor = zlib.decompressobj(-self.window_bits)
        out = self._decompressor.decompress(data + self._TAIL)
        if self.no_context_takeover:
            self._decompressor = None
        return out
