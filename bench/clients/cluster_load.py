"""Load for the *cluster* workload (run by bench/run.py): asyncio + websockets.

A Python client, not bench/loadgen.c: the workload needs each connection's
cluster id (the server says ``id <n>`` first) and per-delivery latency with
connections on two ports, which the C load generator does not do. Its own CPU
share is reported (``client_cpu_share``) so a run can show it was not the
bottleneck.

    --mode broadcast: one sender on the first port keeps --inflight
      ``bcast:`` messages outstanding; --receivers clients spread round-robin
      over the ports each get every one. Figure: deliveries/s to receivers.
    --mode direct: --pairs senders on the first port each keep --inflight
      ``to:<id>:`` messages outstanding to a partner on the last port.
      Figure: deliveries/s.

Latency is send to receive on this host's clock (one process), kept for
receivers on the last port (the other node, when there are two).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect


def cpu_ticks(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Window:
    def __init__(self) -> None:
        self.on = False
        self.deliveries = 0
        self.latency: list[float] = []


async def open_conn(port: int) -> tuple[ClientConnection, int]:
    ws = await connect(
        f"ws://127.0.0.1:{port}/",
        compression=None,
        max_queue=None,
        ping_interval=None,
        max_size=2**24,
    )
    hello = str(await ws.recv())
    return ws, int(hello.split()[1])


async def broadcast(args: argparse.Namespace, win: Window) -> None:
    sender, _ = await open_conn(args.ports[0])
    receivers = [await open_conn(args.ports[i % len(args.ports)]) for i in range(args.receivers)]
    await asyncio.sleep(1.0)  # every node's view of the cluster settles
    far = args.ports[-1]
    got: dict[int, int] = {}
    slots = asyncio.Semaphore(args.inflight)

    async def receive(ws: ClientConnection, track: bool) -> None:
        async for text in ws:
            seq, stamp = str(text).split(" ")
            now = time.perf_counter()
            n = int(seq)
            got[n] = got.get(n, 0) + 1
            if got[n] == args.receivers:
                del got[n]
                slots.release()
            if win.on:
                win.deliveries += 1
                if track:
                    win.latency.append(now - float(stamp))

    async def drain_own(ws: ClientConnection) -> None:
        async for _ in ws:
            pass

    tasks = [
        asyncio.create_task(receive(ws, args.ports[i % len(args.ports)] == far))
        for i, (ws, _) in enumerate(receivers)
    ]
    tasks.append(asyncio.create_task(drain_own(sender)))

    async def send() -> None:
        seq = 0
        while True:
            await slots.acquire()
            await sender.send(f"bcast:{seq} {time.perf_counter()}")
            seq += 1

    tasks.append(asyncio.create_task(send()))
    await measure(args, win)
    for t in tasks:
        t.cancel()
    for ws, _ in [(sender, 0), *receivers]:
        await ws.close()


async def direct(args: argparse.Namespace, win: Window) -> None:
    senders = [await open_conn(args.ports[0]) for _ in range(args.pairs)]
    partners = [await open_conn(args.ports[-1]) for _ in range(args.pairs)]
    await asyncio.sleep(1.0)
    tasks = []
    for (s, _), (r, rid) in zip(senders, partners, strict=True):
        slots = asyncio.Semaphore(args.inflight)

        async def receive(ws: ClientConnection, slots: asyncio.Semaphore) -> None:
            async for text in ws:
                now = time.perf_counter()
                slots.release()
                if win.on:
                    win.deliveries += 1
                    win.latency.append(now - float(str(text).split(" ")[1]))

        async def send(ws: ClientConnection, rid: int, slots: asyncio.Semaphore) -> None:
            seq = 0
            while True:
                await slots.acquire()
                await ws.send(f"to:{rid}:{seq} {time.perf_counter()}")
                seq += 1

        async def drain(ws: ClientConnection) -> None:
            async for _ in ws:
                pass

        tasks += [
            asyncio.create_task(receive(r, slots)),
            asyncio.create_task(send(s, rid, slots)),
            asyncio.create_task(drain(s)),
        ]
    await measure(args, win)
    for t in tasks:
        t.cancel()
    for ws, _ in [*senders, *partners]:
        await ws.close()


async def measure(args: argparse.Namespace, win: Window) -> None:
    await asyncio.sleep(args.warmup)
    pids = [os.getpid(), *args.stat_pids]
    cpu0 = [cpu_ticks(p) for p in pids]
    t0 = time.perf_counter()
    win.on = True
    await asyncio.sleep(args.duration)
    win.on = False
    elapsed = time.perf_counter() - t0
    cpu1 = [cpu_ticks(p) for p in pids]
    shares = [(b - a) / elapsed for a, b in zip(cpu0, cpu1, strict=True)]
    lat = sorted(win.latency)
    result: dict[str, Any] = {
        "ok": win.deliveries > 0,
        "mode": args.mode,
        "window_s": round(elapsed, 3),
        "deliveries_per_s": win.deliveries / elapsed,
        "client_cpu_share": shares[0],
        "server_cpu_shares": shares[1:],
        "server_cpu_share": sum(shares[1:]),
        "p50_us": lat[len(lat) // 2] * 1e6 if lat else None,
        "p99_us": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e6 if lat else None,
    }
    if not result["ok"]:
        result["error"] = "no deliveries in the window"
    args.result = result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mode", choices=["broadcast", "direct"], required=True)
    ap.add_argument("--ports", type=lambda s: [int(p) for p in s.split(",")], required=True)
    ap.add_argument("--receivers", type=int, default=100)
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--inflight", type=int, default=4)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--stat-pids", type=lambda s: [int(p) for p in s.split(",") if p], default=[])
    args = ap.parse_args()
    win = Window()
    run = broadcast if args.mode == "broadcast" else direct
    asyncio.run(run(args, win))
    print(json.dumps(args.result))


if __name__ == "__main__":
    main()
