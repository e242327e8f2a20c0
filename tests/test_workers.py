"""``wskit serve --workers N`` and ``wskit.listen(..., workers=N)``: a supervisor
and its worker processes on one port, driven as a user would.

Real processes, real sockets, ``websockets`` clients. The application in
``tmp_path`` answers every message with its worker's pid, so a test knows
which worker holds which client. Every wait is bounded (``_procs``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme
from _cli_helpers import Lines, Server, one_error_line, run, run_server
from _procs import START_TIMEOUT, STOP_TIMEOUT, TIMEOUT, free_port, wait_for, ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

import wskit
from wskit._supervisor import RestartPolicy, describe_exit
from wskit._target import target_of
from wskit._worker import REUSE_PORT, WorkerSeat, log_format, tag_records

APP = '''
import os
import pathlib

import wskit


class Echo(wskit.Handler):
    """Answers "<pid> <message>"; "broadcast" and "comms" try those instead."""

    def on_message(self, msg):
        text = str(msg)
        try:
            if text == "broadcast":
                self.out.broadcast("to everyone")
            elif text == "comms":
                self.out.comms.send(self.out.connection_id, "to myself")
        except wskit.Error as err:
            self.out.send(f"{err.kind.name}: {err}")
            return
        self.out.send(f"{os.getpid()} {text}")


class App(wskit.Factory):
    def connection_made(self, out):
        return Echo(out)

    def on_shutdown(self):
        pathlib.Path(f"shutdown-{os.getpid()}").write_text("done")


class Stuck(App):
    def on_shutdown(self):
        import time

        time.sleep(3600)  # never stops by itself


class Counter(wskit.RoomService):
    pass


rooms = wskit.Rooms(Counter)
'''


@pytest.fixture
def app(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "crashing.py").write_text('raise RuntimeError("this app cannot start")\n')
    (tmp_path / "hanging.py").write_text("import time\n\ntime.sleep(3600)\n")
    return tmp_path


READY = re.compile(r"worker (\d+)/(\d+) \(pid (\d+)\) ready")


def wait_ready(server: Server, count: int) -> dict[int, int]:
    """``{index: pid}`` once ``count`` workers reported ready (in the supervisor's log)."""
    pids: dict[int, int] = {}
    while len(pids) < count:
        line = server.errors.until(lambda text: READY.search(text) is not None, START_TIMEOUT)
        found = READY.search(line)
        assert found is not None
        pids[int(found[1])] = int(found[3])
    return pids


def pid_of(client: ClientConnection) -> int:
    client.send("which")
    answer = str(client.recv(timeout=TIMEOUT))
    pid, _, text = answer.partition(" ")
    assert text == "which", answer
    return int(pid)


def rest_of(lines: Lines) -> list[str]:
    """Every line seen, once the stream has ended (the process exited)."""
    while lines.next() is not None:
        pass
    return lines.seen


class Clients:
    """Open connections, by the pid of the worker that holds them."""

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self.options = options
        self.by_pid: dict[int, list[ClientConnection]] = {}
        self._stack = contextlib.ExitStack()

    def open_until(self, pids: set[int], each: int, attempts: int = 200) -> None:
        """Connect until every worker in ``pids`` holds ``each`` clients."""
        for _ in range(attempts):
            if all(len(self.by_pid.get(pid, ())) >= each for pid in pids):
                return
            self.open_one()
        counts = {pid: len(self.by_pid.get(pid, ())) for pid in pids}
        pytest.fail(f"after {attempts} connections the workers hold {counts}")

    def open_one(self) -> None:
        client = self._stack.enter_context(ws_connect(self.url, **self.options))
        self.by_pid.setdefault(pid_of(client), []).append(client)

    def close(self) -> None:
        self._stack.close()


OpenClients = Callable[[str], Clients]


@pytest.fixture
def clients() -> Iterator[OpenClients]:
    opened: list[Clients] = []

    def make(url: str) -> Clients:
        made = Clients(url)
        opened.append(made)
        return made

    yield make
    for made in opened:
        made.close()


def close_code(client: ClientConnection) -> int | None:
    """Read until the connection ends (at most TIMEOUT); its close code
    (``None``: no closing handshake)."""
    try:
        while True:
            client.recv(timeout=TIMEOUT)
    except ConnectionClosed:
        return client.close_code


def assert_dropped(client: ClientConnection) -> None:
    """The connection ends without a closing handshake (its process died)."""
    assert close_code(client) in (None, 1006)


# ----------------------------------------------------------------------
# One port, N processes


@pytest.mark.slow
def test_two_workers_serve_one_port(app: Path, clients: OpenClients) -> None:
    with run_server("serve", "app:App", "--workers", "2", cwd=app) as server:
        pids = wait_ready(server, 2)
        assert server.proc.pid not in pids.values()  # the supervisor serves nobody
        held = clients(server.url)
        held.open_until(set(pids.values()), each=2)  # both workers get connections
        for index, pid in pids.items():
            for client in held.by_pid[pid]:
                client.send("hello")
                assert client.recv(timeout=TIMEOUT) == f"{pid} hello"
            # Each worker's log lines carry its index and pid.
            tag = f"[worker {index}/2 pid {pid}] wskit: listening on"
            assert any(tag in line for line in server.errors.seen), server.errors.seen
        held.close()
        assert server.stop() == 0


@pytest.mark.slow
@pytest.mark.skipif(not REUSE_PORT, reason="SO_REUSEPORT spreads connections on Linux only")
def test_reuse_port_spreads_connections_evenly(app: Path) -> None:
    # The kernel hashes each connection to one worker's socket: out of 200,
    # fewer than 50 for one of 2 workers happens with probability ~1e-12 if
    # the hash is uniform. (With 40 and 10, ~1e-3: it failed once in CI.)
    with run_server("serve", "app:App", "--workers", "2", cwd=app) as server:
        pids = wait_ready(server, 2)
        seen: dict[int, int] = {}
        for _ in range(200):
            with ws_connect(server.url) as client:
                pid = pid_of(client)
            seen[pid] = seen.get(pid, 0) + 1
        counts = sorted(seen.get(pid, 0) for pid in pids.values())
        assert sum(counts) == 200, (seen, pids)
        assert counts[0] >= 50, counts
        assert server.stop() == 0


SHARED_SOCKET = '''
import logging
import sys

from wskit._supervisor import Supervisor, open_sockets

logging.basicConfig(level=logging.INFO)
port = int(sys.argv[sys.argv.index("--port") + 1])
sockets = open_sockets("127.0.0.1", port, reuse_port=False)
command = [sys.executable, "-m", "wskit", "serve", "app:App"]
sys.exit(Supervisor(command, 2, sockets).run())
'''


@pytest.mark.slow
def test_workers_can_share_one_listening_socket(app: Path, clients: OpenClients) -> None:
    # What the supervisor does where SO_REUSEPORT does not spread connections.
    (app / "shared.py").write_text(SHARED_SOCKET)
    with run_server("shared.py", cwd=app, command=[sys.executable]) as server:
        pids = wait_ready(server, 2)
        held = clients(server.url)
        held.open_until(set(pids.values()), each=2)
        os.kill(pids[1], signal.SIGKILL)  # the other worker keeps accepting
        for client in held.by_pid[pids[2]]:
            client.send("still here")
            assert client.recv(timeout=TIMEOUT) == f"{pids[2]} still here"
        with ws_connect(server.url) as client:
            assert pid_of(client) != pids[1]
        assert wait_ready(server, 1)[1] not in pids.values()  # replaced
        assert server.stop() == 0


@pytest.mark.slow
def test_kill_9_drops_only_that_workers_clients(app: Path, clients: OpenClients) -> None:
    with run_server("serve", "app:App", "--workers", "2", cwd=app) as server:
        pids = wait_ready(server, 2)
        held = clients(server.url)
        held.open_until(set(pids.values()), each=2)
        victim, survivor = pids[1], pids[2]
        os.kill(victim, signal.SIGKILL)
        for client in held.by_pid[victim]:
            assert_dropped(client)
        for client in held.by_pid[survivor]:  # the other worker's clients noticed nothing
            client.send("still here")
            assert client.recv(timeout=TIMEOUT) == f"{survivor} still here"
        server.errors.until(lambda line: f"worker 1/2 (pid {victim}) was killed by SIGKILL; "
                                         "starting a new one in" in line)
        replacement = wait_ready(server, 1)[1]
        assert replacement not in (victim, survivor)
        # The port kept serving, and the replacement takes its share.
        fresh = clients(server.url)
        fresh.open_until({replacement, survivor}, each=1)
        assert server.stop() == 0


@pytest.mark.slow
def test_sigterm_closes_every_client_with_1001(app: Path, clients: OpenClients) -> None:
    with run_server("serve", "app:App", "--workers", "2", cwd=app) as server:
        pids = wait_ready(server, 2)
        held = clients(server.url)
        held.open_until(set(pids.values()), each=2)
        server.proc.send_signal(signal.SIGTERM)
        for pid_clients in held.by_pid.values():
            for client in pid_clients:
                assert close_code(client) == 1001
        assert server.proc.wait(timeout=STOP_TIMEOUT) == 0
        for pid in pids.values():  # every worker ran its on_shutdown hook
            assert (app / f"shutdown-{pid}").read_text() == "done"
        output = "\n".join(rest_of(server.errors))
        for index, pid in pids.items():
            assert f"worker {index}/2 (pid {pid}) stopped: it exited with status 0" in output


@pytest.mark.slow
def test_workers_stop_when_the_supervisor_is_killed(app: Path) -> None:
    with run_server("serve", "app:App", "--workers", "2", cwd=app) as server:
        pids = wait_ready(server, 2)
        server.proc.kill()
        server.proc.wait()

        def gone() -> bool:
            return not any(Path(f"/proc/{pid}").exists()
                           and "zombie" not in _status(pid) for pid in pids.values())

        wait_for(gone, "the workers to exit after their supervisor died", STOP_TIMEOUT)
        for pid in pids.values():  # they shut down gracefully, not killed
            assert (app / f"shutdown-{pid}").exists()


def _status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return "zombie"


def test_workers_1_is_this_process(app: Path) -> None:
    with run_server("serve", "app:App", "--workers", "1", cwd=app) as server:
        with ws_connect(server.url) as client:
            assert pid_of(client) == server.proc.pid  # no supervisor, no child
        assert server.stop() == 0


@pytest.mark.slow
def test_options_reach_every_worker(app: Path, clients: OpenClients) -> None:
    # The supervisor re-runs the same command line: a setting applies in each worker.
    with run_server("serve", "app:App", "--workers", "2", "--max-message-size", "16",
                    cwd=app) as server:
        pids = wait_ready(server, 2)
        held = clients(server.url)
        held.open_until(set(pids.values()), each=1)
        for pid_clients in held.by_pid.values():
            client = pid_clients[0]
            client.send("x" * 17)
            with pytest.raises(ConnectionClosed):
                client.recv(timeout=TIMEOUT)
            assert client.close_code == 1009
        assert server.stop() == 0


@pytest.mark.slow
def test_workers_serve_tls(app: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(app / "server.pem"))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with run_server("serve", "app:App", "--workers", "2", "--tls-cert", str(app / "server.pem"),
                    "--tls-key", str(app / "server.pem"), cwd=app) as server:
        pids = wait_ready(server, 2)
        held = Clients(f"wss://127.0.0.1:{server.port}", ssl=context)
        try:
            held.open_until(set(pids.values()), each=1)
        finally:
            held.close()
        assert server.stop() == 0


# ----------------------------------------------------------------------
# What needs a backplane


def test_rooms_need_a_backplane_with_several_workers(app: Path) -> None:
    result = run("serve", "app:Counter", "--rooms", "--workers", "3", cwd=app)
    assert result.returncode == 2
    assert one_error_line(result) == (
        "wskit: error: rooms across 3 workers need a shared backplane: add --backplane "
        "redis://…, or use --workers 1")


@pytest.mark.slow
def test_a_rooms_factory_is_refused_by_the_first_worker(app: Path) -> None:
    result = run("serve", "app:rooms", "--workers", "2", "--port", str(free_port()),
                 cwd=app, timeout=START_TIMEOUT)
    assert result.returncode == 2, result.stderr
    assert ("wskit: error: rooms across 2 workers need a shared backplane: add --backplane "
            "redis://…, or use --workers 1") in result.stderr.splitlines()
    assert "worker 2/2" not in result.stderr  # the first worker alone found out


@pytest.mark.slow
def test_broadcast_and_comms_refuse_in_a_worker(app: Path) -> None:
    with run_server("serve", "app:App", "--workers", "2", cwd=app) as server:
        wait_ready(server, 2)
        with ws_connect(server.url) as client:
            client.send("broadcast")
            assert client.recv(timeout=TIMEOUT) == (
                "USAGE: broadcast across 2 workers needs a shared backplane: add --backplane "
                "redis://… (Settings(backplane=…) from Python), or use --workers 1 (without a "
                "backplane each worker reaches only its own clients)")
            client.send("comms")
            assert str(client.recv(timeout=TIMEOUT)).startswith(
                "USAGE: Comms.send across 2 workers needs a shared backplane")
            pid_of(client)  # the connection is fine
        assert server.stop() == 0


# ----------------------------------------------------------------------
# Start-up failures


@pytest.mark.slow
def test_a_crash_loop_ends_with_an_error(app: Path) -> None:
    policy = RestartPolicy()
    bound = sum(policy.delay(n) for n in range(1, policy.max_start_failures)) + 60
    result = run("serve", "crashing:App", "--workers", "2", "--port", str(free_port()),
                 cwd=app, timeout=bound)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("RuntimeError: this app cannot start") == 5
    assert re.search(r"worker 1/2 \(pid \d+\) exited with status 1 before it was ready, "
                     r"5 times in a row: giving up", result.stderr), result.stderr
    assert "worker 2/2" not in result.stderr  # never started: the first never got ready


HANGING = '''
import logging
import sys

from wskit._supervisor import RestartPolicy, Supervisor, open_sockets

logging.basicConfig(level=logging.INFO)
policy = RestartPolicy(start_timeout=1, max_start_failures=2, first_delay=0.1)
command = [sys.executable, "-m", "wskit", "serve", "hanging:App"]
sys.exit(Supervisor(command, 2, open_sockets("127.0.0.1", 0), policy=policy).run())
'''


@pytest.mark.slow
def test_a_worker_that_never_gets_ready_is_killed(app: Path) -> None:
    (app / "hang.py").write_text(HANGING)
    result = subprocess.run([sys.executable, "hang.py"], cwd=app, capture_output=True,
                            text=True, timeout=START_TIMEOUT * 2)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("was not ready after 1s: killing it") == 2, result.stderr
    assert "was killed by SIGKILL before it was ready, 2 times in a row: giving up" in \
        result.stderr


@pytest.mark.slow
def test_a_worker_that_does_not_stop_is_killed(app: Path) -> None:
    # --close-timeout 1: the supervisor waits 2 * 1 + 10 s, then kills.
    with run_server("serve", "app:Stuck", "--workers", "2", "--close-timeout", "1",
                    cwd=app) as server:
        wait_ready(server, 2)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=STOP_TIMEOUT + 5) == 1
        output = "\n".join(rest_of(server.errors))
        assert output.count("did not stop within 12.0s: killing it") == 2, output


