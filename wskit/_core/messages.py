"""Values that cross the API: messages and close codes."""

from __future__ import annotations

import enum
from typing import Any

from .._errors import Error, ErrorKind

__all__ = ["CloseCode", "Message", "Sendable", "to_payload"]


class CloseCode(enum.IntEnum):
    """Close codes of RFC 6455 section 7.4.1 (and 1012/1013 from IANA)."""

    NORMAL = 1000
    AWAY = 1001
    PROTOCOL = 1002
    UNSUPPORTED = 1003
    #: Never sent: reported when a close frame carried no code.
    STATUS = 1005
    #: Never sent: reported when the TCP stream ended without a close frame.
    ABNORMAL = 1006
    INVALID = 1007
    POLICY = 1008
    SIZE = 1009
    EXTENSION = 1010
    ERROR = 1011
    RESTART = 1012
    AGAIN = 1013
    #: Never sent: reported when the TLS handshake failed.
    TLS = 1015


def close_code(code: int) -> CloseCode | int:
    """The :class:`CloseCode` member for ``code`` where there is one."""
    try:
        return CloseCode(code)
    except ValueError:
        return code


class Message:
    """One complete WebSocket message, text or binary. Immutable.

    A ``Message`` compares equal to the ``str`` or ``bytes`` it holds, so
    ``msg == "hello"`` works in handlers and tests.
    """

    __slots__ = ("_data", "_size")

    _data: str | bytes
    _size: int

    def __init__(self, data: str | bytes | bytearray | memoryview) -> None:
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        elif not isinstance(data, (str, bytes)):
            raise Error(f"a Message holds str (text) or bytes (binary), not "
                        f"{type(data).__name__}", ErrorKind.USAGE)
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_size", -1)

    @classmethod
    def text(cls, data: str) -> Message:
        """A text message."""
        if not isinstance(data, str):
            raise Error(f"Message.text() takes str, not {type(data).__name__}", ErrorKind.USAGE)
        return cls(data)

    @classmethod
    def binary(cls, data: bytes | bytearray | memoryview) -> Message:
        """A binary message."""
        if isinstance(data, str):
            raise Error("Message.binary() takes bytes, not str: use Message.text() for text",
                        ErrorKind.USAGE)
        return cls(data)

    @property
    def data(self) -> str | bytes:
        """The payload: ``str`` for text, ``bytes`` for binary."""
        return self._data

    @property
    def is_text(self) -> bool:
        return isinstance(self._data, str)

    @property
    def is_binary(self) -> bool:
        return not isinstance(self._data, str)

    def as_text(self) -> str:
        """The payload as text; binary payloads are decoded as UTF-8 (strict)."""
        data = self._data
        return data if isinstance(data, str) else data.decode("utf-8")

    def as_bytes(self) -> bytes:
        """The payload as bytes; text is encoded as UTF-8."""
        data = self._data
        return data.encode("utf-8") if isinstance(data, str) else data

    def __str__(self) -> str:
        return self.as_text()

    def __bytes__(self) -> bytes:
        return self.as_bytes()

    def __len__(self) -> int:
        # The payload length on the wire: UTF-8 bytes for text.
        size = self._size
        if size < 0:
            data = self._data
            size = len(data.encode("utf-8")) if isinstance(data, str) else len(data)
            object.__setattr__(self, "_size", size)
        return size

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Message):
            return self._data == other._data
        if isinstance(other, (str, bytes)):
            return self._data == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._data)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Message is immutable")

    def __repr__(self) -> str:
        kind = "text" if self.is_text else "binary"
        data = self._data
        shown = data if len(data) <= 60 else data[:57]
        more = "" if len(data) <= 60 else f"... ({len(self)} bytes)"
        return f"Message.{kind}({shown!r}{more})"


#: What ``send`` takes: ``str`` is text, bytes-like is binary.
Sendable = Message | str | bytes | bytearray | memoryview


def to_payload(msg: Sendable) -> str | bytes:
    """The payload to send for ``msg``: ``str`` stays text, bytes-like becomes
    ``bytes``, a :class:`Message` gives its data. Raises ``Error(USAGE)`` for
    anything else, as ``Message(...)`` does."""
    cls = msg.__class__
    if cls is str or cls is bytes:
        return msg  # type: ignore[return-value]
    if isinstance(msg, Message):
        return msg.data
    if isinstance(msg, (bytearray, memoryview)):
        return bytes(msg)
    if isinstance(msg, (str, bytes)):  # subclasses
        return msg
    raise Error(f"cannot send {type(msg).__name__}: send str (text), bytes (binary) or a "
                "Message", ErrorKind.USAGE)
