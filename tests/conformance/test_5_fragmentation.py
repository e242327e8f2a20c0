"""Autobahn section 5: fragmentation (RFC 6455 section 5.4).

A message may be split into any number of frames: the first carries the
opcode, the rest are continuations (opcode 0), the last has FIN set; control
frames may be injected between fragments; fragments of two messages may not
interleave; a continuation with no message in progress fails the connection.
The echo server answers with the whole message (frames may be coalesced).
"""

from __future__ import annotations

import pytest

from ._frames import BINARY, CONT, PING, PONG, TEXT, fragments, frame, message
from ._peers import Connect


def text(length: int) -> bytes:
    return (b"fragmented text " * (length // 16 + 1))[:length]


@pytest.mark.parametrize("chunk", [None, 3, 1], ids=["5.3-whole", "5.4-writes3", "5.5-writes1"])
def test_two_fragments(connect: Connect, chunk: int | None) -> None:
    """5.3-5.5: a text message in two fragments."""
    peer = connect()
    peer.write(frame(TEXT, b"fragment1", fin=False) + frame(CONT, b"fragment2"), chunk)
    peer.expect(("text", b"fragment1fragment2"))
    peer.finish()


@pytest.mark.parametrize("chunk", [None, 3, 1], ids=["5.6-whole", "5.7-writes3", "5.8-writes1"])
def test_ping_between_fragments(connect: Connect, chunk: int | None) -> None:
    """5.6-5.8: a ping between the fragments is answered; the message is whole."""
    peer = connect()
    peer.write(frame(TEXT, b"fragment1", fin=False) + frame(PING, b"ping payload")
               + frame(CONT, b"fragment2"), chunk)
    peer.expect(("pong", b"ping payload"), ("text", b"fragment1fragment2"))
    peer.finish()


@pytest.mark.parametrize("fin", [True, False], ids=["fin", "no-fin"])
@pytest.mark.parametrize("data", [b"", b"non-continuation payload"], ids=["empty", "payload"])
@pytest.mark.parametrize("chunk", [None, 1], ids=["whole", "writes1"])
def test_continuation_without_message_fails(connect: Connect, fin: bool, data: bytes,
                                            chunk: int | None) -> None:
    """5.9-5.14: a continuation frame with no message in progress (1002)."""
    peer = connect()
    peer.write(frame(CONT, data, fin=fin) + frame(TEXT, b"Hello, world!"), chunk)
    peer.expect_close(1002)


@pytest.mark.parametrize("chunk", [None, 1], ids=["5.15-whole", "writes1"])
def test_continuation_after_final_fragment_fails(connect: Connect, chunk: int | None) -> None:
    """5.15: fragment, final continuation, then a stray continuation: the first
    message is echoed, the stray continuation fails the connection."""
    peer = connect()
    peer.write(frame(TEXT, b"fragment1", fin=False) + frame(CONT, b"fragment2"))
    peer.expect(("text", b"fragment1fragment2"))
    peer.write(frame(CONT, b"fragment3", fin=False) + frame(CONT, b"fragment4"), chunk)
    peer.expect_close(1002)


@pytest.mark.parametrize("first", [TEXT, BINARY], ids=["text", "binary"])
@pytest.mark.parametrize("second", [TEXT, BINARY], ids=["then-text", "then-binary"])
@pytest.mark.parametrize("second_fin", [True, False], ids=["fin", "no-fin"])
def test_new_message_inside_fragmented_message_fails(connect: Connect, first: int,
                                                     second: int, second_fin: bool) -> None:
    """5.18: a data frame that is not a continuation while a message is in
    progress ("fragments of one message MUST NOT be interleaved")."""
    peer = connect()
    peer.write(frame(first, b"fragment1", fin=False) + frame(second, b"fragment2",
                                                             fin=second_fin))
    peer.expect_close(1002)


@pytest.mark.parametrize("pongs", [False, True], ids=["5.19-pings", "pongs"])
def test_control_frames_between_five_fragments(connect: Connect, pongs: bool) -> None:
    """5.19/5.20: a message in 5 fragments with control frames after the 2nd
    and 4th, sent as the test goes: pings answered at once, message whole."""
    peer = connect()
    control = PONG if pongs else PING
    peer.send(TEXT, b"fragment1", fin=False)
    peer.send(CONT, b"fragment2", fin=False)
    peer.send(control, b"pongme 1!")
    if not pongs:
        peer.expect(("pong", b"pongme 1!"))
    peer.send(CONT, b"fragment3", fin=False)
    peer.send(CONT, b"fragment4", fin=False)
    peer.send(control, b"pongme 2!")
    if not pongs:
        peer.expect(("pong", b"pongme 2!"))
    peer.send(CONT, b"fragment5")
    peer.expect(("text", b"fragment1fragment2fragment3fragment4fragment5"))
    peer.finish()


SIZES = [
    pytest.param(length, size, id=f"{length}-in-{size}")
    for length, size in [
        (1, 1), (2, 1), (10, 1), (127, 1), (10, 3), (100, 7), (1000, 7), (1000, 125),
        (1000, 126), (1000, 127), (1000, 128), (1000, 999), (1000, 1000), (65536, 1000),
        (65536, 4096), (65537, 65536), (200_000, 65535), (200_000, 65536),
    ]
]


@pytest.mark.parametrize(("length", "size"), SIZES)
@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["text", "binary"])
def test_fragment_sizes(connect: Connect, opcode: int, length: int, size: int) -> None:
    """A message cut into fragments of ``size`` bytes comes back whole."""
    peer = connect()
    data = text(length) if opcode == TEXT else bytes(i % 251 for i in range(length))
    peer.write(message(opcode, fragments(data, size)))
    peer.expect(("text" if opcode == TEXT else "binary", data))
    peer.finish()


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["text", "binary"])
@pytest.mark.parametrize("pieces", [
    pytest.param([b"", b""], id="two-empty"),
    pytest.param([b"", b"", b"", b"", b""], id="five-empty"),
    pytest.param([b"", b"data", b""], id="empty-first-and-last"),
    pytest.param([b"data", b"", b""], id="empty-after"),
])
def test_empty_fragments(connect: Connect, opcode: int, pieces: list[bytes]) -> None:
    """6.1-style: empty fragments are valid and add nothing."""
    peer = connect()
    peer.write(message(opcode, pieces))
    peer.expect(("text" if opcode == TEXT else "binary", b"".join(pieces)))
    peer.finish()


