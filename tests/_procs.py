"""Helpers for the synchronous tests that drive real processes over real sockets.

Used by the tests of ``examples/``, of the ``wskit`` command and of the
browser: free ports, bounded polls, the ``websockets`` sync client, plain HTTP
GETs, and running an example as a subprocess (``run_example``).

Not a test module and not a conftest: test modules import it by name
(``from _procs import ...``), which works because pytest puts ``tests/`` on
``sys.path`` (the default ``prepend`` import mode; ``tests/`` is no package).

Every wait is bounded. The bounds are generous for a loaded 2-core CI
machine; a passing run takes a fraction of them.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK
from websockets.sync.client import ClientConnection, connect

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

#: One message, one request, one short wait (seconds).
TIMEOUT = 8.0
#: A process (Python example, ``wskit`` server, Chromium) until it is ready.
START_TIMEOUT = 20.0
#: A process until it has exited after SIGINT (or ``Browser.close``).
STOP_TIMEOUT = 15.0


def free_port() -> int:
    """A port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(check: Callable[[], Any], what: str | Callable[[], str],
             timeout: float = TIMEOUT) -> Any:
    """Poll ``check`` until it returns something truthy (returned), at most ``timeout`` s.

    ``what`` names the awaited condition in the failure message; a callable is
    called only then (e.g. to show a process's output at that moment).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            description = what() if callable(what) else what
            pytest.fail(f"timed out after {timeout}s waiting for {description} "
                        f"(last: {value!r})")
        time.sleep(0.05)


def wait_accepting(port: int, proc: subprocess.Popen[Any],
                   output: Callable[[], str] = lambda: "", timeout: float = START_TIMEOUT) -> None:
    """Wait until 127.0.0.1:``port`` accepts connections, failing at once if ``proc`` exits.

    ``output`` returns what the process wrote, for the failure messages.
    """

    def accepting() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args!r} exited with {proc.returncode} before port {port} "
                        f"accepted connections:\n{output()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    wait_for(accepting, lambda: f"port {port} to accept connections:\n{output()}", timeout)


def ws_connect(url: str, **kwargs: Any) -> ClientConnection:
    """The ``websockets`` sync client, with bounded opening and closing handshakes.

    ``proxy=None``: never route 127.0.0.1 through a proxy from the environment.
    ``kwargs`` go to ``websockets.sync.client.connect`` (``origin``, ``ssl``,
    ``max_size``, ``compression``, ...).
    """
    client: ClientConnection = connect(url, proxy=None, open_timeout=TIMEOUT,
                                       close_timeout=TIMEOUT, **kwargs)
    return client


def assert_closed_by_server(ws: ClientConnection, code: int) -> None:
    """The server closes ``ws`` with ``code`` within TIMEOUT.

    Messages still on their way before the close frame are skipped.
    """
    expected = ConnectionClosedOK if code in (1000, 1001) else ConnectionClosedError
    deadline = time.monotonic() + TIMEOUT
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            ws.recv(timeout=remaining)
    except expected:
        pass
    else:
        pytest.fail(f"not closed within {TIMEOUT}s")
    assert ws.close_code == code


def http_get(port: int, path: str) -> tuple[int, str, str]:
    """GET ``path`` from 127.0.0.1:``port``: (status, Content-Type, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read().decode()
        return response.status, response.getheader("Content-Type", ""), body
    finally:
        conn.close()


# ----------------------------------------------------------------------
# Examples as processes


class Example:
    """A running example: its process, port, and output (stdout and stderr) in a file."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.log = log
        self.url = f"ws://127.0.0.1:{port}"

    @property
    def stdin(self) -> IO[bytes]:
        """Its standard input (``run_example(..., stdin=subprocess.PIPE)``)."""
        assert self.proc.stdin is not None
        return self.proc.stdin

    def write(self, line: str) -> None:
        """Write ``line`` and a newline to its standard input."""
        self.stdin.write(line.encode() + b"\n")
        self.stdin.flush()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_output(self, text: str, timeout: float = TIMEOUT) -> str:
        """Wait until ``text`` appears in the output; returns the output."""
        output: str = wait_for(lambda: text in self.output() and self.output(),
                               f"{text!r} in the output of {self.proc.args!r}", timeout)
        return output

    def wait_ready(self) -> None:
        """Wait until its port accepts connections (it must not exit first)."""
        wait_accepting(self.port, self.proc, self.output)

    def wait_exit(self, timeout: float = TIMEOUT) -> int:
        """Its exit status, once it exited on its own within ``timeout`` s."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.proc.args!r} still running after {timeout}s:\n{self.output()}")

    def stop(self) -> str:
        """SIGINT; the example must exit 0 within STOP_TIMEOUT. Returns its output."""
        self.proc.send_signal(signal.SIGINT)
        code = self.wait_exit(STOP_TIMEOUT)
        output = self.output()
        assert code == 0, f"exit {code} after SIGINT:\n{output}"
        return output


@contextlib.contextmanager
def run_example(script: str, tmp_path: Path, *args: str, server: bool = True,
                stdin: int = subprocess.DEVNULL) -> Iterator[Example]:
    """Start ``examples/<script>``; a server gets ``--port`` and is waited for.

    The process is killed if it is still running when the block is left (a
    test that failed before ``stop()`` leaks nothing).
    """
    port = free_port() if server else 0
    log = tmp_path / f"{script}-{port}-{time.monotonic_ns()}.log"
    argv = [sys.executable, str(EXAMPLES / script), *args]
    if server:
        argv += ["--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=stdin,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    example = Example(proc, port, log)
    try:
        if server:
            example.wait_ready()
        yield example
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()


def drain(ws: ClientConnection, quiet: float = 0.6) -> list[str]:
    """Every text message until ``quiet`` seconds pass without one."""
    got: list[str] = []
    with contextlib.suppress(TimeoutError):
        while True:
            message = ws.recv(timeout=quiet)
            assert isinstance(message, str)
            got.append(message)
    return got
