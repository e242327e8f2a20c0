"""The small-message fast path (``_core/smallframes.py``): what it reads
itself, and where it stops and leaves the rest to wsproto.

That wskit behaves the same with it as without (same events, reasons,
close codes) is checked against wsproto alone in
``tests/conformance/test_fuzz.py``.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wskit import BinaryMessage, TextMessage
from wskit._core import smallframes
from wskit._core.protocol import CloseReceived, ConnectionCore, CoreState
from wskit._core.smallframes import close_frame, take_close, take_small_python

from ._wire import frame, pair

TEXT, BINARY, CONT, PING = 0x1, 0x2, 0x0, 0x9


def _c_take_small() -> Callable[..., Any] | None:
    try:
        module = importlib.import_module("wskit._core._frames")
    except ImportError:  # no C compiler at install
        return None
    return functools.partial(module.take_small, TextMessage, BinaryMessage)


C_TAKE_SMALL = _c_take_small()
#: Both implementations where the C one was built; each test runs on each.
IMPLEMENTATIONS = [pytest.param(take_small_python, id="python")] + (
    [] if C_TAKE_SMALL is None else [pytest.param(C_TAKE_SMALL, id="c")])


@pytest.fixture(name="take_small", params=IMPLEMENTATIONS)
def take_small_fixture(request: pytest.FixtureRequest) -> Callable[..., Any]:
    return request.param  # type: ignore[no-any-return]


def test_the_environment_variable_forces_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSKIT_NO_EXTENSIONS", "1")
    assert smallframes._load() == (take_small_python, "python")
    monkeypatch.setenv("WSKIT_NO_EXTENSIONS", "0")  # "0" is "not set"
    assert smallframes._load()[1] == ("python" if C_TAKE_SMALL is None else "c")


def test_the_c_one_is_used_where_built() -> None:
    if os.environ.get("WSKIT_NO_EXTENSIONS", "") not in ("", "0"):
        assert smallframes.IMPLEMENTATION == "python"
        assert smallframes.take_small is take_small_python
    elif C_TAKE_SMALL is not None:
        assert smallframes.IMPLEMENTATION == "c"


def test_reads_whole_final_frames_of_one_read(take_small: Callable[..., Any]) -> None:
    data = frame(TEXT, "héllo".encode()) + frame(BINARY, b"\x00\xff") + frame(TEXT, b"")
    messages, used = take_small(data, True, 2**20)
    assert used == len(data)
    assert messages == ["héllo", b"\x00\xff", ""]
    assert [type(m) for m in messages] == [TextMessage, BinaryMessage, TextMessage]


def test_two_byte_lengths_and_no_limit(take_small: Callable[..., Any]) -> None:
    data = frame(BINARY, b"x" * 65535) + frame(TEXT, b"y" * 126)
    messages, used = take_small(data, True, None)
    assert used == len(data)
    assert messages == [b"x" * 65535, "y" * 126]


def test_unmasked_frames_for_a_client(take_small: Callable[..., Any]) -> None:
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
def test_stops_at_anything_else(stop: bytes, take_small: Callable[..., Any]) -> None:
    messages, used = take_small(GOOD + stop + GOOD, True, 100)
    assert (messages, used) == (["ok"], len(GOOD))


@pytest.mark.parametrize("cut", [b"\x81", b"\x81\xfe", b"\x81\xfe\x00", GOOD[:-1]])
def test_stops_at_the_end_of_the_read(cut: bytes, take_small: Callable[..., Any]) -> None:
    assert take_small(GOOD + cut, True, 100) == (["ok"], len(GOOD))


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


@pytest.mark.parametrize(("limit", "read"), [
    (None, 2), (2**70, 2), (4, 2), (3, 1), (0, 0), (-1, 0), (-(2**70), 0)])
def test_limits(limit: int | None, read: int, take_small: Callable[..., Any]) -> None:
    frames = [frame(TEXT, b"abc"), frame(BINARY, b"abcd")]
    messages, used = take_small(b"".join(frames), True, limit)
    assert messages == ["abc", b"abcd"][:read]
    assert used == len(b"".join(frames[:read]))


def test_a_bytearray_is_read_too(take_small: Callable[..., Any]) -> None:
    data = bytearray(frame(TEXT, b"abc") + frame(BINARY, b"\x00"))
    assert take_small(data, True, None) == (["abc", b"\x00"], len(data))


def test_large_text_unmasked_off_the_stack(take_small: Callable[..., Any]) -> None:
    text = "é" * 5000  # 10,000 bytes: past the C code's stack buffer
    data = frame(TEXT, text.encode()) + frame(TEXT, b"\xff" * 3000)
    messages, used = take_small(data, True, None)
    assert messages == [text] and type(messages[0]) is TextMessage
    assert used == len(frame(TEXT, text.encode()))


def test_the_message_types_behave(take_small: Callable[..., Any]) -> None:
    [text, binary], _ = take_small(frame(TEXT, b"hi") + frame(BINARY, b"hi"), True, None)
    assert hash(text) == hash("hi") and hash(binary) == hash(b"hi")
    assert {text: 1}["hi"] == 1 and {binary: 2}[b"hi"] == 2
    assert text.is_text and binary.is_binary and text.as_bytes() == binary


_FIRSTS = st.sampled_from([0x81, 0x82, 0x81, 0x82, 0x01, 0x80, 0x88, 0x89, 0xC1, 0x83])
_SIZES = st.sampled_from([0, 1, 5, 64, 125, 126, 127, 300, 65535])


@st.composite
def _streams(draw: st.DrawFn) -> bytes:
    """Frame-shaped bytes: mostly what the fast path reads, with every kind
    of header it must stop at, truncations and bad UTF-8 among them."""
    out = b""
    for _ in range(draw(st.integers(0, 6))):
        payload = draw(st.one_of(
            st.binary(max_size=70),
            st.text(max_size=30).map(lambda t: t.encode()),
            st.sampled_from([b"\xc0\xaf", b"\xed\xa0\x80", b"x" * 300])))
        first = draw(_FIRSTS)
        masked = draw(st.sampled_from([True, True, True, False]))
        length = len(payload)
        if length < 126 and draw(st.integers(0, 7)) == 0:  # a 16-bit length, not minimal
            head = bytes((first, 126 | (0x80 if masked else 0))) + length.to_bytes(2, "big")
        elif length < 126:
            head = bytes((first, length | (0x80 if masked else 0)))
        else:
            head = bytes((first, 126 | (0x80 if masked else 0))) + length.to_bytes(2, "big")
        if draw(st.integers(0, 9)) == 0:  # a header that lies or is not minimal
            head = bytes((first, draw(_SIZES) % 128 | (0x80 if masked else 0))) + draw(
                st.binary(max_size=8))
        key = draw(st.binary(min_size=4, max_size=4)) if masked else b""
        body = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if masked else payload
        out += head + key + body
    cut = draw(st.integers(0, len(out)))
    return out[:cut] if draw(st.booleans()) else out


@pytest.mark.skipif(C_TAKE_SMALL is None, reason="the C extension was not built")
@settings(max_examples=1500, deadline=None, database=None, derandomize=True)
@given(data=_streams(), masked=st.booleans(),
       limit=st.sampled_from([None, 0, 5, 64, 125, 126, 300, 2**40]))
def test_c_and_python_agree(data: bytes, masked: bool, limit: int | None) -> None:
    assert C_TAKE_SMALL is not None
    expected = take_small_python(data, masked, limit)
    got = C_TAKE_SMALL(data, masked, limit)
    assert got == expected
    assert [type(m) for m in got[0]] == [type(m) for m in expected[0]]


# -- the close frame ---------------------------------------------------------------

CLOSE = 0x8


def _unmasked_close(payload: bytes) -> bytes:
    return bytes((0x88, len(payload))) + payload


@pytest.mark.parametrize(("payload", "expected"), [
    (b"", (1005, "")),
    (b"\x03\xe8", (1000, "")),
    (b"\x03\xe9going", (1001, "going")),
    (b"\x03\xf6" + "é".encode(), (1014, "é")),  # registered after wsproto's table
    (b"\x0b\xb8", (3000, "")),
    (b"\x13\x87" + b"r" * 123, (4999, "r" * 123)),
])
def test_a_close_frame_wsproto_would_accept(payload: bytes, expected: tuple[int, str]) -> None:
    assert take_close(b"xx" + frame(CLOSE, payload), 2, True) == expected
    assert take_close(_unmasked_close(payload) + b"after", 0, False) == expected


@pytest.mark.parametrize("data", [
    b"\x88",  # a header cut short
    frame(TEXT, b"\x03\xe8"),  # not a close frame
    frame(CLOSE, b"\x03\xe8", fin=False),  # fragmented: wsproto refuses it
    frame(CLOSE, b"\x03\xe8", rsv=0x40),
    _unmasked_close(b"\x03\xe8"),  # unmasked, from a client
    frame(CLOSE, b"\x03\xe8" + b"r" * 124),  # too long for a control frame
    frame(CLOSE, b"\x03\xe8bye")[:-1],  # cut short
    frame(CLOSE, b"\x03"),  # a one-byte payload
    frame(CLOSE, b"\x03\xe7"),  # 999
    frame(CLOSE, b"\x03\xec"),  # 1004: reserved
    frame(CLOSE, b"\x03\xed"),  # 1005: for reporting only
    frame(CLOSE, b"\x07\xcf"),  # 1999
    frame(CLOSE, b"\x13\x88"),  # 5000
    frame(CLOSE, b"\x03\xe8\xc0\xaf"),  # a reason that is not UTF-8
])
def test_anything_else_is_left_to_wsproto(data: bytes) -> None:
    assert take_close(data, 0, True) is None


def test_the_echo_is_the_frame_wsproto_writes() -> None:
    assert close_frame(None, "") == b"\x88\x00"
    assert close_frame(1000, "") == b"\x88\x02\x03\xe8"
    assert close_frame(4000, "bye") == b"\x88\x05\x0f\xa0bye"


def test_the_core_reads_a_close_without_wsproto() -> None:
    _, server = pair()
    events = server.receive_data(frame(TEXT, b"last") + frame(CLOSE, b"\x03\xe8bye") + b"junk")
    assert events[0] == "last"
    assert isinstance(events[1], CloseReceived) and (events[1].code, events[1].reason) == (
        1000, "bye")
    server.answer_close()
    assert server.take_output() == b"\x88\x05\x03\xe8bye"
    assert server.state is CoreState.CLOSED