def test_port_in_use_is_one_error(app: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "app:App", "--workers", "2", "--port", str(port), cwd=app)
    assert result.returncode == 2
    assert one_error_line(result).startswith(f"wskit: error: cannot listen on 127.0.0.1:{port}")


def test_worker_option_is_not_for_users(app: Path) -> None:
    result = run("serve", "app:App", "--worker", "4", cwd=app)
    assert result.returncode == 2
    assert "for the supervisor's own use (run 'wskit serve --workers N' instead)" in \
        one_error_line(result)


# ----------------------------------------------------------------------
# From Python


SCRIPT = '''
import logging
import sys

import wskit

logging.basicConfig(level=logging.INFO)
wskit.listen(("127.0.0.1", int(sys.argv[1])), "app:App", workers=2)
print("returned", flush=True)
'''


@pytest.mark.slow
def test_listen_with_workers_from_python(app: Path, clients: OpenClients) -> None:
    (app / "main.py").write_text(SCRIPT)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "main.py", str(port)], cwd=app, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stderr is not None and proc.stdout is not None
    try:
        server = Server(proc, port, Lines(proc.stderr))
        pids = wait_ready(server, 2)
        held = clients(server.url)
        held.open_until(set(pids.values()), each=1)
        assert server.stop() == 0
        assert proc.stdout.read() == "returned\n"
        for pid_clients in held.by_pid.values():
            assert close_code(pid_clients[0]) == 1001
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_listen_workers_needs_an_importable_factory() -> None:
    with pytest.raises(wskit.Error) as caught:
        wskit.listen("127.0.0.1:0", lambda out: out.send, workers=2)
    assert caught.value.kind is wskit.ErrorKind.USAGE
    assert "pass the factory as 'module:attr'" in str(caught.value)


