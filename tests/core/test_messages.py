"""Message and close codes: the values a handler receives (``_core/messages.py``)."""

from __future__ import annotations

import pytest

from wskit import CloseCode, Error, ErrorKind, Message
from wskit._core.messages import close_code


def test_message_semantics() -> None:
    text = Message.text("héllo")
    assert text == "héllo"
    assert text.is_text
    assert not text.is_binary
    assert len(text) == 6  # UTF-8 bytes
    assert str(text) == "héllo"
    assert text.as_bytes() == "héllo".encode()
    binary = Message.binary(bytearray(b"\x00\x01"))
    assert binary == b"\x00\x01"
    assert binary.is_binary
    assert isinstance(binary.data, bytes)
    assert Message(memoryview(b"ab")) == Message.binary(b"ab")
    assert Message("a") != Message(b"a")
    assert hash(Message("a")) == hash("a")
    with pytest.raises(AttributeError):
        text.data = "x"  # type: ignore[misc]
    with pytest.raises(Error) as wrong_type:
        Message.text(b"x")  # type: ignore[arg-type]
    assert wrong_type.value.kind is ErrorKind.USAGE
    with pytest.raises(Error) as not_payload:
        Message(3)  # type: ignore[arg-type]
    assert not_payload.value.kind is ErrorKind.USAGE
    assert "str (text) or bytes (binary), not int" in str(not_payload.value)
    assert "binary" in repr(binary)


def test_message_conversions_and_comparisons() -> None:
    with pytest.raises(Error) as info:
        Message.binary("text")  # type: ignore[arg-type]
    assert info.value.kind is ErrorKind.USAGE
    assert bytes(Message("é")) == "é".encode()
    text = Message("é" * 10)
    assert len(text) == len(text) == 20  # computed once, then cached
    assert Message("3") != 3
    assert (Message("x") == 3) is False
    assert Message(b"\xc3\xa9").as_text() == "é"
    assert repr(Message("x" * 100)).endswith("... (100 bytes))")


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
    for bad in (42, None, ["a"], 1.5):
        with pytest.raises(Error) as info:
            to_payload(bad)  # type: ignore[arg-type]
        assert info.value.kind is ErrorKind.USAGE
        assert type(bad).__name__ in str(info.value)
