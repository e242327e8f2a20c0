"""The ``wskit`` command, driven as a user would: subprocesses and real sockets.

Servers are started on a free port and polled until they accept; every
process is killed if a test fails before stopping it; every wait is bounded.
The helpers are in ``_cli_helpers`` (the command) and ``_procs``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from _cli_helpers import WSKIT, Lines, one_error_line, run, run_server
from _procs import TIMEOUT, free_port, wait_for, ws_connect
from websockets.exceptions import (
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidStatus,
    WebSocketException,
)

# ----------------------------------------------------------------------
# Help and entry points


def test_python_m_wskit_help() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("echo", "client", "serve", "dev"):
        assert command in result.stdout


@pytest.mark.parametrize(("command", "option"), [
    ("echo", "--tls-cert"), ("client", "--linger"), ("serve", "--max-message-size"),
    ("dev", "--poll-interval"),
])
def test_every_command_has_help(command: str, option: str) -> None:
    result = run(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: wskit {command}")
    assert option in result.stdout


def test_console_script_is_installed() -> None:
    script = shutil.which("wskit", path=str(Path(sys.executable).parent))
    assert script is not None, "the wskit console script is missing: pip install -e ."
    result = subprocess.run([script, "--version"], capture_output=True, text=True,
                            timeout=TIMEOUT)
    assert result.returncode == 0 and result.stdout.startswith("wskit ")


def test_no_command_is_a_usage_error() -> None:
    result = run()
    assert result.returncode == 2
    assert "usage: wskit" in result.stderr


# ----------------------------------------------------------------------
# echo + client


def test_client_pipes_through_echo_server() -> None:
    with run_server("echo") as server:
        result = run("client", server.url, stdin="hello\nwörld\n//starts with a slash\n\nlast")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            "hello", "wörld", "/starts with a slash", "", "last"]
        assert result.stderr == ""  # nothing but messages in a pipe
        assert server.stop() == 0


def test_client_interactive_ping_and_close() -> None:
    with run_server("echo") as server:
        proc = subprocess.Popen([*WSKIT, "client", server.url], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert proc.stdin and proc.stdout and proc.stderr
        out, err = Lines(proc.stdout), Lines(proc.stderr)
        try:
            for text in ("one", "two"):
                proc.stdin.write(text + "\n")
                proc.stdin.flush()
                assert out.next() == text  # each answer before the next line
            proc.stdin.write("/ping are you there\n")
            proc.stdin.flush()
            assert "pong 'are you there' after " in err.until(lambda line: "pong" in line)
            proc.stdin.write("/nonsense\n")
            proc.stdin.flush()
            assert "unknown command /nonsense" in err.until(lambda line: "unknown" in line)
            proc.stdin.write("/close 4000 bye\n")
            proc.stdin.flush()
            assert proc.wait(timeout=TIMEOUT) == 0  # we asked for that close
            assert out.next() is None
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                pipe.close()
        assert server.stop() == 0


def test_client_exits_0_when_the_server_shuts_down() -> None:
    with run_server("echo") as server:
        proc = subprocess.Popen([*WSKIT, "client", server.url], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdin and proc.stdout and proc.stderr
        out = Lines(proc.stdout)
        try:
            proc.stdin.write("ready?\n")
            proc.stdin.flush()
            assert out.next() == "ready?"
            assert server.stop() == 0  # 1001 to the client, which then exits
            assert proc.wait(timeout=TIMEOUT) == 0
            assert proc.stderr.read() == ""
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                pipe.close()


def test_client_cannot_connect() -> None:
    url = f"ws://127.0.0.1:{free_port()}"
    result = run("client", url)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"wskit: {url}: ")
    assert "refused" in lines[0]


def test_client_reports_an_abnormal_close(tmp_path: Path) -> None:
    (tmp_path / "failing.py").write_text(
        "def factory(out):\n"
        "    def on_message(msg):\n"
        "        raise RuntimeError('server bug')\n"
        "    return on_message\n")
    with run_server("serve", "failing:factory", "--log-level", "error", cwd=tmp_path) as server:
        result = run("client", server.url, stdin="x\n")
        assert result.returncode == 1
        assert "connection closed: 1011" in result.stderr
        assert server.stop() == 0


def test_client_usage_errors() -> None:
    result = run("client", "ws://127.0.0.1:1", "--header", "no colon")
    assert result.returncode == 2
    assert one_error_line(result) == "wskit: error: --header 'no colon': expected 'Name: value'"
    assert run("client", "ws://127.0.0.1:1", "--linger", "-1").returncode == 2


# ----------------------------------------------------------------------
# serve


def test_serve_an_example_router_with_settings() -> None:
    with run_server("serve", "examples.router:router", "--max-message-size", "1k",
                    "--no-compression", "--max-connections", "2") as server:
        with ws_connect(f"{server.url}/echo") as client:
            assert client.protocol.extensions == []  # --no-compression
            client.send("hi")
            assert client.recv(timeout=TIMEOUT) == "hi"
            with ws_connect(f"{server.url}/echo"):
                with pytest.raises(InvalidStatus) as full:  # --max-connections 2
                    ws_connect(f"{server.url}/echo")
                assert full.value.response.status_code == 503
            client.send("x" * 2000)  # over --max-message-size 1k
            with pytest.raises(ConnectionClosedError):
                client.recv(timeout=TIMEOUT)
            assert client.close_code == 1009
        with pytest.raises(InvalidStatus) as missing:
            ws_connect(f"{server.url}/no/such/route")
        assert missing.value.response.status_code == 404
        assert server.stop() == 0


def test_serve_a_handler_class_and_a_factory_class(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "import wskit\n"
        "class Upper(wskit.Handler):\n"
        "    def on_message(self, msg):\n"
        "        self.out.send(str(msg).upper())\n"
        "class Made(wskit.Factory):\n"
        "    def connection_made(self, out):\n"
        "        return lambda msg: out.send(f'made {msg}')\n"
        "nested = type('N', (), {'factory': Upper})\n")
    for target, expected in (("app:Upper", "HI"), ("app:Made", "made hi"),
                             ("app:nested.factory", "HI")):
        with run_server("serve", target, cwd=tmp_path) as server:
            with ws_connect(server.url) as client:
                client.send("hi")
                assert client.recv(timeout=TIMEOUT) == expected
            assert server.stop() == 0


def test_serve_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    for pem in cert.cert_chain_pems[1:]:
        with open(tmp_path / "cert.pem", "ab") as chain:
            chain.write(pem.bytes())
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    with run_server("echo", "--tls-cert", str(tmp_path / "cert.pem"),
                    "--tls-key", str(tmp_path / "key.pem")) as server:
        url = f"wss://127.0.0.1:{server.port}"
        result = run("client", url, "--ca-file", str(tmp_path / "ca.pem"), stdin="secure\n")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "secure\n"
        # Without trusting the CA, the client refuses the certificate.
        refused = run("client", url, stdin="x\n")
        assert refused.returncode == 1 and "certificate" in refused.stderr.lower()
        assert server.stop() == 0


@pytest.mark.parametrize(("args", "expected"), [
    (("serve", "no_such_module:factory"),
     "cannot import module 'no_such_module': No module named 'no_such_module'"),
    (("serve", "app:missing"), "module 'app' has no attribute 'missing'"),
    (("serve", "app"), "'app': expected module:attribute, e.g. myapp:factory"),
    (("serve", "app:number"), "app:number is int, not a factory (a callable taking a Sender, "
                              "a Handler subclass or a wskit.Factory)"),
    (("serve", "app:factory", "--tls-cert", "c.pem"), "--tls-cert and --tls-key go together"),
    (("serve", "app:factory", "--tls-cert", "nope.pem", "--tls-key", "nope.pem"),
     "cannot load the TLS certificate 'nope.pem' and key 'nope.pem': No such file or directory"),
    (("dev", "no_such_module:factory"),
     "cannot import module 'no_such_module': No module named 'no_such_module'"),
    (("dev", "app"), "'app': expected module:attribute, e.g. myapp:factory"),
    (("serve", "app:async_factory"),
     "the factory async_factory is an 'async def': a factory must return the handler at once. "
     "Keep the factory a plain 'def' and make the hooks async instead "
     "(async def on_message(self, msg): ...)"),
])
def test_usage_errors_exit_2_with_one_line(tmp_path: Path, args: tuple[str, ...],
                                           expected: str) -> None:
    (tmp_path / "app.py").write_text("factory = lambda out: out.send\nnumber = 42\n"
                                     "async def async_factory(out):\n    return out.send\n")
    result = run(*args, "--port", str(free_port()), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert one_error_line(result) == f"wskit: error: {expected}"
    assert result.stdout == ""


@pytest.mark.parametrize("command", [("echo",), ("serve", "app:factory"), ("dev", "app:factory")])
def test_port_in_use_exits_2(tmp_path: Path, command: tuple[str, ...]) -> None:
    (tmp_path / "app.py").write_text("factory = lambda out: out.send\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run(*command, "--port", port, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert one_error_line(result) == (
        f"wskit: error: cannot listen on 127.0.0.1:{port}: Address already in use")


def test_a_module_that_raises_shows_its_traceback(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import json\nraise ValueError('bad config')\n")
    result = run("serve", "broken:factory", "--port", str(free_port()), cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ValueError: bad config" in result.stderr
    assert result.stderr.strip().endswith(
        "wskit: error: importing broken:factory raised (see above)")
    # An import *inside* the module that fails is not "no such module".
    (tmp_path / "needs.py").write_text("import not_installed_anywhere\n")
    result = run("serve", "needs:factory", "--port", str(free_port()), cwd=tmp_path)
    assert result.returncode == 1 and "not_installed_anywhere" in result.stderr


# ----------------------------------------------------------------------
# dev


_MODULE = """\
import wskit