def test_listen_workers_refuses_an_ssl_context() -> None:
    import ssl

    with pytest.raises(wskit.Error) as caught:
        wskit.listen("127.0.0.1:0", "app:App", workers=2,
                     ssl_context=ssl.create_default_context(ssl.Purpose.CLIENT_AUTH))
    assert caught.value.kind is wskit.ErrorKind.USAGE
    assert "--tls-cert" in str(caught.value)


@pytest.mark.parametrize("workers", [0, -1, True, 1.5])
def test_listen_workers_must_be_a_positive_int(workers: object) -> None:
    with pytest.raises(wskit.Error) as caught:
        wskit.listen("127.0.0.1:0", "app:App", workers=workers)  # type: ignore[arg-type]
    assert caught.value.kind is wskit.ErrorKind.USAGE


def echo(out: wskit.Sender) -> Callable[[wskit.Message], None]:
    return out.send


def test_target_of() -> None:
    assert target_of("app:App") == "app:App"
    assert target_of(wskit.Handler) == "wskit:Handler"
    assert target_of(echo) == f"{__name__}:echo"
    for bad in ("app", ":App", "app:"):
        with pytest.raises(wskit.Error, match="expected module:attribute"):
            target_of(bad)


# ----------------------------------------------------------------------
# The pieces


