"""Soak the Redis backplane: N wskit nodes + one redis-server, clients in rooms
plus send-by-id traffic, every message numbered. Not part of the test suite.

    python bench/cluster_soak.py --nodes 2 --clients 200 --rooms 10 --seconds 10
    python bench/cluster_soak.py ... --restart-redis-at 5   # Redis stopped, restarted
    python bench/cluster_soak.py ... --pause-redis-at 5     # Redis answers nothing

Starts its own redis-server (free loopback port, no persistence) and the
nodes (``python bench/cluster_soak.py node ...``: ``wskit.Rooms`` with a
service that relays ``room`` messages to everyone in the room and ``direct``
messages to one client id anywhere through ``ctx.comms.send``). Clients
(the ``websockets`` asyncio client, in this process) spread over nodes and
rooms round-robin, so every room has members on every node. Each client
sends, at a fixed rate, alternately a room message and a direct message to
a random client, numbered per (sender, stream).

The end of the run: the senders stop, then the driver waits until every
message owed has arrived, or until nothing new arrived for ``--quiet``
seconds (30 by default), at most ``--max-drain`` seconds; then it asks each
node for its rooms' counters (``GET /rooms``) and closes the clients.

Reports, per kind: sent, expected deliveries, delivered, lost, duplicated,
out of order (per sender), p50/p99 delivery latency (send to receive, same
host clock: it includes this driver's own queueing), deliveries/s (from
the first send to the last arrival). Every
lost delivery is attributed (one JSON line each in ``soak_lost.jsonl``):
receiver, sender and the room's owner (id, node), when it was sent, how the
receiver's connection ended, gap (a later message of the same sender
arrived) or tail, and what the servers said about it, from their logs
(``soak_node{i}.log``, with Redis' in ``soak_redis.log``, in ``$TMPDIR``):
a ``direct`` that ``comms.send`` refused (the node logs ``NOT SENT``), a
client the server closed, a node degraded (Redis unreachable or stalled),
a node taken for dead or a room that moved. Those are *announced*; a loss
nothing explains is *silent*, counted apart, and must be zero.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NODE_SHIFT = 32  # a client's node is id >> 32 (wskit/_hub/redis.py)


# -- the node ----------------------------------------------------------------------


def run_node(port: int, backplane: str) -> None:
    sys.path.insert(0, str(ROOT))
    import logging

    import wskit

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("soak.node")

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
                try:
                    ctx.comms.send(target, text)
                except wskit.Error as err:  # the driver matches these to lost messages
                    log.warning("NOT SENT %s: %s", text, err)

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


@dataclass
class Peer:
    """One client connection, as the driver saw it."""

    index: int
    room: str
    id: int = 0
    opened: float = 0.0
    #: When its connection ended, and whether the server ended it first.
    closed: float | None = None
    closed_by_server: bool = False
    close_code: int | None = None
    close_reason: str = ""
    last_rx: float = 0.0
    send_failed: str = ""

    @property
    def node(self) -> int:
        return self.id >> NODE_SHIFT


@dataclass
class Stats:
    sent: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    expected: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    got: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dup: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    ooo: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    # (receiver, kind, sender) -> seqs seen / highest seq seen
    seen: dict[tuple[int, str, int], set[int]] = field(default_factory=lambda: defaultdict(set))
    last: dict[tuple[int, str, int], int] = field(default_factory=dict)
    # what each receiver should get: (receiver, kind, sender) -> seqs
    owed: dict[tuple[int, str, int], set[int]] = field(default_factory=lambda: defaultdict(set))
    sent_at: dict[tuple[str, int, int], float] = field(default_factory=dict)
    rejoined: int = 0
    last_at: float = 0.0  # when a message last arrived

    @property
    def outstanding(self) -> int:
        return sum(self.expected.values()) - sum(self.got.values())

    def received(self, peer: Peer, text: str) -> None:
        kind, rest = text.split(" ", 1)
        if kind not in ("room", "direct"):
            self.rejoined += kind == "id"  # on_join again: the room moved
            return
        if kind == "direct":
            _, sender, seq, stamp = rest.split(" ")
        else:
            sender, seq, stamp = rest.split(" ")
        key = (peer.id, kind, int(sender))
        n = int(seq)
        self.last_at = peer.last_rx = now = time.monotonic()
        self.latency[kind].append(now - float(stamp))
        seen = self.seen[key]
        if n in seen:
            self.dup[kind] += 1
            return
        if n < self.last.get(key, -1):
            self.ooo[kind] += 1
        seen.add(n)
        if n > self.last.get(key, -1):
            self.last[key] = n
        self.got[kind] += 1


async def client(url: str, peer: Peer, stats: Stats, peers: list[Peer],
                 members: dict[str, list[int]], ready: asyncio.Event, go: asyncio.Event,
                 stop: asyncio.Event, close: asyncio.Event, rate: float) -> None:
    from websockets.asyncio.client import connect

    async with connect(url, compression=None, max_queue=None, ping_interval=None,
                       close_timeout=30) as ws:
        first = await ws.recv()
        peer.id = int(str(first).split()[1])
        peer.opened = time.monotonic()
        members[peer.room].append(peer.id)
        ready.set()

        async def reader() -> None:
            with contextlib.suppress(Exception):
                async for message in ws:
                    stats.received(peer, str(message))
            if not close.is_set() and peer.closed is None:  # the server ended it
                peer.closed, peer.closed_by_server = time.monotonic(), True
                rcvd = ws.protocol.close_rcvd
                peer.close_code = rcvd.code if rcvd else None
                peer.close_reason = rcvd.reason if rcvd else ""

        task = asyncio.create_task(reader())
        await go.wait()
        seq = {"room": 0, "direct": 0}
        everyone = [p.id for p in peers]
        period = 1 / rate
        next_at = time.monotonic() + random.random() * period
        kind = "room"
        while not stop.is_set() and peer.closed is None:
            await asyncio.sleep(max(0, next_at - time.monotonic()))
            if stop.is_set():
                break
            next_at += period
            now = time.monotonic()
            n = seq[kind]
            seq[kind] += 1
            if kind == "room":
                text = f"room {peer.id} {n} {now}"
                for member in members[peer.room]:
                    stats.owed[(member, "room", peer.id)].add(n)
                stats.expected["room"] += len(members[peer.room])
            else:
                target = random.choice(everyone)
                text = f"direct {target} {peer.id} {n} {now}"
                stats.owed[(target, "direct", peer.id)].add(n)
                stats.expected["direct"] += 1
            stats.sent[kind] += 1
            stats.sent_at[(kind, peer.id, n)] = now
            try:
                await ws.send(text)
            except Exception as exc:  # the messages owed for it go missing: say why
                peer.send_failed = repr(exc)
                break
            kind = "direct" if kind == "room" else "room"
        await close.wait()
        if peer.closed is None:
            peer.closed = time.monotonic()
        task.cancel()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def loop_lag(stalls: list[float], stop: asyncio.Event) -> None:
    """How late this process' own event loop ran (its queueing is in every
    latency figure)."""
    while not stop.is_set():
        before = time.monotonic()
        await asyncio.sleep(0.1)
        stalls.append(time.monotonic() - before - 0.1)


def fetch_rooms(port: int) -> list[dict[str, Any]]:
    """``GET /rooms`` of one node (its view of every node's rooms)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/rooms", timeout=30) as reply:
        return list(json.load(reply)["rooms"])


@dataclass
class Run:
    """What :func:`drive` leaves for the attribution."""

    stats: Stats
    peers: list[Peer]
    rooms: dict[str, dict[str, Any]]
    start: float
    outage: list[float]


async def drive(args: argparse.Namespace, ports: list[int], redis: dict[str, Any]
                ) -> tuple[dict[str, Any], Run]:
    stats = Stats()
    peers: list[Peer] = []
    members: dict[str, list[int]] = defaultdict(list)
    go, stop, close, done = asyncio.Event(), asyncio.Event(), asyncio.Event(), asyncio.Event()
    outage: list[float] = []
    stalls: list[float] = []
    tasks = []
    for i in range(args.clients):
        ready = asyncio.Event()
        port = ports[i % len(ports)]
        peer = Peer(i, f"r{(i // len(ports)) % args.rooms}")
        peers.append(peer)
        tasks.append(asyncio.create_task(client(
            f"ws://127.0.0.1:{port}/ws/{peer.room}", peer, stats, peers, members, ready, go,
            stop, close, args.rate)))
        await ready.wait()
    await asyncio.sleep(1.5)  # every node sees every id
    lag = asyncio.create_task(loop_lag(stalls, done))
    start = time.monotonic()
    go.set()
    fault_at = args.restart_redis_at if args.restart_redis_at is not None else args.pause_redis_at
    if fault_at is not None:
        await asyncio.sleep(fault_at)
        outage.append(time.monotonic())
        if args.restart_redis_at is not None:
            redis["stop"]()
            await asyncio.sleep(args.outage)
            redis["start"]()
        else:
            redis["pause"](args.outage)
            await asyncio.sleep(args.outage)
        outage.append(time.monotonic())
        await asyncio.sleep(max(0, args.seconds - fault_at - args.outage))
    else:
        await asyncio.sleep(args.seconds)
    stop.set()
    stopped = time.monotonic()
    elapsed = stopped - start
    # Until nothing is owed, or nothing new arrived for --quiet s: late is not lost.
    progress, progress_at, ended = stats.outstanding, stopped, "everything arrived"
    while stats.outstanding > 0:
        await asyncio.sleep(0.25)
        now = time.monotonic()
        if stats.outstanding != progress:
            progress, progress_at = stats.outstanding, now
        elif now - progress_at >= args.quiet:
            ended = f"nothing arrived for {args.quiet:g} s"
            break
        if now - stopped >= args.max_drain:
            ended = f"--max-drain {args.max_drain:g} s reached"
            break
    drained = time.monotonic() - stopped
    rooms: dict[str, dict[str, Any]] = {}
    for port in ports:  # every node lists every room; each room once, as its owner has it
        with contextlib.suppress(Exception):
            for room in await asyncio.to_thread(fetch_rooms, port):
                rooms.setdefault(str(room["room_id"]), room)
    close.set()
    done.set()
    await asyncio.gather(*tasks, lag, return_exceptions=True)

    report: dict[str, Any] = {
        "outage_s": [round(t - start, 2) for t in outage] or None,
        "nodes": args.nodes, "clients": args.clients, "rooms": args.rooms,
        "rate_per_client": args.rate, "seconds": round(elapsed, 1),
        "drain_s": round(drained, 1), "drain_ended": ended, "rejoins": stats.rejoined,
        "closed_by_server": dict(Counter(f"{p.close_code} {p.close_reason}".strip()
                                         for p in peers if p.closed_by_server)),
        "send_failed": sum(1 for p in peers if p.send_failed),
        "driver_loop_late_ms": {"p50": round(percentile(stalls, 0.5) * 1000),
                                "p99": round(percentile(stalls, 0.99) * 1000),
                                "max": round(max(stalls, default=0) * 1000)},
        "server_rooms": {key: sum(int(r.get(key, 0)) for r in rooms.values())
                         for key in ("dropped", "slow_disconnects", "queued_bytes")},
    }
    for kind in ("room", "direct"):
        report[kind] = {
            "sent": stats.sent[kind], "expected": stats.expected[kind],
            "delivered": stats.got[kind],
            "lost": stats.expected[kind] - stats.got[kind],
            "duplicated": stats.dup[kind], "out_of_order": stats.ooo[kind],
            "p50_ms": round(percentile(stats.latency[kind], 0.5) * 1000, 2),
            "p99_ms": round(percentile(stats.latency[kind], 0.99) * 1000, 2),
            # Over the time from the first send to the last arrival: on an
            # overloaded cluster deliveries go on long after the window.
            "deliveries_per_s": round(stats.got[kind] / max(elapsed, stats.last_at - start)),
        }
    return report, Run(stats, peers, rooms, start, outage)


# -- attributing what was lost ----------------------------------------------------------


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+) (\S+): (.*)$")
_NODE = re.compile(r"this is node (\d+)")
_NOT_SENT = re.compile(r"NOT SENT direct (\d+) (\d+) (\d+) ")
_FAILED = re.compile(r"client (\d+) is not connected|send queue of connection (\d+) is full")
_MEMBER_GONE = re.compile(r"room '([^']+)': client (\d+)'s node (\d+) is gone")
_MOVED = re.compile(r"room '([^']+)': (its owner changed|node \d+ owns it now)")


@dataclass
class Said:
    """What the nodes' logs say, in this process' monotonic clock."""

    refused: set[tuple[int, int]] = field(default_factory=set)  # direct (sender, seq)
    failed: Counter[int] = field(default_factory=Counter)  # late failures, by client id
    degraded: dict[int, list[tuple[float, float]]] = field(
        default_factory=lambda: defaultdict(list))  # node -> (from, to)
    dropped: dict[int, list[float]] = field(  # member taken for dead with its node
        default_factory=lambda: defaultdict(list))
    moved: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    warnings: dict[str, Counter[str]] = field(default_factory=dict)


def read_logs(logs: list[Path], mono_of: Any) -> Said:
    said = Said()
    for path in logs:
        node, down_since = 0, None
        counts: Counter[str] = Counter()
        with contextlib.suppress(OSError):
            for line in path.read_text(errors="replace").splitlines():
                stamped = _STAMP.match(line)
                if not stamped:
                    continue  # a continuation (a multi-line message or traceback)
                at = mono_of(stamped[1])
                level, message = stamped[2], stamped[4]
                if found := _NODE.search(message):
                    node = int(found[1])
                if level in ("WARNING", "ERROR", "CRITICAL"):
                    counts[re.sub(r"\d+(\.\d+)?", "N", message)[:150]] += 1
                if found := _NOT_SENT.search(message):
                    said.refused.add((int(found[2]), int(found[3])))
                elif found := _FAILED.search(message):
                    said.failed[int(found[1] or found[2])] += 1
                elif found := _MEMBER_GONE.search(message):
                    said.dropped[int(found[2])].append(at)
                elif found := _MOVED.search(message):
                    said.moved[found[1]].append(at)
                elif " is degraded" in message and down_since is None:
                    down_since = at
                elif "back after" in message and down_since is not None:
                    said.degraded[node].append((down_since, at))
                    down_since = None
            if down_since is not None:
                said.degraded[node].append((down_since, float("inf")))
        said.warnings[path.name] = counts
    return said


def attribute(report: dict[str, Any], run: Run, said: Said, out: Path) -> None:
    """Every lost delivery, explained as far as the evidence goes."""
    stats, start, outage = run.stats, run.start, run.outage
    by_id = {p.id: p for p in run.peers}
    owner = {room_id: int(room.get("node", 0)) for room_id, room in run.rooms.items()}

    def cause(kind: str, n: int, sender: Peer, receiver: Peer, sent: float,
              failed_left: Counter[int]) -> str:
        end = receiver.closed if receiver.closed is not None else float("inf")
        path = {sender.node, owner.get(receiver.room, 0), receiver.node}
        if kind == "direct" and (sender.id, n) in said.refused:
            return "announced: comms.send refused it (NOT SENT in a node's log)"
        if kind == "direct" and failed_left[receiver.id] > 0:
            failed_left[receiver.id] -= 1
            return "announced: a late failure for the receiver (node log)"
        if receiver.closed_by_server and receiver.closed is not None \
                and receiver.closed < sent + 60:
            return f"announced: the server closed the receiver ({receiver.close_code})"
        if any(sent - 10 <= at <= end for at in said.dropped[receiver.id]):
            return "announced: the receiver was taken for dead with its node (node log)"
        if any(sent - 10 <= at <= end for at in said.moved[receiver.room]):
            return "announced: the room moved to another node (node log)"
        if any(a <= sent + 30 and b >= sent - 1 for node in path
               for a, b in said.degraded[node]):
            return "announced: a node on its way was degraded (node log)"
        if outage and outage[0] - 1 <= sent <= outage[1] + 6:
            return "around the Redis fault (no node log names it)"
        if sender.send_failed:
            return "the sender's connection failed"
        return "SILENT"

    with out.open("w") as sink:
        for kind in ("room", "direct"):
            causes: Counter[str] = Counter()
            routes: Counter[str] = Counter()
            by_second: Counter[int] = Counter()
            failed_left = Counter(said.failed)
            for key, seqs in stats.owed.items():
                if key[1] != kind or not (missing := seqs - stats.seen[key]):
                    continue
                receiver, sender = by_id[key[0]], by_id[key[2]]
                highest = stats.last.get(key, -1)
                for n in sorted(missing):
                    sent = stats.sent_at[(kind, sender.id, n)]
                    why = cause(kind, n, sender, receiver, sent, failed_left)
                    if why == "SILENT":
                        why = "SILENT: " + ("gap (a later one arrived)" if n < highest
                                            else "tail (nothing later arrived)")
                    causes[why] += 1
                    route = f"{sender.node}->{owner.get(receiver.room, '?')}->{receiver.node}"
                    routes[route] += 1
                    by_second[int(sent - start)] += 1
                    sink.write(json.dumps({
                        "kind": kind, "seq": n, "cause": why,
                        "sender": sender.id, "sender_node": sender.node,
                        "receiver": receiver.id, "receiver_node": receiver.node,
                        "room": receiver.room, "owner_node": owner.get(receiver.room),
                        "sent_s": round(sent - start, 3),
                        "receiver_connected_then": receiver.opened <= sent and (
                            receiver.closed is None or receiver.closed > sent),
                        "receiver_closed_s": None if receiver.closed is None
                        else round(receiver.closed - start, 3),
                        "receiver_closed_by_server": receiver.closed_by_server,
                        "receiver_last_rx_s": round(receiver.last_rx - start, 3),
                        "highest_seq_from_sender": highest}) + "\n")
            section = report[kind]
            section["lost_by_cause"] = dict(causes.most_common())
            section["silent"] = sum(v for k, v in causes.items() if k.startswith("SILENT"))
            section["announced"] = sum(v for k, v in causes.items()
                                       if k.startswith("announced"))
            # Compact one-line strings: they are for reading.
            section["lost_by_route (sender->owner->receiver node)"] = " ".join(
                f"{k}:{v}" for k, v in routes.most_common(8))
            section["lost_by_send_second"] = " ".join(
                f"{k}:{v}" for k, v in sorted(by_second.items()))
    report["node_warnings"] = {name: dict(counts.most_common(6))
                               for name, counts in said.warnings.items() if counts}
    report["silent_loss"] = {kind: report[kind]["silent"] for kind in ("room", "direct")}


def redis_evidence(port: int, log: Path) -> dict[str, Any]:
    """Redis' own account: subscribers it dropped (output buffer limits), and
    the largest client output buffer it saw recently."""
    found: dict[str, Any] = {}
    with contextlib.suppress(OSError):
        found["subscribers_dropped_in_log"] = log.read_text(errors="replace").count(
            "output buffer limits")
    cli = shutil.which("redis-cli")
    if cli:
        with contextlib.suppress(Exception):
            info = subprocess.run([cli, "-p", str(port), "INFO"], capture_output=True,
                                  text=True, timeout=10).stdout
            for name in ("client_recent_max_output_buffer",
                         "client_output_buffer_limit_disconnections"):
                if match := re.search(rf"^{name}:(\S+)", info, re.M):
                    found[name] = int(match[1])
    return found


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
    parser.add_argument("--restart-redis-at", type=float, default=None,
                        help="stop Redis at this second, start it --outage s later")
    parser.add_argument("--pause-redis-at", type=float, default=None,
                        help="CLIENT PAUSE Redis at this second for --outage s (it keeps "
                        "its connections and answers nothing)")
    parser.add_argument("--outage", type=float, default=2, help="seconds of the Redis fault")
    parser.add_argument("--quiet", type=float, default=30,
                        help="after the window, give up once nothing arrived for this long")
    parser.add_argument("--max-drain", type=float, default=300,
                        help="after the window, wait at most this long for what is owed")
    args = parser.parse_args()
    if args.command == "node":
        run_node(args.port, args.backplane)
        return
    if args.restart_redis_at is not None and args.pause_redis_at is not None:
        parser.error("one Redis fault per run: --restart-redis-at or --pause-redis-at")

    redis_port = free_port()
    workdir = Path(os.environ.get("TMPDIR", "/tmp"))
    redis_log = workdir / "soak_redis.log"
    redis_cmd = [shutil.which("redis-server") or "redis-server", "--port", str(redis_port),
                 "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
                 str(workdir)]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    redis_log.write_bytes(b"")

    def start_redis() -> None:
        # Its log says when it drops a subscriber that fell behind (output
        # buffer limits): a loss no node would otherwise see.
        with redis_log.open("ab") as log:
            procs["redis"] = subprocess.Popen(redis_cmd, stdout=log)
        wait_port(redis_port)

    def stop_redis() -> None:
        procs["redis"].terminate()
        procs["redis"].wait()

    def pause_redis(seconds: float) -> None:
        with socket.create_connection(("127.0.0.1", redis_port), timeout=5) as sock:
            sock.sendall(f"CLIENT PAUSE {int(seconds * 1000)} ALL\r\n".encode())
            sock.recv(64)

    start_redis()
    url = f"redis://127.0.0.1:{redis_port}/0"
    ports = [free_port() for _ in range(args.nodes)]
    logs = [workdir / f"soak_node{i}.log" for i in range(args.nodes)]
    files = contextlib.ExitStack()
    nodes = [subprocess.Popen([sys.executable, __file__, "node", "--port", str(p),
                               "--backplane", url],
                              stderr=files.enter_context(log.open("wb")))
             for p, log in zip(ports, logs, strict=True)]
    # Node logs are stamped with the wall clock; the driver times on its
    # monotonic one.
    offset = time.time() - time.monotonic()

    def mono_of(stamp: str) -> float:
        wall = datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        return wall - offset

    try:
        for p in ports:
            wait_port(p)
        report, run = asyncio.run(drive(args, ports, {
            "start": start_redis, "stop": stop_redis, "pause": pause_redis}))
        report["redis"] = redis_evidence(redis_port, redis_log)
    finally:
        for proc in nodes:
            proc.terminate()
        exits: list[int | str] = []
        for proc in nodes:  # a node that does not stop is a finding, not a hang here
            try:
                exits.append(proc.wait(timeout=60))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                exits.append("did not exit within 60 s of SIGTERM: killed")
        files.close()
        stop_redis()
    report["node_exits"] = exits
    attribute(report, run, read_logs(logs, mono_of), workdir / "soak_lost.jsonl")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
