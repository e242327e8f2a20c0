"""Message and close codes: the values a handler receives (``_core/messages.py``)."""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from wskit import BinaryMessage, CloseCode, Error, ErrorKind, Message, TextMessage
from wskit._core.messages import close_code


def test_message_semantics() -> None:
    text = Message.text("héllo")
    assert text == "héllo"
    assert text.is_text
    assert not text.is_binary
    assert len(text) == 5  # characters: it is a str
    assert text.nbytes == 6  # UTF-8 bytes on the wire
    assert str(text) == "héllo" and type(str(text)) is str
    assert text.as_bytes() == "héllo".encode()
    binary = Message.binary(bytearray(b"\x00\x01"))
    assert binary == b"\x00\x01"
    assert binary.is_binary and not binary.is_text
    assert isinstance(binary.data, bytes)
    assert len(binary) == binary.nbytes == 2
    assert Message(memoryview(b"ab")) == Message.binary(b"ab")
    assert Message("a") != Message(b"a")
    assert hash(Message("a")) == hash("a")
    assert hash(Message(b"a")) == hash(b"a")
    with pytest.raises(AttributeError):
        text.data = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        text.anything = 1  # type: ignore[attr-defined]
    with pytest.raises(Error) as wrong_type:
        Message.text(b"x")  # type: ignore[arg-type]
    assert wrong_type.value.kind is ErrorKind.USAGE
    assert "Message.binary()" in str(wrong_type.value)
    with pytest.raises(Error) as not_payload:
        Message(3)  # type: ignore[arg-type]
    assert not_payload.value.kind is ErrorKind.USAGE
    assert "str (text) or bytes (binary), not int" in str(not_payload.value)
    with pytest.raises(Error) as int_bytes:
        BinaryMessage(3)  # type: ignore[arg-type]
    assert "not int" in str(int_bytes.value)
    assert repr(binary) == "Message.binary(b'\\x00\\x01')"
    assert repr(text) == "Message.text('héllo')"


def test_a_message_is_a_str_or_bytes() -> None:
    """Issue 11: where Python code needs a str or bytes, a message is one."""
    text = Message('{"n": 1, "s": "é"}')
    assert type(text) is TextMessage
    assert isinstance(text, str) and isinstance(text, Message)
    assert json.loads(text) == {"n": 1, "s": "é"}
    assert text + "!" == '{"n": 1, "s": "é"}!'
    assert text.startswith('{"n"') and text.upper().startswith('{"N"')
    assert "%s" % text == f"{text}" == '{"n": 1, "s": "é"}'  # noqa: UP031
    assert text.data is text and text.as_text() is text
    assert bytes(text) == text.encode() == '{"n": 1, "s": "é"}'.encode()
    binary = Message(b"caf\xc3\xa9")
    assert type(binary) is BinaryMessage
    assert isinstance(binary, bytes) and isinstance(binary, Message)
    assert binary.decode() == binary.as_text() == "café"
    assert binary + b"!" == b"caf\xc3\xa9!"
    assert binary[:3] == b"caf" and binary.hex() == "636166c3a9"
    assert binary.data is binary and binary.as_bytes() is binary
    assert json.loads(Message(b'[1, 2]')) == [1, 2]
    # What the ws-rs-style constructors return is the concrete class.
    assert type(Message.text("x")) is TextMessage
    assert type(Message.binary(b"x")) is BinaryMessage
    assert TextMessage("x") == Message.text("x")
    assert BinaryMessage(bytearray(b"x")) == b"x"
    # match works on the Python types or on wskit's.
    match Message("hi"):
        case bytes():
            kind = "binary"
        case str():
            kind = "text"
    assert kind == "text"
    assert {Message("k"): 1}["k"] == 1  # usable as a dict key, like its str


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_messages_pickle_and_copy(protocol: int) -> None:
    for msg in (Message.text("héllo"), Message.binary(b"\x00\xff")):
        back = pickle.loads(pickle.dumps(msg, protocol))
        assert type(back) is type(msg) and back == msg
        assert type(copy.deepcopy(msg)) is type(msg)
    assert b"wskit" in pickle.dumps(Message("x"), 4)  # by reference to the public name


def test_nbytes_counts_utf8() -> None:
    assert Message("ascii").nbytes == 5
    assert Message("é" * 10).nbytes == 20
    assert Message("€").nbytes == 3 and len(Message("€")) == 1
    assert Message("").nbytes == 0


def test_message_conversions_and_comparisons() -> None:
    with pytest.raises(Error) as info:
        Message.binary("text")  # type: ignore[arg-type]
    assert info.value.kind is ErrorKind.USAGE
    assert "Message.text()" in str(info.value)
    assert bytes(Message("é")) == "é".encode()
    assert Message("3") != 3
    assert (Message("x") == 3) is False
    assert Message(b"\xc3\xa9").as_text() == "é"
    with pytest.raises(UnicodeDecodeError):
        Message(b"\xff").as_text()
    assert repr(Message("x" * 100)).endswith("... (100 bytes))")
    assert repr(Message("é" * 100)).endswith("... (200 bytes))")


def test_close_code_members_and_others() -> None:
    assert close_code(1000) is CloseCode.NORMAL
    assert close_code(4000) == 4000
    assert not isinstance(close_code(4000), CloseCode)


def test_to_payload_converts_what_send_takes() -> None:
    from wskit._core.messages import to_payload

    assert to_payload("text") == "text" and to_payload(b"bin") == b"bin"
    assert to_payload(bytearray(b"ba")) == b"ba" and type(to_payload(bytearray(b"x"))) is bytes
    assert to_payload(memoryview(b"mv")) == b"mv"
    assert to_payload(Message.text("m")) == "m" and to_payload(Message.binary(b"m")) == b"m"

    class Text(str):
        pass

    assert to_payload(Text("sub")) == "sub"
    received = Message.text("echo")
    assert to_payload(received) is received  # an echo sends the message as it is
    for bad in (42, None, ["a"], 1.5):
        with pytest.raises(Error) as info:
            to_payload(bad)  # type: ignore[arg-type]
        assert info.value.kind is ErrorKind.USAGE
        assert type(bad).__name__ in str(info.value)
