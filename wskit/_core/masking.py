"""The WebSocket masking XOR (RFC 6455 section 5.3), in C when it can be.

Every frame a client sends is masked, and a server unmasks every frame it
receives: on large messages this XOR is most of the work. ``wskit._core._mask``
(``_mask.c``) does it at memory speed; it is built at install when a C
compiler is there and is optional (``setup.py``). Without it, or with the
environment variable ``WSKIT_NO_EXTENSIONS=1`` set before ``wskit`` is
imported, the pure-Python code below does the same work, slower.

Three tools, each in both versions:

- :func:`apply_mask`: the XOR of a buffer into a new ``bytes``.
- :func:`mask_frame`: a client's whole frame (header, key, masked payload)
  in one allocation, not a masked copy joined onto its header.
- :class:`MessageBuffer`: a frame's payload unmasked piece by piece, as the
  reads bring it, straight into the object that becomes the message (or
  read into it from the socket and unmasked in place); a large message is
  then neither kept as pieces nor joined, nor copied once more into its
  ``BinaryMessage`` (in C; the Python version copies once at the end).

:data:`IMPLEMENTATION` says which one is in use: ``"c"`` or ``"python"``.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from typing import Protocol, cast

__all__ = ["IMPLEMENTATION", "LARGE", "MessageBuffer", "MessageBufferPython", "apply_mask",
           "apply_mask_python", "expect_large", "mask_frame", "mask_frame_python"]

Buffer = bytes | bytearray | memoryview

# Below this size one big-integer XOR is faster than four strided
# translate() calls (3x at 64 bytes, even at 2 KiB); above it translate()
# wins (1.1 GB/s against 0.5 GB/s at 64 KiB).
_SMALL = 2048


@functools.cache
def _xor_table(key_byte: int) -> bytes:
    """The translate() table that XORs every byte with ``key_byte`` (made
    on first use: the C path never needs the 256 of them)."""
    return bytes(a ^ key_byte for a in range(256))


def apply_mask_python(data: bytes | bytearray | memoryview, mask: bytes) -> bytes:
    """``data`` XOR ``mask`` (4 bytes) repeated from ``mask[0]``, in Python."""
    size = len(data)
    if len(mask) != 4:
        raise ValueError(f"mask must be 4 bytes, got {len(mask)}")
    if size <= _SMALL:
        if not size:
            return b""
        key = (bytes(mask) * ((size >> 2) + 1))[:size]
        value = int.from_bytes(data, "little") ^ int.from_bytes(key, "little")
        return value.to_bytes(size, "little")
    out = bytearray(data)
    for i in range(4):
        out[i::4] = out[i::4].translate(_xor_table(mask[i]))
    return bytes(out)


def mask_frame_python(header: Buffer, data: Buffer, mask: bytes) -> bytes:
    """``header + mask + (data XOR mask)``: one masked frame, in Python."""
    return b"".join((header, mask, apply_mask_python(data, mask)))


class MessageBufferProtocol(Protocol):
    """What both versions of :class:`MessageBuffer` offer."""

    @property
    def missing(self) -> int:
        """Bytes of the payload not added yet."""

    def add(self, piece: Buffer, /) -> int:
        """Unmask (or copy) the next piece in; returns the bytes still missing."""

    def read_from(self, fd: int, most: int, /) -> int:
        """Read up to ``most`` bytes of the payload (never more than are
        missing) from the file descriptor straight into the message, and
        unmask them there; returns how many (0: end of stream). Raises what
        ``os.read`` raises (``BlockingIOError`` when nothing is there)."""

    def finish(self) -> bytes:
        """The complete message, an instance of ``cls`` (once)."""


class MessageBufferPython:
    """``MessageBuffer(cls, size, mask=None)`` in Python: one frame's payload
    of ``size`` bytes, unmasked with ``mask`` (or copied as it is, when
    ``None``) into one preallocated buffer as its pieces arrive;
    :meth:`finish` makes the ``cls`` instance (``bytes`` or a subclass)."""

    __slots__ = ("_buffer", "_cls", "_filled", "_mask")

    def __init__(self, cls: type[bytes], size: int, mask: bytes | None = None) -> None:
        if size < 0:
            raise ValueError("MessageBuffer() size must be >= 0")
        if mask is not None and len(mask) != 4:
            raise ValueError(f"mask must be 4 bytes, got {len(mask)}")
        self._cls = cls
        self._buffer: bytearray | None = bytearray(size)
        self._filled = 0
        self._mask = mask

    @property
    def missing(self) -> int:
        return len(self._buffer) - self._filled if self._buffer is not None else 0

    def add(self, piece: Buffer, /) -> int:
        buffer, filled, mask = self._buffer, self._filled, self._mask
        if buffer is None:
            raise ValueError("MessageBuffer: already finished")
        size = len(piece)
        if size > len(buffer) - filled:
            raise ValueError(f"MessageBuffer: {size} bytes added, "
                             f"{len(buffer) - filled} missing")
        if mask is not None:
            turn = filled & 3  # the key continues where the last piece left it
            piece = apply_mask_python(piece, mask[turn:] + mask[:turn])
        buffer[filled:filled + size] = piece
        self._filled = filled = filled + size
        return len(buffer) - filled

    def read_from(self, fd: int, most: int, /) -> int:
        buffer, filled, mask = self._buffer, self._filled, self._mask
        if buffer is None:
            raise ValueError("MessageBuffer: already finished")
        size = min(most, len(buffer) - filled)
        if size <= 0:
            return 0
        with memoryview(buffer) as view:
            got = os.readv(fd, [view[filled:filled + size]])
            if got and mask is not None:
                turn = filled & 3
                view[filled:filled + got] = apply_mask_python(view[filled:filled + got],
                                                              mask[turn:] + mask[:turn])
        self._filled = filled + got
        return got

    def finish(self) -> bytes:
        buffer = self._buffer
        if buffer is None:
            raise ValueError("MessageBuffer: already finished")
        if self._filled != len(buffer):
            raise ValueError(f"MessageBuffer: {len(buffer) - self._filled} bytes still missing")
        self._buffer = None
        return bytes.__new__(self._cls, buffer)


#: Frames from this size on are "large" for :func:`expect_large`.
LARGE = 2**18


@functools.cache
def expect_large() -> None:
    """Called (once does it) before the first large frame is built or
    assembled: allocates and frees one 4 MiB block.

    Why: glibc's malloc gives memory back to the system whenever more than
    twice its *mmap threshold* is free at the top of the heap, and that
    threshold starts at 128 KiB and only rises to the size of the largest
    block it has mapped and freed. A connection exchanging 1 MiB messages
    (a received message, a client's masked frame, the reads) frees 2-3 MiB
    at a time, right around that line: the heap shrinks and grows again
    for every message, and each of its pages is faulted in again (~500
    page faults per 1 MiB message, measured; a quarter of the time). One
    4 MiB block freed moves the line to 8 MiB, as the first 4 MiB message
    would. Nothing else changes; other allocators ignore it."""
    bytes(4 * 2**20)  # allocated (mapped) and freed at once


_Functions = tuple[
    Callable[[Buffer, bytes], bytes],
    Callable[[Buffer, Buffer, bytes], bytes],
    Callable[[type[bytes], int, "bytes | None"], MessageBufferProtocol],
    str,
]


def _load() -> _Functions:
    python: _Functions = (apply_mask_python, mask_frame_python, MessageBufferPython, "python")
    if os.environ.get("WSKIT_NO_EXTENSIONS", "") not in ("", "0"):
        return python
    try:
        # By name: the module is a compiled file that may not exist (the
        # install had no compiler), and mypy has no source to read for it.
        fast = importlib.import_module("wskit._core._mask")
    except ImportError:  # pragma: no cover (the install had no C compiler)
        return python
    return cast("_Functions", (fast.apply_mask, fast.mask_frame, fast.MessageBuffer, "c"))


#: ``apply_mask(data, mask) -> bytes``, ``mask_frame(header, data, mask) ->
#: bytes`` and ``MessageBuffer(cls, size, mask=None)``: C, or Python.
apply_mask, mask_frame, MessageBuffer, IMPLEMENTATION = _load()