VERSION = {version!r}


def factory(out):
    return lambda msg: out.send(f"{{VERSION}}: {{msg}}")
"""


def test_dev_restarts_on_change_and_keeps_the_port(tmp_path: Path) -> None:
    module = tmp_path / "live.py"
    module.write_text(_MODULE.format(version="v1"))
    with run_server("dev", "live:factory", "--poll-interval", "0.1", "--stop-timeout", "5",
                    cwd=tmp_path) as server:
        with ws_connect(server.url) as old:
            old.send("hi")
            assert old.recv(timeout=TIMEOUT) == "v1: hi"

            module.write_text(_MODULE.format(version="v2"))
            # Same size as before: make the change visible to any mtime granularity.
            stat = module.stat()
            os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))

            # The restart closes the old connection with 1001 (going away).
            with pytest.raises(ConnectionClosedOK):
                old.recv(timeout=TIMEOUT)
            assert old.close_code == 1001

        def answers(version: str) -> Callable[[], bool]:
            def check() -> bool:
                try:
                    with ws_connect(server.url) as client:
                        client.send("hi")
                        return client.recv(timeout=TIMEOUT) == f"{version}: hi"
                except (OSError, WebSocketException):  # between two servers
                    return False
            return check

        wait_for(answers("v2"), "the restarted server to answer v2")
        assert "live.py changed; restarting" in server.errors.until(lambda line: "changed" in line)

        # A broken edit: the server exits, dev waits for the next change.
        module.write_text("this is not python\n")
        server.errors.until(lambda line: "waiting for a change" in line)
        module.write_text(_MODULE.format(version="v3"))

        wait_for(answers("v3"), "the fixed module to be served")
        assert server.stop() == 0


def test_dev_stops_on_a_missing_attribute(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("factory = lambda out: out.send\n")
    result = run("dev", "app:nope", "--port", str(free_port()), "--poll-interval", "0.1",
                 cwd=tmp_path)
    assert result.returncode == 2
    assert "wskit: error: module 'app' has no attribute 'nope'" in result.stderr


def test_dev_watches_the_folder_of_a_single_file_app(tmp_path: Path) -> None:
    # Issue 11, item 8: editing a helper imported from next to a single-file
    # app restarts it too; a virtual environment in that folder is not watched.
    (tmp_path / "app.py").write_text(
        "import helpers\n\n"
        "def factory(out):\n"
        "    return lambda msg: out.send(helpers.greet(msg))\n")
    helpers = tmp_path / "helpers.py"
    helpers.write_text("def greet(name):\n    return f'hello {name}'\n")
    venv = tmp_path / "venv" / "lib"
    venv.mkdir(parents=True)
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "dependency.py").write_text("X = 1\n")
    with run_server("dev", "app:factory", "--poll-interval", "0.1", "--stop-timeout", "5",
                    cwd=tmp_path) as server:
        banner = server.errors.until(lambda line: "watching" in line)
        assert f"watching 2 files under {tmp_path}" in banner
        with ws_connect(server.url) as client:
            client.send("you")
            assert client.recv(timeout=TIMEOUT) == "hello you"

        helpers.write_text("def greet(name):\n    return f'welcome back, {name}'\n")
        stat = helpers.stat()
        os.utime(helpers, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))

        def answers_anew() -> bool:
            try:
                with ws_connect(server.url) as client:
                    client.send("you")
                    return client.recv(timeout=TIMEOUT) == "welcome back, you"
            except (OSError, WebSocketException):  # between two servers
                return False

        wait_for(answers_anew, "the server restarted with the new helpers.py")
        changed = server.errors.until(lambda line: "changed" in line)
        assert "helpers.py changed; restarting" in changed
        assert server.stop() == 0
