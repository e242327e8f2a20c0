"""wskit behind a real nginx: TLS ends in nginx, the WebSocket upgrade is proxied.

The site configuration is ``examples/nginx.conf``, the very text that
``docs/howto/nginx.md`` shows (checked here); the test only swaps the
production ports and certificate paths for free loopback ports and a
``trustme`` certificate, and wraps it in a main configuration that keeps
nginx in the foreground with every file in ``tmp_path``.
"""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme
from _procs import TIMEOUT, free_port, wait_accepting, ws_connect

import wskit

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "examples" / "nginx.conf"
HOWTO = ROOT / "docs" / "howto" / "nginx.md"
# Debian's nginx (.ci/apt installs it); a missing nginx fails, it is not skipped.
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

MAIN = """\
daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/site.conf;
}}
"""


def test_the_howto_shows_the_configuration_the_test_uses() -> None:
    blocks = re.findall(r"```nginx\n(.*?)```", HOWTO.read_text(), re.S)
    assert blocks == [SITE.read_text()]


def site_config(listen: int, upstream: int, cert: Path, key: Path) -> str:
    text = SITE.read_text()
    swaps = {
        "listen 443 ssl;": f"listen 127.0.0.1:{listen} ssl;",
        "server 127.0.0.1:3012;": f"server 127.0.0.1:{upstream};",
        "/etc/ssl/certs/example.com.pem": str(cert),
        "/etc/ssl/private/example.com.key": str(key),
    }
    for old, new in swaps.items():
        assert text.count(old) == 1, f"{old!r} is no longer in {SITE}"
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def nginx(tmp_path: Path, ca: trustme.CA) -> Iterator[tuple[int, int]]:
    """nginx on a free port, proxying to a wskit port the test then listens on."""
    listen, upstream = free_port(), free_port()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    for blob in cert.cert_chain_pems[1:]:
        blob.write_to_path(str(tmp_path / "cert.pem"), append=True)
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    (tmp_path / "site.conf").write_text(
        site_config(listen, upstream, tmp_path / "cert.pem", tmp_path / "key.pem"))
    (tmp_path / "nginx.conf").write_text(MAIN.format(tmp=tmp_path))
    proc = subprocess.Popen([NGINX, "-p", str(tmp_path), "-e", "stderr",
                             "-c", str(tmp_path / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_accepting(listen, proc)
        yield listen, upstream
    finally:
        proc.terminate()
        try:
            _, errors = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, errors = proc.communicate()
        assert "[emerg]" not in errors and "[alert]" not in errors, errors


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


class Reporter(wskit.Handler):
    """Tells the client the address the server sees, then echoes."""

    def on_open(self, handshake: wskit.Handshake) -> None:
        self.out.send(f"you are {handshake.remote_addr()}")

    def on_message(self, msg: wskit.Message) -> None:
        self.out.send(msg)


@pytest.mark.parametrize("client_host", ["127.0.0.1", "127.0.0.2"])
async def test_forged_forwarded_for_is_ignored_behind_nginx(
        nginx: tuple[int, int], ca: trustme.CA, caplog: pytest.LogCaptureFixture,
        client_host: str) -> None:
    listen, upstream = nginx
    caplog.set_level("INFO", logger="wskit")
    settings = wskit.Settings(trusted_proxies=["127.0.0.1"], ping_interval=None)

    def client() -> list[Any]:
        # The client's own address is client_host (127.0.0.2 is loopback too
        # on Linux): that is what nginx sees and appends after the forgery.
        sock = socket.create_connection(("127.0.0.1", listen), timeout=TIMEOUT,
                                        source_address=(client_host, 0))
        with ws_connect(f"wss://127.0.0.1:{listen}/live", sock=sock,
                        ssl=client_context(ca), server_hostname="localhost",
                        additional_headers={"X-Forwarded-For": "6.6.6.6"}) as ws:
            seen = [ws.recv(), ws.request.headers.get("X-Forwarded-For")]
            ws.send("through nginx")
            seen.append(ws.recv())
        return seen

    async with wskit.WebSocket(Reporter, settings) as server:
        await server.listen(("127.0.0.1", upstream))
        with trio.fail_after(3 * TIMEOUT):
            greeting, sent, echoed = await trio.to_thread.run_sync(client)
            # Polled: a log record has no event to wait on.
            while not any(getattr(r, "event", "") == "close"  # noqa: ASYNC110
                          for r in caplog.records):
                await trio.sleep(0.01)
        server.shutdown()

    assert sent == "6.6.6.6"  # the forgery did go out
    assert greeting == f"you are {client_host}"
    assert echoed == "through nginx"
    (opened,) = [r for r in caplog.records if getattr(r, "event", "") == "open"]
    assert opened.remote == client_host  # type: ignore[attr-defined]
    assert opened.peer.startswith("127.0.0.1:")  # type: ignore[attr-defined]
    assert "6.6.6.6" not in caplog.text


async def test_without_trusting_nginx_the_client_is_nginx(
        nginx: tuple[int, int], ca: trustme.CA) -> None:
    listen, upstream = nginx

    def client() -> str:
        sock = socket.create_connection(("127.0.0.1", listen), timeout=TIMEOUT,
                                        source_address=("127.0.0.2", 0))
        with ws_connect(f"wss://127.0.0.1:{listen}/", sock=sock, ssl=client_context(ca),
                        server_hostname="localhost") as ws:
            return str(ws.recv())

    async with wskit.WebSocket(Reporter, wskit.Settings(ping_interval=None)) as server:
        await server.listen(("127.0.0.1", upstream))
        with trio.fail_after(3 * TIMEOUT):
            greeting = await trio.to_thread.run_sync(client)
        server.shutdown()
    assert greeting == "you are 127.0.0.1"  # nginx's address: its header is not believed
