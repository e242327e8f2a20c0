"""Autobahn section 4: reserved opcodes (RFC 6455 section 5.2).

"If an unknown opcode is received, the receiving endpoint MUST _Fail the
WebSocket Connection_." 0x3-0x7 are reserved non-control opcodes, 0xB-0xF
reserved control opcodes.
"""

from __future__ import annotations

import pytest

from ._frames import CONT, PING, TEXT, frame
from ._peers import Connect

RESERVED = [
    pytest.param(op, id=f"{'4.1' if op < 8 else '4.2'}-opcode-{op:#x}")
    for op in [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF]
]


@pytest.mark.parametrize("opcode", RESERVED)
@pytest.mark.parametrize("data", [b"", b"reserved opcode payload"], ids=["empty", "payload"])
def test_reserved_opcode_fails(connect: Connect, opcode: int, data: bytes) -> None:
    """4.1.1/4.2.1: a frame with a reserved opcode fails the connection (1002)."""
    peer = connect()
    peer.send(opcode, data)
    peer.expect_close(1002)


@pytest.mark.parametrize("opcode", RESERVED)
def test_after_a_valid_message_then_ping(connect: Connect, opcode: int) -> None:
    """4.1.3/4.2.3: echo of a valid message, then the reserved frame and a ping:
    the connection fails and the ping is not answered."""
    peer = connect()
    peer.send(TEXT, b"Hello, world!")
    peer.expect(("text", b"Hello, world!"))
    peer.write(frame(opcode, b"Hello, world!") + frame(PING, b""))
    peer.expect_close(1002)


@pytest.mark.parametrize("opcode", RESERVED)
def test_chopped_into_single_bytes(connect: Connect, opcode: int) -> None:
    """4.1.4/4.2.4: as above, written one byte at a time."""
    peer = connect()
    peer.send(TEXT, b"Hello, world!")
    peer.expect(("text", b"Hello, world!"))
    peer.write(frame(opcode, b"Hello, world!") + frame(PING, b""), chunk=1)
    peer.expect_close(1002)


@pytest.mark.parametrize("opcode", RESERVED)
def test_sent_together_with_a_valid_message(connect: Connect, opcode: int) -> None:
    """4.1.2/4.2.2 in one write: the echo may be missing (Autobahn non-strict),
    the pong may not be there."""
    peer = connect()
    peer.write(frame(TEXT, b"Hello, world!") + frame(opcode, b"x") + frame(PING, b""))
    got = peer.rest()
    assert [e[:2] for e in got] in ([("text", b"Hello, world!"), ("close", 1002)],
                                    [("close", 1002)]), got


@pytest.mark.parametrize("opcode", [op for op in range(3, 8)], ids=lambda op: f"{op:#x}")
def test_reserved_opcode_as_first_fragment(connect: Connect, opcode: int) -> None:
    """A reserved non-control opcode is refused even when FIN is clear."""
    peer = connect()
    peer.write(frame(opcode, b"frag", fin=False) + frame(CONT, b"ment"))
    peer.expect_close(1002)


@pytest.mark.parametrize("opcode", RESERVED)
def test_inside_a_fragmented_message(connect: Connect, opcode: int) -> None:
    """A reserved opcode between two fragments of a text message."""
    peer = connect()
    peer.write(frame(TEXT, b"frag", fin=False) + frame(opcode, b"") + frame(CONT, b"ment"))
    peer.expect_close(1002)
