"""Helpers for the tests of the ``wskit`` command: servers and commands as subprocesses.

Used by ``test_cli`` and ``test_rooms_cli``; the generic process and client
helpers (free ports, bounded polls, the ``websockets`` client) are in
``_procs``. Every wait is bounded; every server is killed if its test fails
before stopping it.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
from _procs import STOP_TIMEOUT, TIMEOUT, free_port, wait_accepting

ROOT = Path(__file__).resolve().parent.parent
WSKIT = [sys.executable, "-m", "wskit"]


class Lines:
    """A pipe read line by line in a thread, with bounded waits."""

    def __init__(self, pipe: IO[str]) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            self.queue.put(line.rstrip("\n"))
        self.queue.put(None)

    def next(self, timeout: float = TIMEOUT) -> str | None:
        try:
            line = self.queue.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no line within {timeout}s (so far: {self.seen})")
        if line is not None:
            self.seen.append(line)
        return line

    def until(self, predicate: Callable[[str], bool], timeout: float = TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.next(max(0.01, deadline - time.monotonic()))
            if line is None:
                pytest.fail(f"stream ended; seen: {self.seen}")
            if predicate(line):
                return line


class Server:
    """A ``wskit`` server process on a known port."""

    def __init__(self, proc: subprocess.Popen[str], port: int, errors: Lines) -> None:
        self.proc = proc
        self.port = port
        self.errors = errors
        self.url = f"ws://127.0.0.1:{port}"

    def stop(self) -> int:
        """SIGINT; returns the exit status (within STOP_TIMEOUT)."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail("still running after SIGINT")


@contextlib.contextmanager
def run_server(*args: str, cwd: Path = ROOT, port: int | None = None,
               command: list[str] | None = None) -> Iterator[Server]:
    """``wskit <args> --port <port>`` (a free one by default), once it accepts connections.

    Killed if it is still running when the block is left.
    """
    port = free_port() if port is None else port
    proc = subprocess.Popen(
        [*(command or WSKIT), *args, "--port", str(port)], cwd=cwd, text=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    errors = Lines(proc.stderr)
    try:
        wait_accepting(port, proc)
        yield Server(proc, port, errors)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stderr.close()


def run(*args: str, cwd: Path = ROOT, stdin: str = "",
        timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """``wskit <args>`` to completion, ``stdin`` as its input; output captured."""
    return subprocess.run([*WSKIT, *args], cwd=cwd, input=stdin, capture_output=True,
                          text=True, timeout=timeout)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line ``wskit: error: ...`` that ``result`` wrote to stderr."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("wskit: error: "), lines
    return lines[0]
