"""Rooms across nodes: ``wskit serve … --rooms --backplane`` processes on
different ports sharing one real ``redis-server``; ``websockets`` clients.

One room with members on two nodes: callbacks on the owner, in each
client's order; ``Everyone`` / ``Except`` / lists reach members on both
nodes; ``on_timer`` once; a rejoin within the grace period through the
other node finds the state; ``GET /rooms`` cluster-wide; the owner killed
with SIGKILL: the room comes back on the other node with fresh state;
``comms.room(...)`` from a third node that owns nothing (a plain handler,
``tests.cluster_node``) reaches the members on both nodes.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _cli_helpers import Server, run_server
from _procs import TIMEOUT, drain, http_get, wait_for, ws_connect
from _redis import RedisServer, redis_server
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

APP = "tests.cluster_rooms:Chat"
PLAIN = "tests.cluster_node:Node"
LEASE = "1"


class Cluster:
    def __init__(self, stack: contextlib.ExitStack, servers: list[Server]) -> None:
        self.stack = stack
        self.servers = servers

    def join(self, node: Server, room: str, name: str) -> tuple[ClientConnection, int, int]:
        """A client in ``room`` through ``node``: (connection, its id, owner node)."""
        ws = self.stack.enter_context(ws_connect(f"{node.url}/ws/{room}?name={name}"))
        ws.send("whoami")
        answer = until(ws, "me ")
        _, client_id, _, owner = answer.split()
        return ws, int(client_id), int(owner)


@contextlib.contextmanager
def cluster(redis: RedisServer, count: int, *options: str) -> Iterator[Cluster]:
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(run_server(
            "serve", APP, "--rooms", "--backplane", redis.url, "--backplane-lease", LEASE,
            *options)) for _ in range(count)]
        yield Cluster(stack, servers)


def until(ws: ClientConnection, prefix: str, timeout: float = TIMEOUT) -> str:
    """The next message that starts with ``prefix`` (others are skipped)."""
    while True:
        message = ws.recv(timeout=timeout)
        assert isinstance(message, str)
        if message.startswith(prefix):
            return message



def ask(ws: ClientConnection, command: str, prefix: str) -> Any:
    """A ``tests.cluster_node`` command's JSON answer."""
    ws.send(command)
    return json.loads(until(ws, prefix)[len(prefix):])


def node_number(node: Server) -> int:
    _, _, body = http_get(node.port, "/rooms")
    return int(json.loads(body)["node"])


