"""Autobahn section 9 (limits and performance, at moderate sizes) and
``max_message_size`` (close code 1009, RFC 6455 section 7.4.1).

Large messages whole, in fragments and in small writes; a thousand round
trips in a row; and the size limit: a message one byte over the limit is
refused with 1009 (a frame header announcing too much is enough, the server
must not wait for the payload), one at the limit is echoed.
"""

from __future__ import annotations

import time

import pytest

from ._frames import BINARY, CONT, TEXT, fragments, frame, message
from ._peers import BIG_LIMIT, SMALL_LIMIT, Connect

KIB, MIB = 2**10, 2**20


def payload(opcode: int, length: int) -> bytes:
    unit = b"BAsd7&jh23" if opcode == TEXT else bytes(range(256))
    return (unit * (length // len(unit) + 1))[:length]


def kind(opcode: int) -> str:
    return "text" if opcode == TEXT else "binary"


OPCODES = pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["text", "binary"])


@OPCODES
@pytest.mark.parametrize("length", [
    64 * KIB, 256 * KIB, MIB,
    pytest.param(4 * MIB, marks=pytest.mark.slow),
], ids=["64K", "256K", "1M", "4M"])
def test_large_message(connect: Connect, opcode: int, length: int) -> None:
    """9.1.x / 9.2.x: one large frame, echoed whole."""
    peer = connect()
    data = payload(opcode, length)
    peer.send(opcode, data)
    peer.expect((kind(opcode), data))
    peer.finish()


@OPCODES
@pytest.mark.parametrize("size", [64, 256, KIB, 4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB, MIB])
def test_fragmented_1mib(connect: Connect, opcode: int, size: int) -> None:
    """9.3.x / 9.4.x: a 1 MiB message in fragments of ``size`` bytes."""
    peer = connect()
    data = payload(opcode, MIB)
    peer.write(message(opcode, fragments(data, size)))
    peer.expect((kind(opcode), data))
    peer.finish()


@OPCODES
@pytest.mark.parametrize("chunk", [64, 128, 256, 512, KIB, 2 * KIB])
def test_1mib_in_small_writes(connect: Connect, opcode: int, chunk: int) -> None:
    """9.5.x / 9.6.x: one 1 MiB frame, written ``chunk`` bytes at a time."""
    peer = connect()
    data = payload(opcode, MIB)
    peer.send(opcode, data, chunk=chunk)
    peer.expect((kind(opcode), data))
    peer.finish()


@OPCODES
@pytest.mark.parametrize("length", [0, 16, 64, 256, KIB, 4 * KIB])
def test_thousand_round_trips(connect: Connect, opcode: int, length: int) -> None:
    """9.7.x / 9.8.x: 1000 messages, each sent after the previous echo came back."""
    peer = connect()
    data = payload(opcode, length)
    wire = frame(opcode, data)
    started = time.monotonic()
    for _ in range(1000):
        peer.write(wire)
        peer.expect((kind(opcode), data))
    assert time.monotonic() - started < 10, "1000 round trips took over 10 s"
    peer.finish()


def test_thousand_pipelined_messages(connect: Connect) -> None:
    """1000 messages written at once come back complete and in order."""
    peer = connect()
    sent = [b"message %d" % i for i in range(1000)]
    peer.write(b"".join(frame(TEXT, data) for data in sent))
    peer.expect(*[("text", data) for data in sent])
    peer.finish()


# -- max_message_size -------------------------------------------------------

@OPCODES
@pytest.mark.parametrize("size", [SMALL_LIMIT, 1, 7, 100, 1000],
                         ids=lambda s: "whole" if s == SMALL_LIMIT else f"frags{s}")
def test_message_at_the_limit(connect_small: Connect, opcode: int, size: int) -> None:
    """A message of exactly max_message_size bytes is accepted, however fragmented."""
    peer = connect_small()
    data = payload(opcode, SMALL_LIMIT)
    peer.write(message(opcode, fragments(data, size)))
    peer.expect((kind(opcode), data))
    peer.finish()


@OPCODES
@pytest.mark.parametrize("size", [SMALL_LIMIT + 1, 1, 100, 1000],
                         ids=lambda s: "whole" if s == SMALL_LIMIT + 1 else f"frags{s}")
def test_message_over_the_limit(connect_small: Connect, opcode: int, size: int) -> None:
    """One byte over max_message_size: close 1009, fail fast."""
    peer = connect_small()
    data = payload(opcode, SMALL_LIMIT + 1)
    peer.write(message(opcode, fragments(data, size)))
    peer.expect_close(1009)


@OPCODES
@pytest.mark.parametrize("declared", [SMALL_LIMIT + 1, 65536, 2**40, 2**63 - 1],
                         ids=["limit+1", "64K", "2^40", "2^63-1"])
def test_header_announcing_too_much(connect_small: Connect, opcode: int, declared: int) -> None:
    """Only a frame header announcing more than the limit: 1009 at once, no
    waiting for (or buffering of) the payload."""
    peer = connect_small()
    peer.write(frame(opcode, b"", declared=declared))
    peer.expect_close(1009)


def test_continuation_header_over_the_limit(connect_small: Connect) -> None:
    """The first fragment fits; the continuation header pushes past the limit."""
    peer = connect_small()
    peer.send(TEXT, b"x" * 1000, fin=False)
    peer.write(frame(CONT, b"", declared=SMALL_LIMIT - 1000 + 1))
    peer.expect_close(1009)


def test_messages_under_the_limit_keep_working(connect_small: Connect) -> None:
    """The limit is per message, not per connection."""
    peer = connect_small()
    for i in range(20):
        data = bytes([i]) * SMALL_LIMIT
        peer.send(BINARY, data)
        peer.expect(("binary", data))
    peer.finish()


def test_control_frames_do_not_count(connect_small: Connect) -> None:
    """Pings inside a message at the limit do not count towards it."""
    peer = connect_small()
    data = b"y" * SMALL_LIMIT
    pieces = fragments(data, 256)
    frames = []
    for i, piece in enumerate(pieces):
        frames.append(frame(TEXT if i == 0 else CONT, piece, fin=i == len(pieces) - 1))
        frames.append(frame(0x9, b"p" * 125))
    peer.write(b"".join(frames))
    peer.expect_with_pongs([("text", data)], [b"p" * 125] * len(pieces))
    peer.finish()


@pytest.mark.slow
@pytest.mark.parametrize("size", [None, 64 * KIB], ids=["whole", "frags64K"])
def test_message_at_the_big_limit(connect: Connect, size: int | None) -> None:
    """A 16 MiB message, exactly the big server's max_message_size, round-trips."""
    peer = connect()
    data = payload(BINARY, BIG_LIMIT)
    peer.write(message(BINARY, fragments(data, size or BIG_LIMIT)))
    peer.expect(("binary", data))
    peer.finish()


def test_default_server_limit(connect: Connect) -> None:
    """The big server refuses a header announcing one byte over its limit."""
    peer = connect()
    peer.write(frame(BINARY, b"", declared=BIG_LIMIT + 1))
    peer.expect_close(1009)
