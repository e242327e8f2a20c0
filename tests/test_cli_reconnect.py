"""``wskit client --reconnect``: a real ``wskit echo`` process stopped and
started again under a real ``wskit client`` process.

Every wait is bounded; every process is killed if a test fails.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from _cli_helpers import WSKIT, Lines, run, run_server
from _procs import START_TIMEOUT, TIMEOUT, free_port


def _client(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*WSKIT, "client", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.slow
def test_client_reconnects_and_sends_what_was_typed_meanwhile() -> None:
    port = free_port()
    with run_server("echo", port=port) as server:
        proc = _client(server.url, "--reconnect", "--reconnect-max-delay", "0.5")
        assert proc.stdin and proc.stdout and proc.stderr
        out, err = Lines(proc.stdout), Lines(proc.stderr)
        try:
            proc.stdin.write("one\n")
            proc.stdin.flush()
            assert out.next() == "one"
            assert server.stop() == 0  # 1001 to the client: it reconnects
            line = err.until(lambda line: "reconnecting" in line)
            assert line.startswith("wskit: reconnecting in ") and "(attempt 1)" in line
            assert "1001" in line
            proc.stdin.write("two\n")  # nobody to send it to: held
            proc.stdin.flush()
            with run_server("echo", port=port) as again:
                assert out.next(START_TIMEOUT) == "two"
                assert err.until(lambda line: "reconnected" in line) == (
                    f"wskit: reconnected to {server.url}")
                proc.stdin.close()  # end of input: close normally, exit 0
                assert proc.wait(timeout=TIMEOUT) == 0
                assert again.stop() == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for pipe in (proc.stdout, proc.stderr):
                pipe.close()


def test_client_reconnect_gives_up_after_n_attempts() -> None:
    url = f"ws://127.0.0.1:{free_port()}"
    result = run("client", url, "--reconnect-attempts", "2", "--reconnect-max-delay", "0.05",
                 stdin="never sent\n")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert [line.split(": ")[0] for line in lines] == ["wskit"] * 3, lines
    assert "(attempt 1)" in lines[0] and "(attempt 2)" in lines[1]
    assert lines[2].startswith(f"wskit: {url}: ") and "refused" in lines[2]


def test_client_reconnect_usage_errors() -> None:
    result = run("client", "ws://127.0.0.1:1", "--reconnect-attempts", "0")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith(
        "argument --reconnect-attempts: must be positive, got '0'")
