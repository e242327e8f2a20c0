"""ConnectionCore driven as an in-memory client/server pair (``_core/protocol.py``)."""

from __future__ import annotations

import pytest

from wskit import CloseCode, Error, ErrorKind, Message
from wskit._core.protocol import (
    CloseReceived,
    ConnectionCore,
    CoreState,
    Failed,
    Lost,
    Ping,
    Pong,
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
