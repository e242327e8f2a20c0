"""Issue 11, item 7: start-up mistakes, made as a user makes them (a script
run in a subprocess, real sockets), each ending in one ``wskit.Error`` whose
message says what to do instead.

The in-process checks of the same errors are in ``test_usage_errors``,
``test_client`` and ``test_tls``; this file checks what the user *sees*:
the last line of the traceback, under the public name ``wskit.Error``, with
no exception group and no private module path in it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from _procs import TIMEOUT

ROOT = Path(__file__).resolve().parent.parent

_TLS_SERVER = """\
import ssl, threading, trio, trustme, wskit
ca = trustme.CA()
server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
bound, ready = [], threading.Event()

async def serve():
    async with wskit.WebSocket(lambda out: out.send) as ws:
        bound.append(await ws.listen("127.0.0.1:0", ssl_context=server_ctx))
        ready.set()

threading.Thread(target=trio.run, args=(serve,), daemon=True).start()
assert ready.wait(10)
host, port = bound[0]
"""

SCRIPTS = {
    "async_factory": ("""\
import wskit
async def factory(out):
    return out.send
wskit.listen("127.0.0.1:0", factory)
""", ["an 'async def'", "Keep the factory a plain 'def' and make the hooks async"]),
    "listen_inside_trio": ("""\
import trio, wskit
async def main():
    wskit.listen("127.0.0.1:0", lambda out: out.send)
trio.run(main)
""", ["cannot be called from async code",
      "async with wskit.WebSocket(factory) as ws: await ws.listen(addr)"]),
    "listen_given_a_url": ("""\
import wskit
wskit.listen("ws://127.0.0.1:0", lambda out: out.send)
""", ["listen() takes 'host:port'", "not a URL"]),
    "unreachable_server": ("""\
import socket, wskit
probe = socket.socket()
probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()  # nothing listens there now
wskit.connect(f"ws://127.0.0.1:{port}/", lambda out: out.send)
""", ["could not connect to 127.0.0.1:", "Connection refused"]),
    "ws_client_to_a_tls_server": (_TLS_SERVER + """\
wskit.connect(f"ws://{host}:{port}/", lambda out: out.send)
""", ["without answering the handshake", "connect with wss://"]),
    "certificate_not_trusted": (_TLS_SERVER + """\
wskit.connect(f"wss://{host}:{port}/", lambda out: out.send)
""", ["TLS handshake with 127.0.0.1:", "certificate verify failed",
      "pass ssl_context=", "--ca-file"]),
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_a_startup_mistake_ends_in_one_error_with_advice(name: str, tmp_path: Path) -> None:
    source, advice = SCRIPTS[name]
    script = tmp_path / f"{name}.py"
    script.write_text(source)
    result = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True,
                            text=True, timeout=TIMEOUT * 3)
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("wskit.Error: "), result.stderr
    for words in advice:
        assert words in last, result.stderr
    # One error, under its public name: no group to unwrap, no private path.
    assert "ExceptionGroup" not in result.stderr and "exceptions)" not in result.stderr
    assert "wskit._errors" not in result.stderr
    assert result.stderr.count("wskit.Error:") == 1, result.stderr
