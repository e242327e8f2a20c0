"""A throwaway ``redis-server`` for the cluster tests, started by the test.

``redis_server()`` starts Debian's ``redis-server`` on a free loopback port
with no persistence (``--save '' --appendonly no``), waits until it answers
``PING``, and stops it when the block is left. ``RedisServer.stop()`` and
``start()`` stop and restart it on the same port (the outage tests);
``RedisServer.pause()`` stalls it without closing a connection.
``tls=TLSFiles(...)`` serves TLS only on that port (``--port 0 --tls-port``,
client certificates not required); ``password=`` sets ``--requirepass``.

Not a test module: test modules import it by name (``from _redis import
redis_server``), as they do ``_procs``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _procs import START_TIMEOUT, STOP_TIMEOUT, free_port

REDIS_SERVER = shutil.which("redis-server")


@dataclasses.dataclass(frozen=True)
class TLSFiles:
    """PEM files for a TLS redis-server: its certificate and key, and the CA
    that signed them (what a client must trust)."""

    cert: Path
    key: Path
    ca: Path


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1:port``."""

    def __init__(self, port: int, workdir: Path, tls: TLSFiles | None = None,
                 password: str | None = None) -> None:
        self.port = port
        self.tls = tls
        self.password = password
        #: Without the password or TLS options: a test adds what it means to test.
        self.url = f"{'rediss' if tls else 'redis'}://127.0.0.1:{port}/0"
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def _ping(self) -> bool:
        try:
            with contextlib.ExitStack() as stack:
                sock = stack.enter_context(socket.create_connection(("127.0.0.1", self.port),
                                                                    timeout=1))
                if self.tls is not None:
                    context = ssl.create_default_context(cafile=str(self.tls.ca))
                    sock = stack.enter_context(context.wrap_socket(
                        sock, server_hostname="127.0.0.1"))
                auth = f"AUTH {self.password}\r\n".encode() if self.password else b""
                sock.sendall(auth + b"PING\r\n")
                answer = b""
                while b"PONG" not in answer and len(answer) < 256:
                    chunk = sock.recv(256)
                    if not chunk:
                        break
                    answer += chunk
                return b"+PONG" in answer
        except OSError:
            return False

    def start(self) -> None:
        if REDIS_SERVER is None:
            pytest.fail("redis-server is not installed (.ci/apt installs it)")
        if self.tls is None:
            listen = ["--port", str(self.port)]
        else:
            listen = ["--port", "0", "--tls-port", str(self.port),
                      "--tls-cert-file", str(self.tls.cert), "--tls-key-file", str(self.tls.key),
                      "--tls-ca-cert-file", str(self.tls.ca), "--tls-auth-clients", "no"]
        if self.password is not None:
            listen += ["--requirepass", self.password]
        self.proc = subprocess.Popen(
            [REDIS_SERVER, *listen, "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ping():
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
def redis_server(workdir: Path, tls: TLSFiles | None = None,
                 password: str | None = None) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), workdir, tls, password)
    server.start()
    try:
        yield server
    finally:
        server.stop()
