"""A connection's phases and the only moves between them.

Theory of operation::

    CONNECTING ──> OPEN ──> CLOSING ──> FINISHING ──> ENDED
        │            │                    ^            ^
        │            └────────────────────┘            │
        └──────────────────────────────────────────────┘
                 (and any phase but ENDED ──> ENDED)

``CONNECTING``: the opening handshake. ``OPEN``: messages flow both ways.
``CLOSING``: our close frame is out, or we failed the connection (RFC 6455
section 7.1.7); reading until the peer's close or its end of stream.
``FINISHING``: the read loop is over; the last frames go out, the stream is
half-closed and drained (section 7.1.1). ``ENDED``: background tasks are
cancelled, ``on_close`` runs (once, if the connection ever opened).
Background tasks (timers, keepalive, the writer) may start only while
``OPEN``, ``CLOSING`` or ``FINISHING``.
"""

from __future__ import annotations

import enum

__all__ = ["MOVES", "Phase", "can_move"]


class Phase(enum.Enum):
    """A connection's life as the driver sees it (module docstring)."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    FINISHING = "finishing"
    ENDED = "ended"


MOVES: dict[Phase, frozenset[Phase]] = {
    Phase.CONNECTING: frozenset({Phase.OPEN, Phase.ENDED}),
    Phase.OPEN: frozenset({Phase.CLOSING, Phase.FINISHING, Phase.ENDED}),
    Phase.CLOSING: frozenset({Phase.FINISHING, Phase.ENDED}),
    Phase.FINISHING: frozenset({Phase.ENDED}),
    Phase.ENDED: frozenset(),
}

# The same table by value: an Enum member's hash is computed in Python
# (``Enum.__hash__``), a str's is cached; a connection moves ~5 times.
_MOVES_BY_VALUE = {frm.value: frozenset(to.value for to in tos) for frm, tos in MOVES.items()}


def can_move(frm: Phase, to: Phase) -> bool:
    """Whether ``frm -> to`` is one of the moves in :data:`MOVES`."""
    return to.value in _MOVES_BY_VALUE[frm.value]
