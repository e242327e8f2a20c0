"""``examples/cluster_chat.py`` on two nodes sharing a real ``redis-server``."""

from __future__ import annotations

import contextlib
from pathlib import Path

from _procs import TIMEOUT, run_example, ws_connect
from _redis import redis_server
from websockets.sync.client import ClientConnection


def until(ws: ClientConnection, part: str) -> str:
    while True:
        message = ws.recv(timeout=TIMEOUT)
        assert isinstance(message, str)
        if part in message:
            return message


def test_cluster_chat_on_two_nodes(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis, contextlib.ExitStack() as stack:
        a = stack.enter_context(run_example("cluster_chat.py", tmp_path,
                                            "--backplane", redis.url))
        b = stack.enter_context(run_example("cluster_chat.py", tmp_path,
                                            "--backplane", redis.url))
        alice = stack.enter_context(ws_connect(f"{a.url}/ws/lobby"))
        welcome = until(alice, "welcome")
        alice_id = int(welcome.split("you are ")[1].split()[0])
        bob = stack.enter_context(ws_connect(f"{b.url}/ws/lobby"))
        bob_id = int(until(bob, "welcome").split("you are ")[1].split()[0])
        assert alice_id >> 32 != bob_id >> 32  # two nodes
        assert until(alice, "joined") == f"{bob_id} joined"
        bob.send("hello from node b")
        assert until(alice, "hello") == f"{bob_id}: hello from node b"
        alice.send(f"/to {bob_id} psst")
        assert until(bob, "private") == f"{alice_id} (private): psst"
        bob.close()
        assert until(alice, "left") == f"{bob_id} left"
        alice.close()
        b.stop()
        a.stop()
