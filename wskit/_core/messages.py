"""Values that cross the API: messages and close codes.

A received message is a ``str`` or a ``bytes`` (issue 11): Python code that
needs one (``json.loads``, ``+``, ``startswith``, ``decode``) gets one, and
``Message`` stays the one type to check with ``isinstance`` and the home of
the ws-rs-style API. The concrete classes add no per-instance state
(``__slots__ = ()``), so a message costs what its ``str``/``bytes`` costs.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from .._errors import Error, ErrorKind

__all__ = ["BinaryMessage", "CloseCode", "Message", "Sendable", "TextMessage", "to_payload"]


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
    """One complete WebSocket message: a :class:`TextMessage` (a ``str``) or a
    :class:`BinaryMessage` (a ``bytes``). Immutable.

    A received message *is* the ``str`` or ``bytes`` it carries, so
    ``json.loads(msg)``, ``msg + "!"``, ``msg.startswith("/")`` and
    ``msg.decode()`` work as on any string; ``Message`` is the common base for
    ``isinstance`` checks and the ws-rs-style API (``Message.text(s)``,
    ``Message.binary(b)``, ``.data``, ``.is_text``, ``.is_binary``,
    ``.as_text()``, ``.as_bytes()``).

    ``len(msg)`` is Python's: characters for text, bytes for binary.
    ``msg.nbytes`` is the payload's size on the wire (UTF-8 bytes for text),
    the unit of ``max_message_size`` and ``max_send_queue``.

    ``Message(data)`` builds the right one: ``str`` gives text, bytes-like
    gives binary.
    """

    __slots__ = ()

    def __new__(cls, data: str | bytes | bytearray | memoryview) -> Message:
        if isinstance(data, str):
            return TextMessage(data)
        if isinstance(data, (bytes, bytearray, memoryview)):
            return BinaryMessage(data)
        raise Error(f"a Message holds str (text) or bytes (binary), not "
                    f"{type(data).__name__}", ErrorKind.USAGE)

    @staticmethod
    def text(data: str) -> TextMessage:
        """A text message."""
        return TextMessage(data)

    @staticmethod
    def binary(data: bytes | bytearray | memoryview) -> BinaryMessage:
        """A binary message."""
        return BinaryMessage(data)

    # What each concrete class provides (declared here for type checkers).
    if TYPE_CHECKING:
        @property
        def data(self) -> str | bytes: ...
        @property
        def is_text(self) -> bool: ...
        @property
        def is_binary(self) -> bool: ...
        @property
        def nbytes(self) -> int: ...
        def as_text(self) -> str: ...
        def as_bytes(self) -> bytes: ...


class TextMessage(str, Message):
    """A text message: a ``str`` that is also a :class:`Message`."""

    __slots__ = ()

    def __new__(cls, data: str) -> TextMessage:
        if not isinstance(data, str):
            raise Error(f"a text message holds str, not {type(data).__name__}: "
                        "use Message.binary() for bytes", ErrorKind.USAGE)
        return str.__new__(cls, data)

    @property
    def data(self) -> str:
        """The payload (this message itself: it is a ``str``)."""
        return self

    @property
    def is_text(self) -> bool:
        return True

    @property
    def is_binary(self) -> bool:
        return False

    @property
    def nbytes(self) -> int:
        """The payload's size on the wire: its UTF-8 length."""
        return len(self) if self.isascii() else len(self.encode("utf-8"))

    def as_text(self) -> str:
        """The text (this message itself; ``str(msg)`` gives a plain copy)."""
        return self

    def as_bytes(self) -> bytes:
        """The text encoded as UTF-8."""
        return self.encode("utf-8")

    def __bytes__(self) -> bytes:
        # bytes(msg) is the UTF-8 payload (a plain str has no __bytes__).
        return self.encode("utf-8")

    def __repr__(self) -> str:
        return _repr("text", self)


class BinaryMessage(bytes, Message):
    """A binary message: a ``bytes`` that is also a :class:`Message`."""

    __slots__ = ()

    def __new__(cls, data: bytes | bytearray | memoryview) -> BinaryMessage:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            hint = ": use Message.text() for text" if isinstance(data, str) else ""
            raise Error(f"a binary message holds bytes, not {type(data).__name__}{hint}",
                        ErrorKind.USAGE)
        return bytes.__new__(cls, data)

    @property
    def data(self) -> bytes:
        """The payload (this message itself: it is a ``bytes``)."""
        return self

    @property
    def is_text(self) -> bool:
        return False

    @property
    def is_binary(self) -> bool:
        return True

    @property
    def nbytes(self) -> int:
        """The payload's size: ``len(msg)``."""
        return len(self)

    def as_text(self) -> str:
        """The payload decoded as UTF-8 (strict: raises ``UnicodeDecodeError``)."""
        return self.decode("utf-8")

    def as_bytes(self) -> bytes:
        """The payload (this message itself; ``bytes(msg)`` gives a plain copy)."""
        return self

    def __repr__(self) -> str:
        return _repr("binary", self)


def _repr(kind: str, msg: TextMessage | BinaryMessage) -> str:
    # The ws-rs-style constructor, so a message stands out in logs and in
    # pytest's assertion reports; long payloads are cut.
    if len(msg) <= 60:
        return f"Message.{kind}({msg[:]!r})"
    return f"Message.{kind}({msg[:57]!r}... ({msg.nbytes} bytes))"


#: What ``send`` takes: ``str`` is text, bytes-like is binary.
Sendable = Message | str | bytes | bytearray | memoryview


def to_payload(msg: Sendable) -> str | bytes:
    """The payload to send for ``msg``: ``str`` stays text, bytes-like becomes
    ``bytes``, a :class:`Message` gives its data. Raises ``Error(USAGE)`` for
    anything else, as ``Message(...)`` does."""
    # Messages are str and bytes: the core sends any subclass as it is.
    if isinstance(msg, (str, bytes)):
        return msg
    if isinstance(msg, (bytearray, memoryview)):
        return bytes(msg)
    raise Error(f"cannot send {type(msg).__name__}: send str (text), bytes (binary) or a "
                "Message", ErrorKind.USAGE)
