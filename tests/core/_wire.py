"""Helpers of the core tests: an in-memory client/server pair, hand-made frames."""

from __future__ import annotations

import struct

from wskit._core.deflate import BoundedDeflate
from wskit._core.protocol import ConnectionCore


def pair(limit: int | None = 2**20, deflate: bool = False) -> tuple[ConnectionCore, ConnectionCore]:
    def exts(client: bool) -> list[BoundedDeflate]:
        if not deflate:
            return []
        ext = BoundedDeflate(client=client, max_message_size=limit)
        ext.finalize("permessage-deflate")
        return [ext]

    client = ConnectionCore(client=True, extensions=exts(True), max_message_size=limit)
    server = ConnectionCore(client=False, extensions=exts(False), max_message_size=limit)
    return client, server


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0,
          mask: bytes = b"\x01\x02\x03\x04") -> bytes:
    """A masked client frame built by hand."""
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked
