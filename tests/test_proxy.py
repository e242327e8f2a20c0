"""Clients through a real HTTP proxy: Debian's tinyproxy, started by each test.

The servers are a wskit server and a ``websockets`` server on loopback, in
plain TCP and in TLS (``trustme`` certificates). That a connection really
went through the proxy is shown twice: the client's TCP peer is the
proxy's port, and tinyproxy's log has the ``CONNECT`` line; that it did not
is shown by the opposite of both.
"""

from __future__ import annotations

import functools
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme
from _procs import free_port
from _tinyproxy import PASSWORD, USER, Tinyproxy, require_tinyproxy

import wskit

TIMEOUT = 10.0
NO_PING = wskit.Settings(ping_interval=None)
ROOT = Path(__file__).resolve().parent.parent

#: Every variable that "auto" reads: cleared before each test, so that the
#: machine's own proxy settings never leak in.
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "ws_proxy", "wss_proxy", "no_proxy",
                    "all_proxy", "REQUEST_METHOD")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[Callable[..., Tinyproxy]]:
    """``tinyproxy(connect_ports=(...), auth=False)``: a running tinyproxy."""
    require_tinyproxy()
    started: list[Tinyproxy] = []

    def start(**kwargs: Any) -> Tinyproxy:
        proxy = Tinyproxy(tmp_path, **kwargs)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


# ----------------------------------------------------------------------
# Servers


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_ctx(ca: trustme.CA) -> ssl.SSLContext:
    # "localhost" only, not 127.0.0.1: the proxy is dialled as 127.0.0.1, so
    # a client that checked the certificate against the proxy's name (or sent
    # it as SNI) would fail.
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(ctx)
    return ctx


@pytest.fixture(scope="module")
def client_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.fixture
async def wskit_server(nursery: trio.Nursery) -> AsyncIterator[Callable[..., Any]]:
    """``await wskit_server(ssl_context=None)``: a wskit echo server's port.

    It echoes each message, answers ``"sni?"`` with the server name the
    client sent in its TLS hello and ``"host?"`` with the handshake's
    ``Host`` header (``"-"`` for none).
    """
    running: list[wskit.WebSocket] = []

    async def start(ssl_context: ssl.SSLContext | None = None) -> int:
        names: list[str] = []
        if ssl_context is not None:
            def remember(sock: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
                names.append(name or "-")
            ssl_context.sni_callback = remember  # type: ignore[assignment]

        class Echo(wskit.Handler):
            def on_open(self, handshake: wskit.Handshake) -> None:
                self.host = handshake.request.headers.get("Host", "-")

            def on_message(self, msg: wskit.Message) -> None:
                if msg == "sni?":
                    self.out.send(names[-1] if names else "-")
                elif msg == "host?":
                    self.out.send(self.host)
                else:
                    self.out.send(msg)

        factory = Echo

        async def run(task_status: trio.TaskStatus[int]) -> None:
            async with wskit.WebSocket(factory, NO_PING) as ws:
                running.append(ws)
                _, port = await ws.listen("127.0.0.1:0", ssl_context=ssl_context)
                task_status.started(port)

        port: int = await nursery.start(run)
        return port

    yield start
    for ws in running:
        ws.shutdown()


async def _echo(conn: Any) -> None:
    async for message in conn:
        await conn.send(message)


class Client(wskit.Handler):
    """Sends each of ``say`` in turn, keeps the answers, closes after the last."""

    def __init__(self, out: wskit.Sender, say: list[str], seen: dict[str, Any]) -> None:
        super().__init__(out)
        self.say = list(say)
        self.seen = seen
        seen["answers"] = []

    def on_open(self, handshake: wskit.Handshake) -> None:
        self.seen["peer"] = handshake.peer_addr
        self.out.send(self.say.pop(0))

    def on_message(self, msg: wskit.Message) -> None:
        self.seen["answers"].append(msg.data)
        if self.say:
            self.out.send(self.say.pop(0))
        else:
            self.out.close()


async def round_trip(url: str, settings: wskit.Settings, *, say: tuple[str, ...] = ("hello",),
                     ssl_context: ssl.SSLContext | None = None) -> dict[str, Any]:
    """Connect to ``url``, send ``say``, return what the client saw."""
    seen: dict[str, Any] = {}
    with trio.fail_after(TIMEOUT):
        async with wskit.WebSocket(lambda out: Client(out, list(say), seen), settings) as ws:
            await ws.connect(url, ssl_context=ssl_context)
    return seen


def via(proxy: str | None) -> wskit.Settings:
    return wskit.Settings(ping_interval=None, proxy=proxy)


# ----------------------------------------------------------------------
# Through the proxy


async def test_ws_to_a_wskit_server_through_the_proxy(
    tinyproxy: Callable[..., Tinyproxy], wskit_server: Callable[..., Any]
) -> None:
    port = await wskit_server()
    proxy = tinyproxy(connect_ports=[port])
    seen = await round_trip(f"ws://127.0.0.1:{port}/", via(proxy.url()), say=("hello", "host?"))
    # The handshake names the server, not the proxy; the TCP peer is the proxy.
    assert seen["answers"] == ["hello", f"127.0.0.1:{port}"]
    assert seen["peer"][1] == proxy.port
    assert proxy.connects() == [f"127.0.0.1:{port}"]


async def test_wss_to_a_wskit_server_tls_inside_the_tunnel(
    tinyproxy: Callable[..., Tinyproxy], wskit_server: Callable[..., Any],
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> None:
    port = await wskit_server(server_ctx)
    proxy = tinyproxy(connect_ports=[port])
    seen = await round_trip(f"wss://localhost:{port}/", via(proxy.url()),
                            say=("secret", "sni?"), ssl_context=client_ctx)
    # The certificate (for "localhost" only) was checked against the
    # server's name, and the server's name went out as SNI.
    assert seen["answers"] == ["secret", "localhost"]
    assert seen["peer"][1] == proxy.port
    assert proxy.connects() == [f"localhost:{port}"]


async def test_wss_to_a_websockets_server_with_basic_auth(
    tinyproxy: Callable[..., Tinyproxy], ws_server: Any,
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> None:
    server = await ws_server(_echo, ssl=server_ctx)
    proxy = tinyproxy(connect_ports=[server.port], auth=True)
    assert f"{USER}:{PASSWORD}@" in proxy.url()
    seen = await round_trip(f"wss://localhost:{server.port}/", via(proxy.url()),
                            ssl_context=client_ctx)
    assert seen["answers"] == ["hello"]
    assert proxy.connects() == [f"localhost:{server.port}"]


async def test_ws_to_a_websockets_server_with_basic_auth(
    tinyproxy: Callable[..., Tinyproxy], ws_server: Any
) -> None:
    server = await ws_server(_echo)
    proxy = tinyproxy(connect_ports=[server.port], auth=True)
    seen = await round_trip(server.url(), via(proxy.url()), say=("x" * 100_000,))
    assert seen["answers"] == ["x" * 100_000]
    assert seen["peer"][1] == proxy.port


# ----------------------------------------------------------------------
# What the proxy refuses


async def _connect_error(url: str, settings: wskit.Settings,
                         ssl_context: ssl.SSLContext | None = None) -> wskit.Error:
    with trio.fail_after(TIMEOUT), pytest.raises(wskit.Error) as info:
        async with wskit.WebSocket(lambda out: wskit.Handler(out), settings) as ws:
            await ws.connect(url, ssl_context=ssl_context)
    return info.value


async def test_missing_credentials_are_a_407_error(
    tinyproxy: Callable[..., Tinyproxy], wskit_server: Callable[..., Any]
) -> None:
    port = await wskit_server()
    proxy = tinyproxy(connect_ports=[port], auth=True)
    bare = f"http://127.0.0.1:{proxy.port}"
    err = await _connect_error(f"ws://127.0.0.1:{port}/", via(bare))
    assert err.kind is wskit.ErrorKind.HTTP
    assert err.status == 407
    assert f"proxy {bare} requires authentication" in str(err)
    assert "http://user:password@host:port" in str(err)


async def test_a_wrong_password_is_an_http_error_that_hides_the_password(
    tinyproxy: Callable[..., Tinyproxy], wskit_server: Callable[..., Any]
) -> None:
    port = await wskit_server()
    proxy = tinyproxy(connect_ports=[port], auth=True)
    wrong = proxy.url(user=USER, password="not-the-password")
    err = await _connect_error(f"ws://127.0.0.1:{port}/", via(wrong))
    assert err.kind is wskit.ErrorKind.HTTP
    # tinyproxy answers wrong credentials with 401 (missing ones with 407).
    assert err.status == 401
    assert f"proxy http://{USER}@127.0.0.1:{proxy.port} refused our credentials" in str(err)
    assert "not-the-password" not in str(err)
    assert "not-the-password" not in repr(via(wrong))


async def test_a_port_the_proxy_does_not_allow_is_a_403_error(
    tinyproxy: Callable[..., Tinyproxy], wskit_server: Callable[..., Any]
) -> None:
    port = await wskit_server()
    allowed = free_port()
    proxy = tinyproxy(connect_ports=[allowed])  # not the server's port
    err = await _connect_error(f"ws://127.0.0.1:{port}/", via(proxy.url()))
    assert err.kind is wskit.ErrorKind.HTTP
    assert err.status == 403
    assert f"refused to open a tunnel to 127.0.0.1:{port}" in str(err)
    assert "allows CONNECT to this host and port" in str(err)


async def test_a_target_the_proxy_cannot_reach_is_its_error(
    tinyproxy: Callable[..., Tinyproxy]
) -> None:
    proxy = tinyproxy()  # no ConnectPort: every port allowed
    closed = free_port()
    err = await _connect_error(f"ws://127.0.0.1:{closed}/", via(proxy.url()))
    assert err.kind is wskit.ErrorKind.HTTP
    assert err.status == 500  # tinyproxy's "Unable to connect"
    assert f"127.0.0.1:{closed}" in str(err)


async def test_an_unreachable_proxy_is_an_io_error() -> None:
    port = free_port()
    err = await _connect_error("ws://127.0.0.1:1/", via(f"http://127.0.0.1:{port}"))
    assert err.kind is wskit.ErrorKind.IO
    assert str(err).startswith(f"could not connect to proxy http://127.0.0.1:{port} "
                               "(from Settings.proxy): Connection refused")
    assert isinstance(err.__cause__, ConnectionRefusedError)


async def test_a_websocket_server_is_no_proxy(wskit_server: Any) -> None:
    # It answers CONNECT with an HTTP refusal: an HTTP error with its status.
    port = await wskit_server()
    err = await _connect_error("ws://example.test/", via(f"http://127.0.0.1:{port}"))
    assert err.kind is wskit.ErrorKind.HTTP
    assert err.status is not None and err.status >= 400


@pytest.mark.parametrize(("answer", "kind", "words"), [
    (b"SSH-2.0-OpenSSH_9.2\r\n", wskit.ErrorKind.PROTOCOL,
     "did not answer CONNECT with valid HTTP"),
    (b"", wskit.ErrorKind.IO, "closed the connection without answering CONNECT"),
    # Neither TLS nor the WebSocket handshake lets the server speak first.
    (b"HTTP/1.1 200 OK\r\n\r\nSSH-2.0-OpenSSH_9.2\r\n", wskit.ErrorKind.PROTOCOL,
     "sent data before the client spoke"),
])
async def test_a_peer_that_is_no_http_proxy(nursery: trio.Nursery, answer: bytes,
                                            kind: wskit.ErrorKind, words: str) -> None:
    async def not_a_proxy(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.receive_some(65536)
            await stream.send_all(answer)

    listeners = await nursery.start(functools.partial(trio.serve_tcp, not_a_proxy, 0,
                                                      host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    err = await _connect_error("ws://example.test/", via(f"http://127.0.0.1:{port}"))
    assert err.kind is kind
    assert f"proxy http://127.0.0.1:{port}" in str(err)
    assert words in str(err)


# ----------------------------------------------------------------------
# From the environment


async def test_https_proxy_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tinyproxy: Callable[..., Tinyproxy],
    wskit_server: Callable[..., Any], server_ctx: ssl.SSLContext,
    client_ctx: ssl.SSLContext
) -> None:
    port = await wskit_server(server_ctx)
    proxy = tinyproxy(connect_ports=[port], auth=True)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url())
    # Loopback is direct by default; Chromium's "<-loopback>" lifts that.
    monkeypatch.setenv("NO_PROXY", "example.com,<-loopback>")
    seen = await round_trip(f"wss://localhost:{port}/", NO_PING, ssl_context=client_ctx)
    assert seen["answers"] == ["hello"]
    assert seen["peer"][1] == proxy.port
    assert proxy.connects() == [f"localhost:{port}"]


async def test_http_proxy_from_the_environment_serves_ws_only(
    monkeypatch: pytest.MonkeyPatch, tinyproxy: Callable[..., Tinyproxy],
    wskit_server: Callable[..., Any], server_ctx: ssl.SSLContext,
    client_ctx: ssl.SSLContext
) -> None:
    plain = await wskit_server()
    secure = await wskit_server(server_ctx)
    proxy = tinyproxy(connect_ports=[plain, secure])
    monkeypatch.setenv("http_proxy", proxy.url())
    monkeypatch.setenv("no_proxy", "<-loopback>")
    seen = await round_trip(f"ws://127.0.0.1:{plain}/", NO_PING)
    assert seen["peer"][1] == proxy.port
    seen = await round_trip(f"wss://localhost:{secure}/", NO_PING, ssl_context=client_ctx)
    assert seen["peer"][1] == secure  # http_proxy is not for wss://
    assert proxy.connects() == [f"127.0.0.1:{plain}"]


@pytest.mark.parametrize("no_proxy", [None, "127.0.0.1", "*", ".example.com,127.0.0.0/8",
                                      "<-loopback>,127.0.0.1"])
async def test_no_proxy_and_loopback_connect_directly(
    monkeypatch: pytest.MonkeyPatch, tinyproxy: Callable[..., Tinyproxy],
    wskit_server: Callable[..., Any], no_proxy: str | None
) -> None:
    port = await wskit_server()
    proxy = tinyproxy(connect_ports=[port])
    monkeypatch.setenv("https_proxy", proxy.url())
    if no_proxy is not None:
        monkeypatch.setenv("no_proxy", no_proxy)
    seen = await round_trip(f"ws://127.0.0.1:{port}/", NO_PING)
    assert seen["answers"] == ["hello"]
    assert seen["peer"][1] == port
    assert proxy.connects() == []


async def test_proxy_none_ignores_the_environment(
    monkeypatch: pytest.MonkeyPatch, wskit_server: Callable[..., Any]
) -> None:
    port = await wskit_server()
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{free_port()}")  # nobody there
    monkeypatch.setenv("no_proxy", "<-loopback>")
    seen = await round_trip(f"ws://127.0.0.1:{port}/", via(None))
    assert seen["peer"][1] == port
    # ... whereas "auto" would have tried that proxy:
    err = await _connect_error(f"ws://127.0.0.1:{port}/", NO_PING)
    assert err.kind is wskit.ErrorKind.IO
    assert "(from the https_proxy environment variable)" in str(err)


async def test_a_malformed_environment_proxy_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("https_proxy", "socks5://127.0.0.1:1080")
    err = await _connect_error("ws://example.test/", NO_PING)
    assert err.kind is wskit.ErrorKind.USAGE
    assert "https_proxy environment variable is a socks5:// proxy" in str(err)


def test_settings_check_the_proxy_url() -> None:
    for bad in ("https://proxy:3128", "http://", "http://proxy:3128/path", "http://h:99999",
                "socks5h://proxy"):
        with pytest.raises(wskit.Error) as info:
            wskit.Settings(proxy=bad)
        assert info.value.kind is wskit.ErrorKind.USAGE
        assert "Settings.proxy" in str(info.value)
    with pytest.raises(wskit.Error):
        wskit.Settings(proxy=3128)  # type: ignore[arg-type]
    assert wskit.Settings().proxy == "auto"
    assert wskit.Settings(proxy="proxy.internal:3128").proxy == "proxy.internal:3128"


# ----------------------------------------------------------------------
# The command line


def test_cli_client_proxy_option(tmp_path: Path) -> None:
    require_tinyproxy()
    from _cli_helpers import run, run_server

    with run_server("echo") as server:
        proxy = Tinyproxy(tmp_path, connect_ports=[server.port], auth=True)
        try:
            env = {k: v for k, v in os.environ.items()
                   if k.lower() not in _PROXY_VARIABLES}
            result = subprocess.run(
                [sys.executable, "-m", "wskit", "client", server.url, "--proxy", proxy.url()],
                input="through the proxy\n", capture_output=True, text=True, timeout=TIMEOUT,
                cwd=ROOT, env=env)
            assert result.returncode == 0, result.stderr
            assert result.stdout == "through the proxy\n"
            assert proxy.connects() == [f"127.0.0.1:{server.port}"]

            bare = f"http://127.0.0.1:{proxy.port}"
            refused = run("client", server.url, "--proxy", bare, stdin="x\n")
            assert refused.returncode == 1
            assert f"proxy {bare} requires authentication (HTTP 407" in refused.stderr
            assert run("client", server.url, "--proxy", "ftp://x").returncode == 2
        finally:
            proxy.stop()
