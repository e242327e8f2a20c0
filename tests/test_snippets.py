"""Every ```python block of README.md and docs/**/*.md runs as written.

Each block is written to a file of its own and run with this interpreter
in a subprocess (cwd = the repository root, 60 s at most). How it is run is
said by an HTML comment on the line right before its opening fence (the
rendered page does not show it):

- no comment: the block is a whole program that must exit 0 by itself.
- ``<!-- run: server PORT [PATH] -->``: the block is a blocking server on
  127.0.0.1:PORT. The runner waits for the port, opens a WebSocket to
  ``ws://127.0.0.1:PORT/PATH`` with the ``websockets`` library, sends
  ``"hello"`` and waits for an answer: a message, a close frame or an HTTP
  status refusing the handshake. Then it sends SIGINT and expects exit 0.
- ``<!-- run: client -->``: the runner first starts a wskit echo server
  (``wskit echo``) on 127.0.0.1:3012; the block must exit 0 by itself.
- ``redis PORT`` may be added to either (``<!-- run: server 3012 redis
  6379 -->``, ``<!-- run: redis 6379 -->``): a throwaway ``redis-server
  --save ''`` is started on that port first, and stopped after.

The ports a reader sees (3012, 6379) are machine-wide and this machine is
shared, so the runner picks free ports and replaces the marker's port
numbers in the block's text before running it.

A marker that is not one of these, a marker not followed by a block, and a
Python block fenced as ```py / ```python3 (which would silently escape this
test) all fail.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import trio
import websockets.exceptions
import websockets.trio.client

ROOT = pathlib.Path(__file__).resolve().parent.parent
TIMEOUT_S = 60.0
#: README.md and docs/ hold at least this many Python blocks: a broken
#: extractor that finds none (or a few) must not pass.
MIN_BLOCKS = 25

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)[ \t]*(?P<info>[^\s`]*)[^`\n]*$")
_MARKER = re.compile(r"^\s*<!--\s*run:(?P<spec>.*?)-->\s*$")
_EVASIVE = {"py", "py3", "python3", "Python", "PYTHON"}


@dataclasses.dataclass(frozen=True)
class Run:
    """How one block is run, parsed from its marker."""

    server_port: int | None = None
    server_path: str = "/"
    client: bool = False
    redis_port: int | None = None

    @classmethod
    def parse(cls, spec: str | None) -> Run:
        if spec is None:
            return cls()
        words = spec.split()
        if not words:
            raise ValueError("empty marker: say server PORT, client or redis PORT")
        server_port: int | None = None
        server_path = "/"
        client = False
        redis_port: int | None = None
        i = 0
        while i < len(words):
            word = words[i]
            if (
                word == "server"
                and server_port is None
                and i + 1 < len(words)
                and words[i + 1].isdigit()
            ):
                server_port = int(words[i + 1])
                i += 2
                if i < len(words) and words[i].startswith("/"):
                    server_path = words[i]
                    i += 1
            elif word == "client" and not client:
                client = True
                i += 1
            elif (
                word == "redis"
                and redis_port is None
                and i + 1 < len(words)
                and words[i + 1].isdigit()
            ):
                redis_port = int(words[i + 1])
                i += 2
            else:
                raise ValueError(f"unknown marker {spec.strip()!r} (at {word!r})")
        if server_port is not None and client:
            raise ValueError("a block is a server or a client, not both")
        return cls(server_port, server_path, client, redis_port)


@dataclasses.dataclass(frozen=True)
class Block:
    source: str  # "docs/foo.md:12" (the line of the opening fence)
    code: str
    marker: str | None  # the text after "run:", None without a marker


def _blocks_of(path: pathlib.Path) -> Iterator[Block]:
    yield from _blocks_in(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix())


def _blocks_in(text: str, rel: str) -> Iterator[Block]:
    lines = text.splitlines()
    pending: tuple[int, str] | None = None  # a marker waiting for its block
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = _MARKER.match(line)
        if marker:
            if pending is not None:
                raise AssertionError(
                    f"{rel}:{pending[0] + 1}: marker not followed by a ```python block"
                )
            pending = (i, marker.group("spec"))
            i += 1
            continue
        fence = _FENCE.match(line)
        if fence is None:
            if pending is not None:
                raise AssertionError(
                    f"{rel}:{pending[0] + 1}: marker not right before a ```python block"
                )
            i += 1
            continue
        indent, mark, info = fence.group("indent", "fence", "info")
        if info in _EVASIVE:
            raise AssertionError(f"{rel}:{i + 1}: fence this block as ```python so that it is run")
        end = i + 1
        closing = re.compile(rf"^{re.escape(indent)}{re.escape(mark[0])}{{{len(mark)},}}\s*$")
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        if end == len(lines):
            raise AssertionError(f"{rel}:{i + 1}: unclosed code fence")
        if info == "python":
            body = [
                ln[len(indent) :] if ln.startswith(indent) else ln.lstrip()
                for ln in lines[i + 1 : end]
            ]
            spec = pending[1] if pending is not None and pending[0] == i - 1 else None
            yield Block(f"{rel}:{i + 1}", "\n".join(body) + "\n", spec)
        elif pending is not None:
            raise AssertionError(
                f"{rel}:{pending[0] + 1}: marker before a ```{info} block, not ```python"
            )
        pending = None
        i = end + 1
    if pending is not None:
        raise AssertionError(f"{rel}:{pending[0] + 1}: marker at the end of the file")


def _markdown_files() -> list[pathlib.Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _all_blocks() -> tuple[list[Block], list[str]]:
    """Every block, and the pages whose markers or fences are malformed.

    A malformed page fails ``test_every_page_is_well_formed`` (by name)
    instead of breaking the collection of every other block.
    """
    blocks: list[Block] = []
    problems: list[str] = []
    for path in _markdown_files():
        try:
            blocks += list(_blocks_of(path))
        except AssertionError as exc:
            problems.append(str(exc))
    return blocks, problems


BLOCKS, PROBLEMS = _all_blocks()


def test_every_page_is_well_formed() -> None:
    assert not PROBLEMS


def test_the_docs_have_blocks_to_run() -> None:
    assert len(BLOCKS) >= MIN_BLOCKS, [b.source for b in BLOCKS]
    markers = {Run.parse(b.marker).server_port is not None for b in BLOCKS}
    assert markers == {True, False}, "both servers and self-contained programs are exercised"
    assert any(Run.parse(b.marker).client for b in BLOCKS), "client blocks are exercised"


# ----------------------------------------------------------------------
# The runner's own parsing, checked on made-up pages


def _parse(text: str) -> list[Block]:
    return list(_blocks_in(text, "page.md"))


def test_markers_parse() -> None:
    assert Run.parse(None) == Run()
    assert Run.parse(" server 3012 ") == Run(server_port=3012)
    assert Run.parse(" server 3012 /ws/lobby redis 6379 ") == Run(3012, "/ws/lobby", False, 6379)
    assert Run.parse(" client ") == Run(client=True)
    assert Run.parse(" redis 6380 ") == Run(redis_port=6380)
    for bad in (
        " ",
        " serve 3012 ",
        " server ",
        " server x ",
        " client server 3012 ",
        " client client ",
        " shell ",
    ):
        with pytest.raises(ValueError, match=r"marker|not both"):
            Run.parse(bad)


def test_extraction() -> None:
    blocks = _parse(
        "text\n\n<!-- run: server 3012 -->\n```python\nprint(1)\n```\n\n```sh\nls\n```\n\n"
        "- item\n\n    ```python\n    if True:\n        print(2)\n    ```\n",
    )
    assert [(b.code, b.marker) for b in blocks] == [
        ("print(1)\n", " server 3012 "),
        ("if True:\n    print(2)\n", None),
    ]
    assert blocks[0].source.endswith(":4")


@pytest.mark.parametrize(
    "text",
    [
        "<!-- run: client -->\n\n```python\npass\n```\n",  # not right before
        "<!-- run: client -->\n```sh\nls\n```\n",  # before a shell block
        "```py\npass\n```\n",  # would escape the runner
        "```python\npass\n",  # unclosed
        "<!-- run: client -->\n",  # dangling
    ],
)
def test_extraction_refuses(text: str) -> None:
    with pytest.raises(AssertionError):
        _parse(text)


# ----------------------------------------------------------------------
# Running the blocks


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, deadline: float) -> None:
    while True:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(
                f"{what} exited with {proc.returncode} before listening:\n"
                f"{out.decode()}\n{err.decode()}"
            )
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.5),
        ):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not listen on {port}")
        time.sleep(0.05)


@contextlib.contextmanager
def _background(cmd: list[str], port: int, what: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_port(port, proc, what, time.monotonic() + 15)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.communicate()


async def _round_trip(url: str) -> tuple[bool, str]:
    """One websockets round trip: (whether the server answered, what happened).

    An answer is a message, a close frame, or an HTTP status refusing the
    handshake; a dropped connection, a broken handshake or silence is not.
    """
    try:
        with trio.fail_after(15):
            try:
                async with websockets.trio.client.connect(url, proxy=None) as ws:
                    await ws.send("hello")
                    try:
                        reply = await ws.recv()
                    except websockets.exceptions.ConnectionClosed as closed:
                        if closed.rcvd is None:
                            return False, "the connection dropped without a close frame"
                        return True, f"close {closed.rcvd.code}"
                    return True, f"message {reply!r:.60}"
            except websockets.exceptions.InvalidStatus as refused:
                return True, f"HTTP {refused.response.status_code}"
    except (trio.TooSlowError, OSError, websockets.exceptions.WebSocketException) as exc:
        return False, f"no answer: {exc!r}"


def _substitute(code: str, old: int, new: int) -> str:
    return re.sub(rf"(?<![\d.]){old}(?!\d)", str(new), code)


def _report(
    block: Block,
    proc: subprocess.CompletedProcess[bytes] | subprocess.Popen[bytes],
    out: bytes,
    err: bytes,
) -> str:
    return (
        f"{block.source} exited with {proc.returncode}\n"
        f"--- stdout\n{out.decode()}\n--- stderr\n{err.decode()}"
    )


def _run(block: Block, tmp_path: pathlib.Path) -> None:
    """Run one block as its marker says; fails the calling test if it fails."""
    run = Run.parse(block.marker)
    code = block.code
    with contextlib.ExitStack() as stack:
        if run.redis_port is not None:
            server = shutil.which("redis-server")
            assert server is not None, "redis-server is needed (bash .ci/apt installs it)"
            port = _free_port()
            code = _substitute(code, run.redis_port, port)
            redis = [
                server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ]
            stack.enter_context(_background(redis, port, "redis-server"))
        if run.client:
            port = _free_port()
            code = _substitute(code, 3012, port)
            echo = [
                sys.executable,
                "-m",
                "wskit",
                "echo",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ]
            stack.enter_context(_background(echo, port, "wskit echo"))
        server_port = None
        if run.server_port is not None:
            server_port = _free_port()
            code = _substitute(code, run.server_port, server_port)
        script = tmp_path / (re.sub(r"\W", "_", block.source) + ".py")
        script.write_text(code, encoding="utf-8")
        cmd = [sys.executable, str(script)]
        if server_port is None:
            try:
                done = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired as expired:
                pytest.fail(f"{block.source} still running after {TIMEOUT_S} s\n{expired.stderr!r}")
            assert done.returncode == 0, _report(block, done, done.stdout, done.stderr)
            return
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            _wait_for_port(server_port, proc, block.source, time.monotonic() + TIMEOUT_S / 2)
            url = f"ws://127.0.0.1:{server_port}{run.server_path}"
            answered, answer = trio.run(_round_trip, url)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=TIMEOUT_S / 2)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        report = _report(block, proc, out, err) + f"\n(the round trip to {url}: {answer})"
        assert answered, report
        assert proc.returncode == 0, report


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[b.source for b in BLOCKS])
def test_block_runs(block: Block, tmp_path: pathlib.Path) -> None:
    _run(block, tmp_path)


_FAILING = {
    "exit status 3": (None, "raise SystemExit(3)\n"),
    "client exits 1": (" client ", "import sys\nsys.exit(1)\n"),
    "server never listens": (" server 3012 ", "import time\ntime.sleep(0.2)\n"),
    "server hangs up without answering": (
        " server 3012 ",
        """\