@pytest.mark.parametrize("gap", range(1, 6))
def test_ping_at_every_gap(connect: Connect, gap: int) -> None:
    """A ping between fragment ``gap`` and ``gap + 1`` of a 6-fragment message."""
    peer = connect()
    pieces = [f"<{i}>".encode() for i in range(6)]
    frames = [frame(TEXT if i == 0 else CONT, p, fin=i == 5) for i, p in enumerate(pieces)]
    frames.insert(gap, frame(PING, b"gap %d" % gap))
    peer.write(b"".join(frames))
    peer.expect(("pong", b"gap %d" % gap), ("text", b"".join(pieces)))
    peer.finish()


def test_many_pings_inside_a_fragmented_message(connect: Connect) -> None:
    """A ping after every one of 100 one-byte fragments."""
    peer = connect()
    frames = []
    for i in range(100):
        frames.append(frame(BINARY if i == 0 else CONT, bytes([i]), fin=i == 99))
        frames.append(frame(PING, b"%d" % i))
    peer.write(b"".join(frames))
    peer.expect_with_pongs([("binary", bytes(range(100)))], [b"%d" % i for i in range(100)])
    peer.finish()


def test_close_between_fragments(connect: Connect) -> None:
    """7.1.5: a close frame between fragments: the close is echoed, the
    unfinished message is never delivered, the fragment after it is ignored."""
    peer = connect()
    peer.write(frame(TEXT, b"fragment1", fin=False))
    peer.close(1000)
    peer.send(CONT, b"fragment2")
    peer.expect_close(1000)
