"""The fast path for the commonest reads: whole, small, unfragmented
messages, and the close frame that ends a connection.

Most reads on a busy server carry one or a few short messages, each in one
final frame (FIN set, no RSV bit, text or binary), complete in the read.
wsproto decodes each through a generator, a header object, a masker object,
a buffer with commit and rollback, a ``Frame`` and a UTF-8 incremental
decoder: about three quarters of the Python work of echoing a 64-byte
message. :func:`take_small` reads such frames straight from the bytes.

It only ever *accepts*. The moment it meets anything else — a control
frame, a fragment, an RSV bit, a payload over 65,535 bytes, a frame cut by
the end of the read, a mask bit the wrong way, a non-minimal length, a
message over the size limit, invalid UTF-8 — it stops, and the caller hands
the rest of the read to wsproto, which decodes it (and refuses what must be
refused, with its own reason and close code) exactly as before. So every
limit and every error stays wsproto's and wskit's, unchanged; only the
common case is shorter.

Only for a connection without extensions (no permessage-deflate), and only
while wsproto holds no partial frame or message (``FrameLayer.at_rest``):
frames must be decoded in order.

:func:`take_close` does the same for a close frame that wsproto would
accept (a registered code, a UTF-8 reason), and :func:`close_frame` writes
the server's echo of it: a connection that only opens, trades small
messages and is closed by its peer never builds wsproto's frame layer.

``wskit._core._frames`` (``_frames.c``) does :func:`take_small` in C, where it was
built (an optional extension, like the masking's); without it, or with
``WSKIT_NO_EXTENSIONS=1``, :func:`take_small_python` below is used.
:data:`IMPLEMENTATION` says which: ``"c"`` or ``"python"``.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable

from .frames import LATE_REGISTERED
from .masking import apply_mask
from .messages import BinaryMessage, Message, TextMessage

__all__ = ["IMPLEMENTATION", "close_frame", "take_close", "take_small", "take_small_python"]

_new_text = str.__new__
_new_binary = bytes.__new__
# The largest payload read here: a 16-bit length. Longer messages are few
# per read, and cost wsproto's overhead once for many bytes.
_MAX = 65535


def take_small_python(data: bytes | bytearray, masked: bool,
                      limit: int | None) -> tuple[list[Message], int]:
    """``(messages, consumed)``: the whole final text/binary frames at the
    start of ``data`` that need none of wsproto's care, and how many bytes
    they took. ``masked``: frames must be masked (a server reading a
    client); else they must not be. ``limit``: the largest message allowed
    (``None``: no limit). The bytes from ``consumed`` on are wsproto's."""
    messages: list[Message] = []
    append = messages.append
    end = len(data)
    pos = 0
    most = _MAX if limit is None or limit > _MAX else limit
    mask_bit = 0x80 if masked else 0
    key_size = 4 if masked else 0
    while end - pos >= 2:
        first = data[pos]
        if first != 0x81 and first != 0x82:  # FIN, no RSV, text or binary
            break
        second = data[pos + 1]
        if second & 0x80 != mask_bit:
            break
        size = second & 0x7F
        start = pos + 2
        if size == 126:
            if end - start < 2:
                break
            size = (data[start] << 8) | data[start + 1]
            if size < 126:  # not the minimal encoding: wsproto refuses it
                break
            start += 2
        elif size == 127:
            break
        if size > most:
            break
        stop = start + key_size + size
        if stop > end:
            break
        payload: bytes | bytearray
        if masked:  # (the mask may be a bytearray slice: any buffer will do)
            payload = apply_mask(data[start + 4:stop], data[start:start + 4])  # type: ignore[arg-type]
        else:
            payload = data[start:stop]
        if first == 0x81:
            try:
                append(_new_text(TextMessage, payload, "utf-8"))
            except UnicodeDecodeError:
                break  # wsproto fails the connection, with its reason
        else:
            append(_new_binary(BinaryMessage, payload))
        pos = stop
    return messages, pos


# RFC 6455 7.4.1: the codes a peer may send, as wsproto accepts them (its
# table, and LATE_REGISTERED) besides 3000-4999. Any other code is left to
# wsproto, which refuses it.
_PEER_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013,
                         *LATE_REGISTERED})


def take_close(data: bytes | bytearray, pos: int, masked: bool) -> tuple[int, str] | None:
    """``(code, reason)`` of the close frame at ``data[pos:]`` when it is
    whole and wsproto would accept it (1005 and ``""`` for an empty one);
    ``None`` for anything else, which is then wsproto's to decode or refuse.
    ``masked`` as for :func:`take_small_python`."""
    end = len(data)
    if end - pos < 2 or data[pos] != 0x88:  # FIN, no RSV, close
        return None
    second = data[pos + 1]
    if second & 0x80 != (0x80 if masked else 0):
        return None
    size = second & 0x7F
    start = pos + 6 if masked else pos + 2
    stop = start + size
    if size > 125 or stop > end:
        return None
    if size == 0:
        return 1005, ""
    if size == 1:
        return None
    payload = (apply_mask(data[start:stop], data[pos + 2:start]) if masked  # type: ignore[arg-type]
               else data[start:stop])
    code = (payload[0] << 8) | payload[1]
    if code not in _PEER_CODES and not 3000 <= code <= 4999:
        return None
    try:
        reason = bytes(payload[2:]).decode("utf-8")
    except UnicodeDecodeError:
        return None
    return code, reason


def close_frame(code: int | None, reason: str) -> bytes:
    """An unmasked close frame (a server's): ``code`` (``None``: no code and
    no reason) and a ``reason`` the caller knows fits in 123 bytes."""
    if code is None:
        return b"\x88\x00"
    payload = code.to_bytes(2, "big") + reason.encode("utf-8")
    return bytes((0x88, len(payload))) + payload


TakeSmall = Callable[[bytes | bytearray, bool, "int | None"], tuple[list[Message], int]]


def _load() -> tuple[TakeSmall, str]:
    if os.environ.get("WSKIT_NO_EXTENSIONS", "") not in ("", "0"):
        return take_small_python, "python"
    try:
        # By name: a compiled module that may not exist (no C compiler at
        # install), with no source for mypy to read.
        fast = importlib.import_module("wskit._core._frames").take_small
    except ImportError:  # pragma: no cover (the install had no C compiler)
        return take_small_python, "python"
    # The message classes go first, bound once.
    return functools.partial(fast, TextMessage, BinaryMessage), "c"


#: ``take_small(data, masked, limit) -> (messages, used)``: C or Python.
take_small, IMPLEMENTATION = _load()
