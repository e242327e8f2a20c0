"""Soak the Redis backplane: N wskit nodes + one redis-server, clients in rooms
plus send-by-id traffic, every message numbered. Not part of the test suite.

    python bench/cluster_soak.py --nodes 2 --clients 200 --rooms 10 --seconds 10
    python bench/cluster_soak.py ... --restart-redis-at 5     # one outage mid-run

Starts its own redis-server (free loopback port, no persistence) and the
nodes (``python bench/cluster_soak.py node ...``: ``wskit.Rooms`` with a
service that relays ``room`` messages to everyone in the room and ``direct``
messages to one client id anywhere through ``ctx.comms.send``). Clients
(the ``websockets`` asyncio client, in this process) spread over nodes and
rooms round-robin, so every room has members on every node. Each client
sends, at a fixed rate, alternately a room message and a direct message to
a random client, numbered per (sender, stream).

Reports, per kind: sent, expected deliveries, delivered, lost, duplicated,
out of order (per sender), p50/p99 delivery latency (send to receive, same
host clock), and deliveries/s. With ``--restart-redis-at``, which messages
were lost: they should be only those sent while Redis was down (or in
flight when it went).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


# -- the node ----------------------------------------------------------------------


def run_node(port: int, backplane: str) -> None:
    sys.path.insert(0, str(ROOT))
    import logging

    import wskit

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    class Relay(wskit.RoomService):
        def on_join(self, client: wskit.ClientId, ctx: wskit.RoomContext) -> None:
            ctx.send(client, f"id {int(client)}")

        def on_message(self, client: wskit.ClientId, msg: wskit.Message,
                       ctx: wskit.RoomContext) -> None:
            text = str(msg)
            if text.startswith("room "):
                ctx.send(wskit.Everyone, text)
            elif text.startswith("direct "):
                target = int(text.split(" ", 2)[1])
                with contextlib.suppress(wskit.Error):  # counted as lost by the driver
                    ctx.comms.send(target, text)

    settings = wskit.Settings(backplane=backplane, ping_interval=None, compression=None)
    wskit.listen(("127.0.0.1", port), wskit.Rooms(Relay, grace=30), settings=settings)


# -- the driver ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} never opened")


class Stats:
    def __init__(self) -> None:
        self.sent: dict[str, int] = defaultdict(int)
        self.expected: dict[str, int] = defaultdict(int)
        self.got: dict[str, int] = defaultdict(int)
        self.dup: dict[str, int] = defaultdict(int)
        self.ooo: dict[str, int] = defaultdict(int)
        self.latency: dict[str, list[float]] = defaultdict(list)
        # (receiver, kind, sender) -> seqs seen, last seq
        self.seen: dict[tuple[int, str, int], set[int]] = defaultdict(set)
        self.last: dict[tuple[int, str, int], int] = defaultdict(lambda: -1)
        # what each receiver should get: (receiver, kind, sender) -> seqs
        self.owed: dict[tuple[int, str, int], set[int]] = defaultdict(set)
        self.sent_at: dict[tuple[str, int, int], float] = {}
        self.rejoined = 0
        self.last_at = time.monotonic()  # when a message last arrived
        self.done = False

    def received(self, me: int, text: str) -> None:
        kind, rest = text.split(" ", 1)
        if kind not in ("room", "direct"):
            self.rejoined += kind == "id"  # on_join again: the room moved
            return
        if kind == "direct":
            _, sender, seq, stamp = rest.split(" ")
        else:
            sender, seq, stamp = rest.split(" ")
        key = (me, kind, int(sender))
        n = int(seq)
        self.last_at = time.monotonic()
        self.latency[kind].append(time.monotonic() - float(stamp))
        if n in self.seen[key]:
            self.dup[kind] += 1
            return
        if n < self.last[key]:
            self.ooo[kind] += 1
        self.seen[key].add(n)
        self.last[key] = max(self.last[key], n)
        self.got[kind] += 1


async def client(url: str, index: int, stats: Stats, ids: dict[int, int],
                 members: dict[str, list[int]], room: str, ready: asyncio.Event,
                 go: asyncio.Event, stop: asyncio.Event, rate: float,
                 outage: list[float]) -> None:
    from websockets.asyncio.client import connect

    async with connect(url, compression=None, max_queue=None, ping_interval=None) as ws:
        first = await ws.recv()
        me = int(str(first).split()[1])
        ids[index] = me
        members[room].append(me)
        ready.set()

        async def reader() -> None:
            async for message in ws:
                stats.received(me, str(message))

        task = asyncio.create_task(reader())
        await go.wait()
        seq = {"room": 0, "direct": 0}
        everyone = list(ids.values())
        period = 1 / rate
        next_at = time.monotonic() + random.random() * period
        kind = "room"
        while not stop.is_set():
            await asyncio.sleep(max(0, next_at - time.monotonic()))
            next_at += period
            now = time.monotonic()
            n = seq[kind]
            seq[kind] += 1
            if kind == "room":
                text = f"room {me} {n} {now}"
                for member in members[room]:
                    stats.owed[(member, "room", me)].add(n)
                stats.expected["room"] += len(members[room])
            else:
                target = random.choice(everyone)
                text = f"direct {target} {me} {n} {now}"
                stats.owed[(target, "direct", me)].add(n)
                stats.expected["direct"] += 1
            stats.sent[kind] += 1
            stats.sent_at[(kind, me, n)] = now
            try:
                await ws.send(text)
            except Exception:
                break
            kind = "direct" if kind == "room" else "room"
        # In flight: polled (arrivals are many; an event per message would cost more).
        while time.monotonic() - stats.last_at < 3 and not stats.done:  # noqa: ASYNC110
            await asyncio.sleep(0.5)
        task.cancel()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(args: argparse.Namespace, ports: list[int], redis: dict[str, Any]) -> None:
    stats = Stats()
    ids: dict[int, int] = {}
    members: dict[str, list[int]] = defaultdict(list)
    go, stop = asyncio.Event(), asyncio.Event()
    outage: list[float] = []
    tasks = []
    for i in range(args.clients):
        ready = asyncio.Event()
        port = ports[i % len(ports)]
        room = f"r{(i // len(ports)) % args.rooms}"
        tasks.append(asyncio.create_task(client(
            f"ws://127.0.0.1:{port}/ws/{room}", i, stats, ids, members, room, ready, go, stop,
            args.rate, outage)))
        await ready.wait()
    await asyncio.sleep(1.5)  # every node sees every id
    start = time.monotonic()
    go.set()
    if args.restart_redis_at is not None:
        await asyncio.sleep(args.restart_redis_at)
        outage.append(time.monotonic())
        redis["stop"]()
        await asyncio.sleep(args.outage)
        redis["start"]()
        outage.append(time.monotonic())
        await asyncio.sleep(max(0, args.seconds - args.restart_redis_at - args.outage))
    else:
        await asyncio.sleep(args.seconds)
    stop.set()
    elapsed = time.monotonic() - start
    # Wait until nothing arrived for 3 s (at most 60 s): late is not lost.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(60):
            await asyncio.gather(*tasks, return_exceptions=True)
    stats.done = True
    await asyncio.gather(*tasks, return_exceptions=True)
    drained = time.monotonic() - start - elapsed

    report: dict[str, Any] = {
        "outage_s": [round(t - start, 2) for t in outage] or None,
        "drain_s": round(drained, 1), "rejoins": stats.rejoined, "nodes": args.nodes,
        "clients": args.clients, "rooms": args.rooms, "seconds": round(elapsed, 1),
        "rate_per_client": args.rate}
    for kind in ("room", "direct"):
        lost = [(key, n) for key, seqs in stats.owed.items() if key[1] == kind
                for n in seqs - stats.seen[key]]
        during = 0
        if outage:
            down, up = outage[0], outage[1]
            during = sum(1 for (me, _, sender), n in lost
                         if down - 1 <= stats.sent_at[(kind, sender, n)] <= up + 6)
        by_second: dict[int, int] = defaultdict(int)
        for (_, _, sender), n in lost:
            by_second[int(stats.sent_at[(kind, sender, n)] - start)] += 1
        report[kind] = {
            "lost_by_send_second": dict(sorted(by_second.items())),
            "sent": stats.sent[kind], "expected": stats.expected[kind],
            "delivered": stats.got[kind], "lost": len(lost),
            "lost_around_outage": during if outage else None,
            "duplicated": stats.dup[kind], "out_of_order": stats.ooo[kind],
            "p50_ms": round(percentile(stats.latency[kind], 0.5) * 1000, 2),
            "p99_ms": round(percentile(stats.latency[kind], 0.99) * 1000, 2),
            "deliveries_per_s": round(stats.got[kind] / elapsed),
        }
    print(json.dumps(report, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    sub = parser.add_subparsers(dest="command")
    node = sub.add_parser("node")
    node.add_argument("--port", type=int, required=True)
    node.add_argument("--backplane", required=True)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rate", type=float, default=5, help="messages/s per client")
    parser.add_argument("--restart-redis-at", type=float, default=None)
    parser.add_argument("--outage", type=float, default=2, help="seconds Redis stays down")
    args = parser.parse_args()
    if args.command == "node":
        run_node(args.port, args.backplane)
        return

    redis_port = free_port()
    workdir = Path(os.environ.get("TMPDIR", "/tmp"))
    redis_cmd = [shutil.which("redis-server") or "redis-server", "--port", str(redis_port),
                 "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
                 str(workdir)]
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start_redis() -> None:
        # Its log says when it drops a subscriber that fell behind (output
        # buffer limits): a loss no node would otherwise see.
        with (workdir / "soak_redis.log").open("ab") as log:
            procs["redis"] = subprocess.Popen(redis_cmd, stdout=log)
        wait_port(redis_port)

    def stop_redis() -> None:
        procs["redis"].terminate()
        procs["redis"].wait()

    start_redis()
    url = f"redis://127.0.0.1:{redis_port}/0"
    ports = [free_port() for _ in range(args.nodes)]
    logs = contextlib.ExitStack()
    nodes = [subprocess.Popen([sys.executable, __file__, "node", "--port", str(p),
                               "--backplane", url],
                              stderr=logs.enter_context((workdir / f"soak_node{i}.log").open("wb")))
             for i, p in enumerate(ports)]
    try:
        for p in ports:
            wait_port(p)
        asyncio.run(drive(args, ports, {"start": start_redis, "stop": stop_redis}))
    finally:
        for proc in nodes:
            proc.terminate()
        for proc in nodes:
            proc.wait()
        logs.close()
        stop_redis()


if __name__ == "__main__":
    main()