def test_restart_delays_double_up_to_a_bound() -> None:
    policy = RestartPolicy(first_delay=0.5, max_delay=4.0)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_describe_exit() -> None:
    assert describe_exit(3) == "exited with status 3"
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"


def test_log_records_name_their_worker() -> None:
    make = logging.getLogRecordFactory()
    try:
        tag_records(WorkerSeat(2, 4, 7, (5,)))
        record = logging.getLogger("wskit").makeRecord("wskit", logging.INFO, "f", 1, "m",
                                                        (), None)
        assert (vars(record)["worker"], vars(record)["pid"]) == ("2/4", os.getpid())
        assert logging.Formatter(log_format(WorkerSeat(2, 4, 7, (5,)))).format(record) \
            .endswith(f"[worker 2/4 pid {os.getpid()}] wskit: m")
    finally:
        logging.setLogRecordFactory(make)


def test_seat_round_trip() -> None:
    seat = WorkerSeat(2, 4, 7, (5, 6))
    assert WorkerSeat.parse(str(seat)) == seat
    assert seat.name == "worker 2/4"
    for bad in ("4", "5/4:7:5", "1/2:x:5", "0/2:7:5"):
        with pytest.raises(wskit.Error, match="supervisor's own use"):
            WorkerSeat.parse(bad)


async def test_listen_on_a_listening_socket(ws_connect) -> None:  # type: ignore[no-untyped-def]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    async with wskit.WebSocket(lambda out: out.send) as ws:
        host, port = await ws.listen(sock)
        assert (host, port) == sock.getsockname()
        with trio.fail_after(TIMEOUT):
            async with ws_connect(f"ws://{host}:{port}") as client:
                await client.send("hi")
                assert await client.recv() == "hi"
        ws.shutdown()


async def test_listen_on_a_socket_that_does_not_listen() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        async with wskit.WebSocket(lambda out: out.send) as ws:
            with pytest.raises(wskit.Error) as caught:
                await ws.listen(sock)
            ws.shutdown()
    assert caught.value.kind is wskit.ErrorKind.USAGE
    assert "listen() was called" in str(caught.value)


def test_help_mentions_workers() -> None:
    result = run("serve", "--help")
    assert "--workers N" in result.stdout and "--backplane URL" in result.stdout
    assert "--worker SEAT" not in result.stdout
