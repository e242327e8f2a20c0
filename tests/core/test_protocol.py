"""ConnectionCore driven as an in-memory client/server pair (``_core/protocol.py``)."""

from __future__ import annotations

import pytest

from wskit import CloseCode, Error, ErrorKind, Message
from wskit._core.protocol import (
    _TRANSITIONS,
    CloseReceived,
    ConnectionCore,
    CoreState,
    Failed,
    Lost,
    Ping,
    Pong,
    encode_frame,
)

from ._wire import frame, pair


def test_messages_round_trip_both_ways() -> None:
    client, server = pair()
    client.send("héllo")
    client.send(b"\x00\x01")
    assert server.receive_data(client.take_output()) == [Message("héllo"), Message(b"\x00\x01")]
    server.send("back")
    events = client.receive_data(server.take_output())
    assert events == [Message("back")]
    assert events[0].is_text


def test_ping_is_answered_by_the_core() -> None:
    client, server = pair()
    client.ping(b"abc")
    events = server.receive_data(client.take_output())
    assert isinstance(events[0], Ping)
    assert events[0].data == b"abc"
    answer = client.receive_data(server.take_output())
    assert isinstance(answer[0], Pong)
    assert answer[0].data == b"abc"


def test_control_payload_limit() -> None:
    client, _ = pair()
    with pytest.raises(Error) as info:
        client.ping(b"x" * 126)
    assert info.value.kind is ErrorKind.USAGE  # the caller's mistake, not the peer's


def test_closing_handshake_initiated_by_client() -> None:
    client, server = pair()
    assert client.close(4000, "bye")
    assert client.state is CoreState.LOCAL_CLOSING
    assert not client.close()  # idempotent
    events = server.receive_data(client.take_output())
    assert len(events) == 1
    assert isinstance(events[0], CloseReceived)
    assert (events[0].code, events[0].reason) == (4000, "bye")
    assert server.state is CoreState.REMOTE_CLOSING  # the echo waits for answer_close()
    assert server.receive_data(b"anything") == []  # nothing is read after a close
    server.answer_close()
    assert server.state is CoreState.CLOSED
    echo = client.receive_data(server.take_output())
    assert isinstance(echo[0], CloseReceived)
    assert echo[0].code == 4000
    assert client.state is CoreState.CLOSED


def test_data_after_our_close_is_not_delivered() -> None:
    client, server = pair()
    server.send("late")
    late = server.take_output()
    client.close()
    assert client.receive_data(late) == []


def test_send_after_close_raises_queue_error() -> None:
    client, _ = pair()
    client.close()
    with pytest.raises(Error) as info:
        client.send("x")
    assert info.value.kind is ErrorKind.QUEUE


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 2000, 5000])
def test_unsendable_close_codes_are_refused(code: int) -> None:
    client, _ = pair()
    with pytest.raises(Error):
        client.close(code)
    assert client.state is CoreState.OPEN


def test_end_of_stream_without_close_is_lost() -> None:
    _, server = pair()
    events = server.receive_data(None)
    assert len(events) == 1
    assert isinstance(events[0], Lost)
    assert server.state is CoreState.CLOSED


def test_output_size_tracks_queue() -> None:
    client, _ = pair()
    client.send(b"x" * 1000)
    assert client.output_size == 1000 + 8  # 2 header + 2 length + 4 mask
    client.take_output()
    assert client.output_size == 0


def test_trailing_data_from_handshake_is_parsed() -> None:
    client, _ = pair()
    client.send("early")
    server = ConnectionCore(client=False, extensions=[], max_message_size=None,
                            trailing_data=client.take_output())
    assert server.pending_events() == ["early"]


def test_nothing_pending_without_trailing_data() -> None:
    server = ConnectionCore(client=False, extensions=[], max_message_size=None)
    assert server.pending_events() == []
    client, _ = pair()
    client.send("later")
    assert server.receive_data(client.take_output()) == ["later"]


def test_reply_to_a_message_that_came_with_the_close_goes_first() -> None:
    # Autobahn 7.1.1: a message and a close frame in one read get the echo,
    # then the close.
    client, server = pair()
    client.send("last words")
    client.close(1000)
    events = server.receive_data(client.take_output())
    assert events[0] == "last words"
    assert isinstance(events[1], CloseReceived)
    server.send("echo: last words")  # still allowed before answer_close()
    server.answer_close()
    with pytest.raises(Error):
        server.send("too late")
    out = server.take_output()
    # The echo frame (text, unmasked) comes first, then the close frame.
    assert out[:2] == bytes([0x81, len("echo: last words")])
    assert out[2:18] == b"echo: last words"
    assert out[18] == 0x88


def test_reply_to_a_message_before_a_bad_frame_goes_first() -> None:
    client, server = pair()
    client.send("fine")
    events = server.receive_data(client.take_output() + frame(0x3, b"bad"))
    assert events[0] == "fine"
    assert isinstance(events[1], Failed)
    server.send("reply")
    server.answer_close()
    assert server.state is CoreState.FAILED
    out = client.receive_data(server.take_output())
    assert out[0] == "reply"
    assert isinstance(out[1], CloseReceived)
    assert out[1].code == CloseCode.PROTOCOL


