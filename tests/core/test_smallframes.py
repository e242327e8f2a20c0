"""The small-message fast path (``_core/smallframes.py``): what it reads
itself, and where it stops and leaves the rest to wsproto.

That wskit behaves the same with it as without (same events, reasons,
close codes) is checked against wsproto alone in
``tests/conformance/test_fuzz.py``.
"""

from __future__ import annotations

import pytest

from wskit import BinaryMessage, TextMessage
from wskit._core.protocol import ConnectionCore
from wskit._core.smallframes import take_small

from ._wire import frame, pair

TEXT, BINARY, CONT, PING = 0x1, 0x2, 0x0, 0x9


def test_reads_whole_final_frames_of_one_read() -> None:
    data = frame(TEXT, "héllo".encode()) + frame(BINARY, b"\x00\xff") + frame(TEXT, b"")
    messages, used = take_small(data, True, 2**20)
    assert used == len(data)
    assert messages == ["héllo", b"\x00\xff", ""]
    assert [type(m) for m in messages] == [TextMessage, BinaryMessage, TextMessage]


def test_two_byte_lengths_and_no_limit() -> None:
    data = frame(BINARY, b"x" * 65535) + frame(TEXT, b"y" * 126)
    messages, used = take_small(data, True, None)
    assert used == len(data)
    assert messages == [b"x" * 65535, "y" * 126]


def test_unmasked_frames_for_a_client() -> None:
    data = b"\x81\x03abc\x82\x01z"
    assert take_small(data, False, 100) == (["abc", b"z"], len(data))
    assert take_small(data, True, 100) == ([], 0)  # a server wants masks
    assert take_small(frame(TEXT, b"abc"), False, 100) == ([], 0)


GOOD = frame(TEXT, b"ok")


@pytest.mark.parametrize("stop", [
    frame(PING, b"p"),
    frame(TEXT, b"ab", fin=False),
    frame(CONT, b"c"),
    frame(TEXT, b"abc", rsv=0x40),
    frame(TEXT, b"\xc0\xaf"),
    frame(BINARY, b"x" * 65536),
    frame(BINARY, b"x" * 101),  # over the limit below
    b"\x81\xfe\x00\x05" + b"\x00" * 9,  # a 2-byte length that fits in 7 bits
    frame(TEXT, b"abc")[:-1],  # cut by the end of the read
    b"\x81",
    b"\x81\xfe\x00",
], ids=["ping", "fragment", "continuation", "rsv", "utf-8", "64k", "limit", "non-minimal",
        "cut", "1 byte", "cut length"])
def test_stops_at_anything_else(stop: bytes) -> None:
    messages, used = take_small(GOOD + stop + GOOD, True, 100)
    assert (messages, used) == (["ok"], len(GOOD))


def test_the_core_reads_the_rest_with_wsproto() -> None:
    """A read with small messages, then a ping and a fragment: all events, in order."""
    _, server = pair()
    data = (GOOD + frame(PING, b"p") + GOOD + frame(TEXT, b"ab", fin=False)
            + frame(CONT, b"cd"))
    events = server.receive_data(data)
    assert [getattr(e, "data", e) for e in events] == ["ok", b"p", "ok", "abcd"]
    # wsproto is between messages again: the next read takes the fast path.
    assert server.receive_data(GOOD + GOOD) == ["ok", "ok"]


def test_a_partial_frame_waits_in_wsproto() -> None:
    server = ConnectionCore(client=False, extensions=[], max_message_size=2**20)
    whole = frame(BINARY, b"z" * 300)
    assert server.receive_data(GOOD + whole[:100]) == ["ok"]
    # The rest of that frame, then a small one: wsproto finishes its frame
    # first (the fast path must not read the small one ahead of it).
    assert server.receive_data(whole[100:] + GOOD) == [b"z" * 300, "ok"]
