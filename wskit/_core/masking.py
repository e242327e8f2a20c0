"""The WebSocket masking XOR (RFC 6455 section 5.3), in C when it can be.

Every frame a client sends is masked, and a server unmasks every frame it
receives: on large messages this XOR is most of the work. ``wskit._core._mask``
(``_mask.c``) does it at memory speed; it is built at install when a C
compiler is there and is optional (``setup.py``). Without it, or with the
environment variable ``WSKIT_NO_EXTENSIONS=1`` set before ``wskit`` is
imported, the pure-Python functions below do the same work, slower.

:data:`IMPLEMENTATION` says which one is in use: ``"c"`` or ``"python"``.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from typing import cast

__all__ = ["IMPLEMENTATION", "apply_mask", "apply_mask_python"]

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


def _load() -> tuple[Callable[[bytes | bytearray | memoryview, bytes], bytes], str]:
    if os.environ.get("WSKIT_NO_EXTENSIONS", "") not in ("", "0"):
        return apply_mask_python, "python"
    try:
        # By name: the module is a compiled file that may not exist (the
        # install had no compiler), and mypy has no source to read for it.
        fast = importlib.import_module("wskit._core._mask").apply_mask
    except ImportError:  # pragma: no cover (the install had no C compiler)
        return apply_mask_python, "python"
    return cast("Callable[[bytes | bytearray | memoryview, bytes], bytes]", fast), "c"


#: ``apply_mask(data, mask) -> bytes``: the C function, or the Python one.
apply_mask, IMPLEMENTATION = _load()
