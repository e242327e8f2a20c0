"""A throwaway ``redis-server`` for the cluster tests, started by the test.

``redis_server()`` starts Debian's ``redis-server`` on a free loopback port
with no persistence (``--save '' --appendonly no``), waits until it answers
``PING``, and stops it when the block is left. ``RedisServer.stop()`` and
``start()`` stop and restart it on the same port (the outage tests);
``RedisServer.pause()`` stalls it without closing a connection.

Not a test module: test modules import it by name (``from _redis import
redis_server``), as they do ``_procs``.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _procs import START_TIMEOUT, STOP_TIMEOUT, free_port

REDIS_SERVER = shutil.which("redis-server")


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1:port``."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if REDIS_SERVER is None:
            pytest.fail("redis-server is not installed (.ci/apt installs it)")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while not _ping(self.port):
            if self.proc.poll() is not None:
                pytest.fail(f"redis-server exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                pytest.fail(f"redis-server did not answer on port {self.port}")
            time.sleep(0.05)

    def pause(self, ms: int) -> None:
        """``CLIENT PAUSE ms ALL``: Redis keeps every connection but answers no
        command for ``ms`` ms (a stall, as under load; subscribers stay)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=START_TIMEOUT) as sock:
            sock.sendall(f"CLIENT PAUSE {ms} ALL\r\n".encode())
            assert sock.recv(64).startswith(b"+OK")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