def test_close_while_an_answer_is_owed_sends_the_owed_answer() -> None:
    client, server = pair()
    client.close(4000, "bye")
    server.receive_data(client.take_output())
    assert not server.close(1001, "ignored")  # the peer's close is answered instead
    echo = client.receive_data(server.take_output())
    assert isinstance(echo[0], CloseReceived)
    assert echo[0].code == 4000


def test_shared_frames_only_for_plain_server_connections() -> None:
    client, _ = pair()
    assert not client.shares_frames  # client frames are masked
    _, server = pair(deflate=True)
    assert not server.shares_frames  # compressed per connection


def test_overlong_close_reason_is_refused() -> None:
    client, _ = pair()
    with pytest.raises(Error) as info:
        client.close(1000, "é" * 62)  # 124 UTF-8 bytes
    assert info.value.kind is ErrorKind.USAGE
    assert client.close(1000, "é" * 61)  # 122 bytes: fine


def test_no_pong_after_our_close() -> None:
    # Section 5.5.2 obliges a pong only while we may still send.
    client, server = pair()
    server.ping(b"late")
    ping = server.take_output()
    client.close()
    client.take_output()
    events = client.receive_data(ping)
    assert isinstance(events[0], Ping)
    assert not client.has_output


def test_fragmented_binary_message_is_joined_as_bytes() -> None:
    _, server = pair()
    events = server.receive_data(frame(0x2, b"ab", fin=False) + frame(0x0, b"cd"))
    assert events == [b"abcd"]
    assert isinstance(events[0], Message) and events[0].is_binary


def test_bad_frame_after_our_close_fails_at_once() -> None:
    # We sent our close already: no second close frame is owed.
    _, server = pair()
    server.close(1000)
    server.take_output()
    events = server.receive_data(frame(0x3, b"bad"))
    assert isinstance(events[0], Failed)
    assert server.state is CoreState.FAILED
    server.answer_close()
    assert not server.has_output


def test_answer_close_without_anything_owed_does_nothing() -> None:
    client, _ = pair()
    client.answer_close()
    assert client.state is CoreState.OPEN
    assert not client.has_output


def test_every_state_names_its_moves() -> None:
    # The table is complete, and the final states have no way out.
    assert set(_TRANSITIONS) == set(CoreState)
    assert _TRANSITIONS[CoreState.CLOSED] == _TRANSITIONS[CoreState.FAILED] == frozenset()
    reachable = {CoreState.OPEN}
    for state in list(CoreState):
        reachable |= _TRANSITIONS[state]
    assert reachable == set(CoreState)


def test_an_illegal_move_names_the_current_state() -> None:
    client, _ = pair()
    client.receive_data(None)
    with pytest.raises(Error) as info:
        client._move(CoreState.OPEN)
    assert info.value.kind is ErrorKind.INTERNAL
    assert "from closed to open" in str(info.value)
    assert client.state is CoreState.CLOSED


def test_send_frame_queues_a_shared_frame_until_our_close() -> None:
    client, server = pair()
    shared = encode_frame("to all")
    assert server.send_frame(shared) == len(shared)
    assert client.receive_data(server.take_output()) == ["to all"]
    server.close()
    with pytest.raises(Error) as info:
        server.send_frame(shared)
    assert info.value.kind is ErrorKind.QUEUE
    assert "local closing" in str(info.value)


def test_unsolicited_pong_and_control_frames_after_close() -> None:
    client, server = pair()
    assert client.pong(b"beat") == 2 + 4 + 4  # header, mask, payload
    events = server.receive_data(client.take_output())
    assert isinstance(events[0], Pong)
    assert events[0].data == b"beat"
    client.close()
    for control in (client.ping, client.pong):
        with pytest.raises(Error) as info:
            control(b"")
        assert info.value.kind is ErrorKind.QUEUE


def test_take_buffers_hands_over_the_queue() -> None:
    _, server = pair()
    assert server.take_buffers() == []
    assert server.take_output() == b""
    assert not server.has_output
    big = b"p" * 5000
    server.send(big)
    assert server.has_output
    buffers = server.take_buffers()
    assert b"".join(buffers) == encode_frame(big)
    assert buffers[-1] is big  # a large payload is not copied onto its header
    assert server.output_size == 0
    assert server.take_buffers() == []


@pytest.mark.parametrize("size", [0, 1, 125, 126, 4096])
@pytest.mark.parametrize("text", [True, False])
def test_a_small_frame_is_one_buffer(size: int, text: bool) -> None:
    _, server = pair()
    data: str | bytes = "é" * (size // 2) + "x" * (size % 2) if text else b"b" * size
    assert server.send(data) == len(encode_frame(data))
    assert server.output_size == len(encode_frame(data))
    assert server.take_buffers() == [encode_frame(data)]  # one write(), not a writev()


def test_sending_works_until_the_owed_close_is_answered() -> None:
    client, server = pair()
    client.close(1001)
    server.receive_data(client.take_output())
    assert server.state is CoreState.REMOTE_CLOSING
    server.send_frame(encode_frame("bye"))
    server.ping(b"p")
    assert server.receive_data(b"ignored") == []
    assert not server.close(1000)  # answers the owed close instead
    assert server.state is CoreState.CLOSED
    wire = server.take_output()
    assert wire.startswith(encode_frame("bye"))  # sent, though the closing client drops it
    events = client.receive_data(wire)
    assert isinstance(events[0], Ping)
    assert isinstance(events[1], CloseReceived)
    assert events[1].code == 1001