import socket
srv = socket.create_server(("127.0.0.1", 3012))
while True:
    conn, _ = srv.accept()
    conn.close()
""",
    ),
    "server fails on SIGINT": (
        " server 3012 ",
        """\
import wskit
wskit.listen("127.0.0.1:3012", lambda out: out.send)
raise SystemExit(1)
""",
    ),
}


_PASSING = {
    # The runner's redis really is a redis on the port the block names.
    "redis": (" redis 6379 ", """\
import socket
with socket.create_connection(("127.0.0.1", 6379)) as s:
    s.sendall(b"PING\\r\\n")
    assert s.recv(64) == b"+PONG\\r\\n"
"""),
    # A server next to a redis: both ports are substituted.
    "server and redis": (" server 3012 /x redis 6379 ", """\
import os
import socket
import wskit
with socket.create_connection(("127.0.0.1", 6379)) as s:
    s.sendall(b"PING\\r\\n")
    assert s.recv(64) == b"+PONG\\r\\n"
class Check(wskit.Handler):
    def on_open(self, handshake):
        if handshake.request.path != "/x":
            os._exit(1)        # no answer at all: the round trip fails
        self.out.send("ok")
wskit.listen("127.0.0.1:3012", Check)
"""),
}


@pytest.mark.parametrize("case", sorted(_PASSING))
def test_the_runner_provides_what_markers_promise(case: str, tmp_path: pathlib.Path) -> None:
    marker, code = _PASSING[case]
    _run(Block(f"selftest:{case}", code, marker), tmp_path)


@pytest.mark.parametrize("case", sorted(_FAILING))
def test_the_runner_fails_broken_blocks(case: str, tmp_path: pathlib.Path) -> None:
    marker, code = _FAILING[case]
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        _run(Block(f"selftest:{case}", code, marker), tmp_path)
