"""How ``wskit client`` shows a conversation: markers, escapes, a prompt.

On a terminal, what the server sends is *displayed*, never *obeyed*: a
server (or anyone who can get a message relayed through it) must not be able
to colour the screen, ring the bell, move the cursor, set the window title or
reorder text with bidirectional overrides. Every control character is shown
as an escape (``\\n``, ``\\x1b``, ``\\u202e``), so a newline inside a message is
visible too and one message is always one line. Backslashes are left as
they are: the display is for people, and JSON (full of ``\\n`` escapes) stays
readable; pipe stdout to a file for the exact bytes.

Incoming messages show as ``< text``; what you type follows the ``> `` prompt.
A message that arrives while you are typing is inserted *above* the line
you are typing, which stays where it was with what you typed so far (the
terminal keeps that text; we only move the cursor around it, with the VT100
sequences every terminal emulator implements: save/restore cursor, cursor
up/down, insert lines).

When stdout is not a terminal (a pipe, a file), messages are written as they
are, one per line, with no marker: data for the next program.
"""

from __future__ import annotations

import math
import re
import shutil
import sys
import unicodedata
from typing import TextIO

from .._core.messages import Message

__all__ = ["Console", "escape"]

# C0 and C1 controls and DEL; the line and paragraph separators (a line
# break to some terminals); bidirectional embeddings, overrides and isolates
# (they reorder what follows: "Trojan Source", CVE-2021-42574).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` with every control character written as an escape (one line,
    nothing a terminal would act on)."""
    return _UNSAFE.sub(_escape_one, text)


def _width(text: str) -> int:
    """Terminal columns ``text`` takes (wide East Asian characters take two,
    combining marks none): enough to count the rows of a wrapped line."""
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


# VT100 sequences (ECMA-48): DECSC / DECRC save and restore the cursor, CUU /
# CUD move it up / down N rows, IL inserts N blank rows at the cursor's row
# (pushing that row and those below it down).
_SAVE, _RESTORE = "\x1b7", "\x1b8"


class Console:
    """Where ``wskit client`` writes: stdout for messages, stderr for status.

    ``typing`` (stdin and stdout are both terminals): a ``> `` prompt, and
    output inserted above the line being typed. ``markers`` (stdout is a
    terminal): ``<`` / ``>`` markers and escapes on stdout. Status lines are
    escaped whenever stderr is a terminal (a close reason comes from the
    server too).
    """

    def __init__(self, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.markers = stdout.isatty()
        self.typing = self.markers and stdin.isatty()
        self._stderr_tty = stderr.isatty()
        self._prompted = False

    @classmethod
    def standard(cls) -> Console:
        return cls(sys.stdin, sys.stdout, sys.stderr)

    # -- what is shown -------------------------------------------------------

    def received(self, msg: Message) -> None:
        """One incoming message. Raises ``OSError`` if stdout is gone."""
        if isinstance(msg, bytes):
            body = f"[binary {len(msg)} bytes] {msg.hex()}"
        else:
            body = escape(msg.as_text()) if self.markers else msg.as_text()
        if self.markers:
            self._show(self.stdout, f"< {body}")
        else:
            self.stdout.write(body + "\n")
            self.stdout.flush()

    def sent(self, text: str) -> None:
        """A line sent. While typing, the terminal shows it already after the
        prompt; with input from a pipe and output on a terminal, it is shown
        as ``> text`` to keep the transcript whole."""
        if self.markers and not self.typing:
            self._show(self.stdout, f"> {escape(text)}")

    def status(self, text: str) -> None:
        """Status lines on stderr (connected, pong, errors, closed, /help)."""
        for line in text.split("\n"):
            self._show(self.stderr, escape(line) if self._stderr_tty else line)

    def prompt(self) -> None:
        """``> `` before the next line to type (only while typing)."""
        if self.typing:
            self.stdout.write("> ")
            self.stdout.flush()
            self._prompted = True

    def typed(self) -> None:
        """The user pressed Enter: the terminal moved to a new line."""
        self._prompted = False

    def finish(self) -> None:
        """Remove a prompt left on the screen (before the final status)."""
        if self._prompted:
            self.stdout.write("\r\x1b[K")
            self.stdout.flush()
            self._prompted = False

    # -- how -------------------------------------------------------------------

    def _show(self, stream: TextIO, line: str) -> None:
        if not (self._prompted and stream.isatty()):
            stream.write(line + "\n")
            stream.flush()
            return
        # Insert the line above the one being typed. Going down `rows` first
        # makes the room at the bottom of the screen (scrolling if needed);
        # back up, insert `rows` blank rows there (the typed line moves down
        # by that much), write, and put the cursor back where it was, moved
        # down by the same number of rows (CUD stops at the last row, which
        # is exactly where the typed line is when the screen scrolled).
        columns = max(1, shutil.get_terminal_size().columns)
        rows = max(1, math.ceil(_width(line) / columns))
        stream.write(f"{_SAVE}{chr(10) * rows}\x1b[{rows}A\x1b[{rows}L\r{line}\n"
                     f"{_RESTORE}\x1b[{rows}B")
        stream.flush()