def test_one_room_members_on_two_nodes(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis, cluster(redis, 2) as c:
        a, b = c.servers
        alice, alice_id, owner = c.join(a, "lobby", "alice")
        assert owner == node_number(a)  # the first join claims the room for its node
        bob, bob_id, owner_seen_by_bob = c.join(b, "lobby", "bob")
        assert owner_seen_by_bob == owner  # bob's callbacks run on node a
        assert until(alice, "join bob") == f"join bob {bob_id} on {owner}"

        # Order per client: bob's messages are handled in the order he sent them.
        for _ in range(50):
            bob.send("count")
        assert [until(bob, "count") for _ in range(50)] == [
            f"count {i} on {owner}" for i in range(1, 51)]

        drain(alice)
        drain(bob)
        bob.send("say hi")  # Everyone: both nodes
        assert until(alice, f"{bob_id}:") == f"{bob_id}: hi"
        assert until(bob, f"{bob_id}:") == f"{bob_id}: hi"
        bob.send("others psst")  # Except(bob)
        assert until(alice, "others") == "others psst"
        alice.send(f"to {bob_id} only you")  # a list: bob on node b
        assert until(bob, "to ") == "to only you"
        assert drain(bob) == [] and drain(alice) == []

        alice.send("timer 0.3")  # on_timer once in the cluster, seen on both nodes
        assert drain(alice, 1.5) == [f"timer on {owner}"]
        assert drain(bob, 0.2) == [f"timer on {owner}"]

        _, _, body = http_get(b.port, "/rooms")  # cluster-wide, from the other node
        summary = json.loads(body)
        assert [(r["room_id"], r["node"], r["clients"]) for r in summary["rooms"]] == [
            ("lobby", owner, 2)]
        assert http_get(b.port, "/status")[2] == "ok\n"

        bob.close()  # bob's leave runs on the owner
        assert until(alice, "left") == f"left {bob_id} 1000"
        del alice_id


def test_owner_closes_a_remote_member(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis, cluster(redis, 2) as c:
        a, b = c.servers
        alice, _, _ = c.join(a, "club", "alice")
        bob, bob_id, _ = c.join(b, "club", "bob")
        alice.send(f"kick {bob_id}")  # ctx.close on node a, bob's socket on node b
        with pytest.raises(ConnectionClosed):
            until(bob, "never")  # skips the join messages, then the close
        assert bob.close_code == 4000
        assert until(alice, "left") == f"left {bob_id} 4000"


@pytest.mark.slow
def test_member_node_killed(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis, cluster(redis, 2) as c:
        a, b = c.servers
        alice, _, _ = c.join(a, "hall", "alice")
        _, bob_id, _ = c.join(b, "hall", "bob")
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait()
        # The owner notices within a lease or two: on_leave with 1006.
        assert until(alice, "left", timeout=15) == f"left {bob_id} 1006"


def test_grace_rejoin_through_the_other_node(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis, cluster(redis, 2, "--grace", "5") as c:
        a, b = c.servers
        alice, _, owner = c.join(a, "den", "alice")
        for _ in range(3):
            alice.send("count")
        assert until(alice, "count 3")
        alice.close()
        back, _, owner_now = c.join(b, "den", "alice-again")
        assert owner_now == owner  # the room waited on node a
        back.send("count")
        assert until(back, "count") == f"count 4 on {owner}"  # its state too


@pytest.mark.slow
def test_owner_killed_room_moves(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis, cluster(redis, 2) as c:
        a, b = c.servers
        alice, _, owner = c.join(a, "keep", "alice")
        bob, bob_id, _ = c.join(b, "keep", "bob")
        bob.send("count")
        bob.send("count")
        assert until(bob, "count 2") == f"count 2 on {owner}"
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        new_owner = node_number(b)
        # Within a lease or two: re-created on b, bob joined again, fresh state.
        assert until(bob, "join bob", timeout=15) == f"join bob {bob_id} on {new_owner}"
        bob.send("count")
        assert until(bob, "count") == f"count 1 on {new_owner}"
        summary = json.loads(http_get(b.port, "/rooms")[2])
        assert [(r["room_id"], r["node"], r["clients"]) for r in summary["rooms"]] == [
            ("keep", new_owner, 1)]
        del alice


def test_owner_stopped_while_a_remote_member_stays(tmp_path: Path) -> None:
    """The owner shuts down gracefully while a member on another node stays
    connected: the owner's room ends with it (its ``on_leave`` for the remote
    member), the owner exits, and the room comes back on the other node."""
    with redis_server(tmp_path) as redis, cluster(redis, 2) as c:
        a, b = c.servers
        alice, _, owner = c.join(a, "stay", "alice")
        bob, bob_id, _ = c.join(b, "stay", "bob")
        assert owner == node_number(a)
        a.proc.send_signal(signal.SIGTERM)
        try:
            assert a.proc.wait(timeout=TIMEOUT) == 0
        except subprocess.TimeoutExpired:
            pytest.fail(f"the owner did not exit with a remote member in its room: "
                        f"{a.errors.seen}")
        new_owner = node_number(b)
        assert until(bob, "join bob", timeout=15) == f"join bob {bob_id} on {new_owner}"
        del alice


@pytest.mark.slow
def test_state_persisted_survives_the_owner(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("CHAT_STATE_DIR", str(state))
    with redis_server(tmp_path) as redis, cluster(redis, 2) as c:
        a, b = c.servers
        _, _, owner = c.join(a, "saved", "alice")
        bob, _, _ = c.join(b, "saved", "bob")
        for _ in range(3):
            bob.send("count")
        assert until(bob, "count 3") == f"count 3 on {owner}"
        wait_for(lambda: (state / "saved").exists() and (state / "saved").read_text() == "3",
                 "on_persist to save the count on the owner")
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        assert until(bob, "join bob", timeout=15).endswith(f"on {node_number(b)}")
        bob.send("count")
        assert until(bob, "count") == f"count 4 on {node_number(b)}"


@pytest.mark.slow
def test_room_works_again_after_a_redis_restart(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis, cluster(redis, 2) as c:
        a, b = c.servers
        alice, _, _ = c.join(a, "storm", "alice")
        bob, bob_id, _ = c.join(b, "storm", "bob")
        bob.send("say before")
        assert until(alice, f"{bob_id}:") == f"{bob_id}: before"
        redis.stop()
        wait_for(lambda: http_get(b.port, "/status")[2] == "degraded\n", "node b degraded")
        redis.start()
        wait_for(lambda: http_get(a.port, "/status")[2] == "ok\n"
                 and http_get(b.port, "/status")[2] == "ok\n", "both nodes ok again",
                 timeout=20)

        # At most once across the outage: what bob says reaches alice again
        # (the room may have moved, with on_join again; never split for good).
        def heard() -> bool:
            bob.send("say after")
            return any(m == f"{bob_id}: after" for m in drain(alice, 0.3))

        wait_for(heard, "bob's messages reaching alice again", timeout=20)

        def rooms() -> list[tuple[str, int, int]]:
            listed = json.loads(http_get(a.port, "/rooms")[2])["rooms"]
            return [(r["room_id"], r["node"], r["clients"]) for r in listed]

        wait_for(lambda: [(r, n) for r, _, n in rooms()] == [("storm", 2)],
                 lambda: f"one room 'storm' with both clients in GET /rooms: {rooms()}")


def test_room_reached_from_a_node_that_owns_nothing(tmp_path: Path) -> None:
    """``comms.room("lobby").send(...)`` on node c, which serves no rooms, to
    a room owned by node a with members on a and b: through the owner, so
    recipients mean what they mean on one node and one sender's order holds."""
    with redis_server(tmp_path) as redis, cluster(redis, 2) as c:
        a, b = c.servers
        plain = c.stack.enter_context(run_server(
            "serve", PLAIN, "--backplane", redis.url, "--backplane-lease", LEASE))
        alice, alice_id, owner = c.join(a, "lobby", "alice")
        bob, bob_id, _ = c.join(b, "lobby", "bob")
        carol = c.stack.enter_context(ws_connect(plain.url))
        # Node c learns the room and its members from the owner's heartbeat.
        wait_for(lambda: ask(carol, "members lobby", "members:") == [alice_id, bob_id],
                 "node c to see both members of 'lobby'")
        assert ask(carol, "rooms", "rooms:") == ["lobby"]
        drain(alice)
        drain(bob)

        for i in range(30):  # Everyone: both nodes, in the order sent
            carol.send(f"room lobby * m{i}")
        expected = [f"m{i}" for i in range(30)]
        assert [until(alice, "m") for _ in range(30)] == expected
        assert [until(bob, "m") for _ in range(30)] == expected
        carol.send(f"room lobby -{alice_id} not alice")  # Except: bob only
        carol.send(f"room lobby {bob_id} a list")  # a list: bob
        carol.send(f"room lobby ={alice_id} one id")  # one id: alice
        assert drain(alice) == ["one id"]
        assert drain(bob) == ["not alice", "a list"]

        # Ids not in the room: the others still get it; the owner reports
        # the missing one back to node c's comms.on_error.
        missing = (owner << 32) + 999_999
        carol.send(f"room lobby {bob_id},{missing} some")
        assert until(bob, "some") == "some"
        assert until(carol, "late:") == f"late:QUEUE:{missing}"
        # A room open nowhere: reported, not raised (node c cannot know at once).
        carol.send("room nowhere * hello?")
        late = until(carol, "late:")
        assert late.startswith("late:QUEUE:None room 'nowhere' is not open on any node"), late
        assert drain(alice) == [] and drain(bob) == []

        bob.close()  # node c's view follows the owner's
        wait_for(lambda: ask(carol, "members lobby", "members:") == [alice_id],
                 "bob gone from 'lobby' on node c")
