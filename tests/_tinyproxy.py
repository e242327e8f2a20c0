"""A real HTTP proxy for the tests: Debian's ``tinyproxy``, on a free loopback port.

Started by the test that needs it, with a configuration written to the
test's ``tmp_path``, and stopped (SIGTERM, then SIGKILL) when it ends.

What tinyproxy 1.11 does that the tests rely on (checked by hand and by
``test_proxy``):

- ``CONNECT`` is allowed to every port when the configuration has no
  ``ConnectPort`` line, and only to the listed ports otherwise (others get
  ``403 Access violation``). Debian's stock configuration lists 443 and 563
  only, so a test lists the port of its server.
- With ``BasicAuth``, a request without ``Proxy-Authorization`` gets ``407``
  and one with wrong credentials gets ``401`` (not 407).
- It answers a tunnel with ``HTTP/1.0 200 Connection established`` and
  logs each ``CONNECT`` request line, which is how a test proves that a
  connection went through it (or did not).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest
from _procs import STOP_TIMEOUT, free_port, wait_accepting

TINYPROXY = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"

USER = "alice"
#: tinyproxy's configuration takes letters, digits and "-._" only (no quoting).
PASSWORD = "s3cret-p.ss_w0rd"


class Tinyproxy:
    """One running tinyproxy; ``url()`` to reach it, ``connects()`` to see what it tunnelled."""

    def __init__(self, tmp: Path, *, connect_ports: Iterable[int] = (),
                 auth: bool = False) -> None:
        self.port = free_port()
        self.auth = auth
        self.log_path = tmp / f"tinyproxy-{self.port}.log"
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 30",
            "MaxClients 50",
            "LogLevel Connect",
            "Allow 127.0.0.1",
            "DisableViaHeader Yes",
            *(f"ConnectPort {port}" for port in connect_ports),
        ]
        if auth:
            lines.append(f"BasicAuth {USER} {PASSWORD}")
        self.conf = tmp / f"tinyproxy-{self.port}.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self._log = self.log_path.open("w")
        # -d: stay in the foreground and log to stderr (no pid or log file).
        self.proc = subprocess.Popen([TINYPROXY, "-d", "-c", str(self.conf)],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        wait_accepting(self.port, self.proc, self.log)

    def url(self, *, user: str | None = None, password: str | None = None) -> str:
        """``http://[user:password@]127.0.0.1:port`` (the test's credentials by default
        when the proxy wants them)."""
        if user is None and self.auth:
            user = USER
        if password is None and self.auth:
            password = PASSWORD
        creds = f"{user}:{password or ''}@" if user is not None else ""
        return f"http://{creds}127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def connects(self) -> list[str]:
        """The targets of the ``CONNECT`` requests it received, in order."""
        found = []
        for line in self.log().splitlines():
            _, sep, request = line.partition("): CONNECT ")
            if sep:
                found.append(request.split(" ")[0])
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def require_tinyproxy() -> None:
    """Fail (not skip) when tinyproxy is missing: ``.ci/apt`` installs it."""
    if not os.access(TINYPROXY, os.X_OK):
        pytest.fail(f"{TINYPROXY} not found: install Debian's tinyproxy (see .ci/apt)")
