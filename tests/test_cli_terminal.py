"""``wskit client`` on a terminal (issue 11, item 8): a real pseudo-terminal,
read through a VT100 emulator (``pyte``), against a real ``wskit serve``
whose messages carry escape codes.

What is checked is what a person would see: ``>`` / ``<`` markers, control
characters shown and never obeyed (no colour, bell, title, screen clearing or
cursor move from the server), a message that arrives while a line is being
typed shown above it with the typed text and the cursor left in place, and
``/close`` waiting for the answers in flight. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyte
import pytest
from _cli_helpers import WSKIT, run, run_server
from _procs import STOP_TIMEOUT, TIMEOUT
from websockets.sync.client import connect

COLUMNS, ROWS = 80, 24

#: What the server sends back, by what it received.
_SERVER = '''\
import trio

HOSTILE = ("\\x1b[31mred\\x1b[0m\\x07bell\\x1b]0;pwned\\x07\\x1b[2J\\x1b[Hhome"
           "\\u202eevil\\x9bmore")


def factory(out):
    async def on_message(msg):
        if msg == "attack":
            out.send(HOSTILE)
        elif msg == "lines":
            out.send("one\\ntwo\\r\\nthree\\tfour")
        elif msg == "binary":
            out.send(b"\\x00\\x1b[31m")
        elif msg.startswith("all:"):  # a received message is a str
            out.broadcast(msg[4:])
        elif msg == "slow":
            await trio.sleep(0.2)
            for n in range(3):
                out.send(f"late {n}")
        else:
            out.send(msg)
    return on_message
'''

#: Sequences of the server's message that must never reach the terminal raw.
_NEVER_RAW = [b"\x1b[31m", b"\x1b[0m", b"\x07", b"\x1b]0;", b"\x1b[2J", b"\x1b[H",
              "\u202e".encode(), "\x9b".encode()]


class Terminal:
    """The master side of a pseudo-terminal, rendered by pyte."""

    def __init__(self, master: int, proc: subprocess.Popen[bytes]) -> None:
        self.master = master
        self.proc = proc
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self._stream = pyte.ByteStream(self.screen)
        self.raw = b""
        self._ended = False

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display if line.strip()]

    def wait_for(self, check: Callable[[], bool], what: str,
                 timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            left = deadline - time.monotonic()
            if left <= 0 or self._ended:
                pytest.fail(f"{what}: not within {timeout}s; screen: {self.lines()}")
            ready, _, _ = select.select([self.master], [], [], min(left, 0.1))
            if ready:
                self._read()

    def shows(self, line: str) -> Callable[[], bool]:
        return lambda: line in self.lines()

    def _read(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every slave end closed (the client exited)
            data = b""
        if not data:
            self._ended = True
            return
        self.raw += data
        self._stream.feed(data)

    def wait_exit(self) -> int:
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                self._read()
        code = self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        while not self._ended:  # what it wrote before exiting
            ready, _, _ = select.select([self.master], [], [], 1.0)
            if not ready:
                break
            self._read()
        return code


@contextlib.contextmanager
def client_on_a_terminal(url: str, *args: str) -> Iterator[Terminal]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen([*WSKIT, "client", url, *args], stdin=slave, stdout=slave,
                            stderr=slave, start_new_session=True, env=env)
    os.close(slave)
    terminal = Terminal(master, proc)
    try:
        # Type only once the prompt is drawn, as a person would: keys typed
        # before it are echoed by the terminal ahead of the "> ".
        terminal.wait_for(lambda: terminal.lines()[:2] == [
            f"connected to {url}; type lines to send, /help for commands", ">"],
            "connected, and the prompt")
        yield terminal
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        os.close(master)


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "hostile.py").write_text(_SERVER)
    with run_server("serve", "hostile:factory", cwd=tmp_path) as server:
        yield server.url
        assert server.stop() == 0


def test_markers_and_control_characters_shown_not_obeyed(server_url: str) -> None:
    with client_on_a_terminal(server_url) as term:
        term.type("attack\n")
        hostile = ("< \\x1b[31mred\\x1b[0m\\x07bell\\x1b]0;pwned\\x07\\x1b[2J\\x1b[Hhome"
                   "\\u202eevil\\x9bmore")
        term.wait_for(term.shows(hostile), "the hostile message, escaped")
        term.type("lines\n")
        term.wait_for(term.shows("< one\\ntwo\\r\\nthree\\tfour"), "newlines made visible")
        term.type("binary\n")
        term.wait_for(term.shows("< [binary 6 bytes] 001b5b33316d"), "binary as hex")
        term.type("/help\n")
        term.wait_for(term.shows("  //TEXT                  send /TEXT"), "the help, line by line")
        term.type("/close\n")
        assert term.wait_exit() == 0
        assert term.lines() == [
            f"connected to {server_url}; type lines to send, /help for commands",
            "> attack", hostile,
            "> lines", "< one\\ntwo\\r\\nthree\\tfour",
            "> binary", "< [binary 6 bytes] 001b5b33316d",
            "> /help", "commands:",
            "  /close [CODE [REASON]]  close (default 1000) once answers in flight came",
            "  /ping [TEXT]            send a ping; the pong's latency is shown",
            "  //TEXT                  send /TEXT",
            "  /help                   this help",
            "> /close", "closed: 1000",
        ]
    # Nothing of the server's reached the terminal raw: no colour, bell,
    # window title, screen clearing, cursor move or bidi override.
    for sequence in _NEVER_RAW:
        assert sequence not in term.raw, sequence
    assert term.screen.title == ""
    assert not any(char.fg != "default" for row in term.screen.buffer.values()
                   for char in row.values())


def test_a_message_arriving_while_typing_goes_above_the_line(server_url: str) -> None:
    with client_on_a_terminal(server_url) as term:
        term.type("half typ")  # no Enter yet
        term.wait_for(term.shows("> half typ"), "the typed text echoed")
        wide = "w" * 100  # wraps: two rows at 80 columns
        with connect(server_url) as other:
            other.send("all:news from elsewhere")
            term.wait_for(term.shows("< news from elsewhere"), "the broadcast")
            other.send(f"all:{wide}")
            term.wait_for(lambda: term.lines()[-1] == "> half typ" and
                          any(line.startswith("< www") for line in term.lines()), "wide")
        lines = term.lines()
        assert lines[1:] == ["< news from elsewhere", "< " + wide[:78], wide[78:],
                             "> half typ"]
        # The cursor is still right after the typed text, on its line.
        assert (term.screen.cursor.y, term.screen.cursor.x) == (len(lines) - 1,
                                                                 len("> half typ"))
        term.type("ed\n")  # the terminal kept the whole line
        term.wait_for(term.shows("< half typed"), "the line typed across the interruption")
        term.type("/close\n")
        assert term.wait_exit() == 0


def test_close_waits_for_the_answers_in_flight(server_url: str) -> None:
    with client_on_a_terminal(server_url, "--linger", "2") as term:
        # Both lines at once: the close comes before the server answered.
        term.type("slow\n/close 4000 done\n")
        assert term.wait_exit() == 0
        lines = term.lines()
        assert lines[1:] == ["> slow", "/close 4000 done", "< late 0", "< late 1", "< late 2",
                             "closed: 4000 done"], lines


def test_client_help_lists_no_server_only_option() -> None:
    client_help = run("client", "--help").stdout
    serve_help = run("serve", "--help").stdout
    for option in ("--max-connections", "--allowed-origin", "--trust-proxy-headers"):
        assert option in serve_help
        assert option not in client_help
    for option in ("--max-message-size", "--ping-interval", "--no-compression", "--linger"):
        assert option in client_help


def test_input_from_a_pipe_output_on_a_terminal(server_url: str) -> None:
    # No prompt to type at, but the transcript keeps both directions.
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    proc = subprocess.Popen([*WSKIT, "client", server_url], stdin=subprocess.PIPE,
                            stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    term = Terminal(master, proc)
    try:
        assert proc.stdin is not None
        proc.stdin.write(b"hello\nattack\n")
        proc.stdin.close()
        assert term.wait_exit() == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(master)
    # Each answer after its line; the two lines may both go before the first
    # answer comes back.
    lines = term.lines()
    assert [line for line in lines if line.startswith(">")] == ["> hello", "> attack"]
    assert [line for line in lines if line.startswith("<")] == [
        "< hello",
        "< \\x1b[31mred\\x1b[0m\\x07bell\\x1b]0;pwned\\x07\\x1b[2J\\x1b[Hhome"
        "\\u202eevil\\x9bmore"]
    assert len(lines) == 4 and lines.index("> hello") < lines.index("< hello")
    for sequence in _NEVER_RAW:
        assert sequence not in term.raw, sequence
