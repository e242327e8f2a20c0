"""Autobahn section 3: reserved bits (RFC 6455 section 5.2).

"RSV1, RSV2, RSV3: MUST be 0 unless an extension is negotiated that defines
meanings for non-zero values. If a nonzero value is received and none of the
negotiated extensions defines the meaning of such a nonzero value, the
receiving endpoint MUST _Fail the WebSocket Connection_."

RSV values are numbered as Autobahn does: 4 = RSV1, 2 = RSV2, 1 = RSV3.
With permessage-deflate negotiated RSV1 means "compressed" on the first frame
of a data message, and is still forbidden on control and continuation frames
(RFC 7692 section 6.1); RSV2 and RSV3 stay forbidden.
"""

from __future__ import annotations

import pytest

from ._frames import BINARY, CLOSE, CONT, PING, PONG, TEXT, close_payload, frame
from ._peers import DEFLATE, Connect

#: (id, frames) builders: the frame carrying ``rsv`` in each kind of position.
KINDS = {
    "text": lambda rsv: frame(TEXT, b"Hello", rsv=rsv),
    "binary": lambda rsv: frame(BINARY, b"\x00\xff\x00\xff", rsv=rsv),
    "empty-text": lambda rsv: frame(TEXT, b"", rsv=rsv),
    "ping": lambda rsv: frame(PING, b"ping", rsv=rsv),
    "pong": lambda rsv: frame(PONG, b"pong", rsv=rsv),
    "close": lambda rsv: frame(CLOSE, close_payload(1000), rsv=rsv),
    "first-fragment": lambda rsv: frame(TEXT, b"frag", fin=False, rsv=rsv)
    + frame(CONT, b"ment"),
    "continuation": lambda rsv: frame(TEXT, b"frag", fin=False)
    + frame(CONT, b"ment", rsv=rsv),
}


@pytest.mark.parametrize("rsv", range(1, 8))
@pytest.mark.parametrize("kind", list(KINDS))
def test_reserved_bits_fail(connect: Connect, kind: str, rsv: int) -> None:
    """3.1, 3.5-3.7: any RSV bit without an extension fails the connection (1002)."""
    peer = connect()
    peer.write(KINDS[kind](rsv))
    peer.expect_close(1002)


@pytest.mark.parametrize("rsv", [1, 2, 4])
def test_after_a_valid_message(connect: Connect, rsv: int) -> None:
    """3.2: a valid message is echoed; a frame with RSV set and a ping after it
    fail the connection without a pong."""
    peer = connect()
    peer.send(TEXT, b"Hello, world!")
    peer.expect(("text", b"Hello, world!"))
    peer.write(frame(TEXT, b"Hello, world!", rsv=rsv) + frame(PING, b""))
    peer.expect_close(1002)


@pytest.mark.parametrize("rsv", [1, 2, 3, 4])
def test_sent_together_with_a_valid_message(connect: Connect, rsv: int) -> None:
    """3.3: message, bad frame and ping in one write. Autobahn allows the echo of
    the first message to be missing (non-strict), never the pong."""
    peer = connect()
    peer.write(frame(TEXT, b"Hello, world!") + frame(TEXT, b"Hello, world!", rsv=rsv)
               + frame(PING, b""))
    got = peer.rest()
    assert [e[:2] for e in got] in ([("text", b"Hello, world!"), ("close", 1002)],
                                    [("close", 1002)]), got


@pytest.mark.parametrize("rsv", [1, 4, 7])
def test_chopped_into_single_bytes(connect: Connect, rsv: int) -> None:
    """3.4: the same, written one byte at a time."""
    peer = connect()
    peer.send(TEXT, b"Hello, world!")
    peer.expect(("text", b"Hello, world!"))
    peer.write(frame(TEXT, b"Hello, world!", rsv=rsv) + frame(PING, b""), chunk=1)
    peer.expect_close(1002)


# -- with permessage-deflate negotiated ----------------------------------

@pytest.mark.parametrize("rsv", [1, 2, 3, 5, 6, 7])
@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["text", "binary"])
def test_deflate_other_bits_still_fail(connect: Connect, opcode: int, rsv: int) -> None:
    """RSV2/RSV3 have no meaning under permessage-deflate: 1002."""
    peer = connect(extensions=DEFLATE)
    peer.send(opcode, b"Hello", rsv=rsv)
    peer.expect_close(1002)


@pytest.mark.parametrize("kind", ["ping", "pong", "close", "continuation"])
def test_deflate_rsv1_on_control_or_continuation_fails(connect: Connect, kind: str) -> None:
    """RFC 7692 section 6.1: RSV1 only on the first frame of a data message."""
    peer = connect(extensions=DEFLATE)
    peer.write(KINDS[kind](4))
    peer.expect_close(1002)
