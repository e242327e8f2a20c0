"""The Redis backplane across real processes: several ``wskit serve`` nodes
(stand-ins for hosts) on different ports share one real ``redis-server``
started by the test; clients are the ``websockets`` library.

Send by id from one node to a client of another, broadcasts received
exactly once on three nodes, ``comms.ids`` cluster-wide, late errors for ids
that no longer exist, Redis unreachable at start, and Redis stopped and
restarted while serving.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli_helpers import Server, run, run_server
from _procs import TIMEOUT, drain, free_port, wait_for, ws_connect
from _redis import RedisServer, redis_server
from websockets.sync.client import ClientConnection

APP = "tests.cluster_node:Node"
#: A short lease: nodes notice each other (and deaths) within a second.
LEASE = "1"
#: The supervisor's line for a worker that serves.
READY = re.compile(r"worker \d+/\d+ \(pid \d+\) ready")


_clients: list[contextlib.ExitStack] = []


@contextlib.contextmanager
def nodes(redis: RedisServer, count: int) -> Iterator[list[Server]]:
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(run_server("serve", APP, "--backplane", redis.url,
                                                  "--backplane-lease", LEASE))
                   for _ in range(count)]
        _clients.append(stack)
        try:
            yield servers
        finally:
            _clients.remove(stack)


def client(node: Server) -> tuple[ClientConnection, int]:
    """A websockets client of ``node`` (closed with the nodes) and its id."""
    ws = _clients[-1].enter_context(ws_connect(node.url))
    ws.send("id")
    answer = ws.recv(timeout=TIMEOUT)
    assert isinstance(answer, str) and answer.startswith("id:")
    return ws, int(answer[3:])


def ask(ws: ClientConnection, command: str, prefix: str) -> str:
    ws.send(command)
    while True:
        answer = ws.recv(timeout=TIMEOUT)
        assert isinstance(answer, str)
        if answer.startswith(prefix):
            return answer[len(prefix):]



def test_send_by_id_across_nodes(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis, nodes(redis, 2) as (a, b):
        alice, alice_id = client(a)
        bob, bob_id = client(b)
        assert alice_id >> 32 != bob_id >> 32  # ids carry their node
        alice.send(f"to {bob_id} hello bob")
        assert bob.recv(timeout=TIMEOUT) == "hello bob"
        bob.send(f"to {alice_id} hello alice")
        assert alice.recv(timeout=TIMEOUT) == "hello alice"
        # Per-sender order across nodes.
        for i in range(200):
            alice.send(f"to {bob_id} {i}")
        assert [bob.recv(timeout=TIMEOUT) for _ in range(200)] == [str(i) for i in range(200)]
        alice.close()
        bob.close()


def test_send_to_a_gone_id_is_reported_late(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis, nodes(redis, 2) as (a, b):
        alice, _ = client(a)
        bob, bob_id = client(b)
        bob.close()
        wait_for(lambda: bob_id not in json.loads(ask(alice, "ids", "ids:")),
                 "bob's id to leave comms.ids")
        alice.send(f"to {bob_id} anyone?")  # bob's node answers: not here
        assert alice.recv(timeout=TIMEOUT) == f"late:QUEUE:{bob_id}"
        dead_node_id = (2**20) << 32 | 1  # no node has that number
        alice.send(f"to {dead_node_id} anyone?")
        assert alice.recv(timeout=TIMEOUT) == f"late:QUEUE:{dead_node_id}"
        local_gone = ((int(ask(alice, "id", "id:")) >> 32) << 32) + 10**6
        alice.send(f"to {local_gone} x")  # this node's id: raises at once, as before
        assert alice.recv(timeout=TIMEOUT) == f"error:QUEUE:{local_gone}"
        alice.close()


def test_broadcast_exactly_once_on_three_nodes(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis, nodes(redis, 3) as servers:
        clients = [client(node)[0] for node in servers for _ in range(3)]
        ids = wait_for(lambda: len(json.loads(ask(clients[0], "ids", "ids:"))) == 9 or None,
                       "9 clients in comms.ids")
        assert ids
        for i, ws in enumerate(clients[::3]):  # one sender per node
            ws.send(f"all from {i}")
        for ws in clients:
            got = drain(ws)
            assert sorted(got) == ["from 0", "from 1", "from 2"], got
        for ws in clients:
            ws.close()


def test_ids_are_cluster_wide(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis, nodes(redis, 2) as (a, b):
        alice, alice_id = client(a)
        bob, bob_id = client(b)
        seen = wait_for(lambda: {alice_id, bob_id} <= set(json.loads(ask(bob, "ids", "ids:"))),
                        "both ids on node b")
        assert seen
        alice.close()
        wait_for(lambda: alice_id not in json.loads(ask(bob, "ids", "ids:")),
                 "alice's id gone from node b")
        bob.close()


def test_redis_unreachable_at_start_is_a_clear_error() -> None:
    port = free_port()
    result = run("serve", APP, "--backplane", f"redis://:secret@127.0.0.1:{port}/0",
                 "--port", str(free_port()))
    assert result.returncode == 1, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("wskit: error: cannot reach the backplane at redis://:***@127.0.0.1")
    assert "secret" not in result.stderr


def test_bad_backplane_url_is_a_usage_error() -> None:
    result = run("serve", APP, "--backplane", "http://127.0.0.1:1/0")
    assert result.returncode == 2
    assert "redis://" in result.stderr


@pytest.mark.slow
def test_redis_restart_while_serving(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis, nodes(redis, 2) as (a, b):
        alice, alice_id = client(a)
        bob, bob_id = client(b)
        carol, carol_id = client(a)
        alice.send(f"to {bob_id} before")
        assert bob.recv(timeout=TIMEOUT) == "before"
        redis.stop()
        wait_for(lambda: ask(alice, "health", "health:") == "degraded", "node a degraded")
        # Local traffic flows; a cross-node send fails visibly, at once.
        alice.send(f"to {carol_id} local still works")
        assert carol.recv(timeout=TIMEOUT) == "local still works"
        alice.send(f"to {bob_id} lost")
        assert alice.recv(timeout=TIMEOUT) == f"error:BACKPLANE:{bob_id}"
        alice.send("room lobby * lost too")  # a room of another node, if any: the same
        assert alice.recv(timeout=TIMEOUT) == "error:BACKPLANE:None"
        alice.send("all local only")
        assert carol.recv(timeout=TIMEOUT) == "local only"
        redis.start()
        wait_for(lambda: ask(alice, "health", "health:") == "ok"
                 and ask(bob, "health", "health:") == "ok", "both nodes healthy again",
                 timeout=20)
        time.sleep(0.3)
        alice.send(f"to {bob_id} after")
        bob.send(f"to {alice_id} back")
        assert drain(bob) == ["after"]  # "lost" and the broadcast never arrive
        assert "back" in drain(alice)
        wait_for(lambda: {alice_id, bob_id, carol_id} <= set(json.loads(ask(bob, "ids", "ids:"))),
                 "ids written again after the restart")
        # The outage was logged once, not per message, and its end with a count.
        back = a.errors.until(lambda line: "back after" in line)
        assert "3 messages for other nodes were not sent" in back
        assert sum("unreachable" in line for line in a.errors.seen) == 1, a.errors.seen


@pytest.mark.slow
def test_redis_stalling_while_serving(tmp_path: Path) -> None:
    """Redis answers nothing for longer than a command may wait, but closes no
    connection: the nodes are degraded while it stalls, and serve other nodes
    again once it answers, although their subscriptions never broke."""
    with redis_server(tmp_path) as redis, nodes(redis, 2) as (a, b):
        alice, alice_id = client(a)
        bob, bob_id = client(b)
        alice.send(f"to {bob_id} before")
        assert bob.recv(timeout=TIMEOUT) == "before"
        redis.pause(4000)  # a command times out after max(2 s, the lease)
        for node in (a, b):
            node.errors.until(lambda line: "is degraded" in line)
        wait_for(lambda: ask(alice, "health", "health:") == "ok"
                 and ask(bob, "health", "health:") == "ok", "both nodes healthy again",
                 timeout=20)
        alice.send(f"to {bob_id} after")
        assert "after" in drain(bob)
        bob.send(f"to {alice_id} back")
        assert "back" in drain(alice)
        for node in (a, b):
            back = node.errors.until(lambda line: "back after" in line)
            assert "answers again" in back, back
            assert sum("unreachable" in line for line in node.errors.seen) == 1, node.errors.seen


def test_workers_on_one_port_act_as_one_server_through_the_backplane(tmp_path: Path) -> None:
    """``--workers 2 --backplane``: two processes behind one port; a client of
    one worker reaches a client of the other by id, and a broadcast reaches
    every client of both exactly once."""
    with redis_server(tmp_path) as redis, contextlib.ExitStack() as stack:
        server = stack.enter_context(run_server(
            "serve", APP, "--workers", "2", "--backplane", redis.url,
            "--backplane-lease", LEASE))
        _clients.append(stack)
        try:
            for _ in range(2):  # the supervisor logs each worker's readiness
                server.errors.until(lambda line: READY.search(line) is not None, 60)
            clients: list[tuple[ClientConnection, int]] = []
            # SO_REUSEPORT spreads connections by hash: keep connecting until
            # both workers (two node numbers in the ids) hold some.
            for _ in range(40):
                clients.append(client(server))
                if len({cid >> 32 for _, cid in clients}) == 2 and len(clients) >= 4:
                    break
            by_node: dict[int, list[tuple[ClientConnection, int]]] = {}
            for ws, cid in clients:
                by_node.setdefault(cid >> 32, []).append((ws, cid))
            assert len(by_node) == 2, f"every connection went to one worker: {by_node.keys()}"
            (a_ws, _), (b_ws, b_id) = (group[0] for group in by_node.values())
            wait_for(lambda: len(json.loads(ask(a_ws, "ids", "ids:"))) == len(clients) or None,
                     f"{len(clients)} clients in comms.ids of both workers")
            a_ws.send(f"to {b_id} across workers")
            assert b_ws.recv(timeout=TIMEOUT) == "across workers"
            a_ws.send("all to everyone")
            for ws, _ in clients:
                assert drain(ws) == ["to everyone"]
                ws.close()
            assert server.stop() == 0
        finally:
            _clients.remove(stack)
