"""Soak: hold 10,000 WebSocket connections on a wskit echo server, bounded.

    python bench/soak.py [--connections 10000] [--duration 60] [--interval 5]

Starts a wskit echo server in a subprocess (so its RSS is its own), opens the
connections from this process with minimal hand-written clients (cheap:
one Trio task and one socket each), and for ``--duration`` seconds has every
client send a 64-byte message every ``--interval`` seconds and check the
echo. Prints a JSON line: connections held, messages, errors, round-trip
p50/p99 in ms, and the server's RSS (KiB) before and after. Exits non-zero
if a connection failed or an echo was wrong. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import socket
import statistics
import struct
import subprocess
import sys
import time

import trio
import trio.lowlevel

SERVER = """
import sys, wskit
settings = wskit.Settings(ping_interval=None, compression=None, max_connections=None)
wskit.listen(("127.0.0.1", int(sys.argv[1])), lambda out: out.send, settings=settings)
"""


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def masked_text(payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + body


class Stats:
    def __init__(self) -> None:
        self.open = 0
        self.messages = 0
        self.errors: list[str] = []
        self.rtts: list[float] = []


async def client(port: int, stats: Stats, interval: float, deadline: float,
                 ready: trio.Semaphore) -> None:
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError as exc:
        stats.errors.append(f"connect: {exc}")
        return
    async with stream:
        key = base64.b64encode(os.urandom(16))
        await stream.send_all(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(4096)
            if not chunk:
                stats.errors.append("closed during handshake")
                return
            data += chunk
        if not data.startswith(b"HTTP/1.1 101"):
            stats.errors.append(data.split(b"\r\n")[0].decode("latin-1"))
            return
        stats.open += 1
        ready.release()
        await trio.sleep(interval * (hash(key) % 1000) / 1000)  # spread the load
        while trio.current_time() < deadline:
            payload = os.urandom(32).hex().encode()
            sent = time.perf_counter()
            await stream.send_all(masked_text(payload))
            echo = b""
            while len(echo) < 2 + len(payload):
                chunk = await stream.receive_some(4096)
                if not chunk:
                    stats.errors.append("closed mid-soak")
                    return
                echo += chunk
            stats.rtts.append(time.perf_counter() - sent)
            if echo[2:] != payload:
                stats.errors.append("wrong echo")
                return
            stats.messages += 1
            await trio.sleep(interval)


async def soak(port: int, args: argparse.Namespace, server_pid: int) -> dict[str, object]:
    stats = Stats()
    ready = trio.Semaphore(0, max_value=args.connections)
    rss_idle = rss_kib(server_pid)
    start = trio.current_time()
    deadline = start + args.duration
    async with trio.open_nursery() as nursery:
        for _ in range(args.connections):
            nursery.start_soon(client, port, stats, args.interval, deadline, ready)
            await trio.lowlevel.checkpoint()  # let the accept queue drain as we go
        with trio.move_on_after(args.duration):
            for _ in range(args.connections):
                await ready.acquire()
        held = stats.open
        rss_held = rss_kib(server_pid)
    rtts = sorted(stats.rtts) or [0.0]
    return {
        "connections_requested": args.connections,
        "connections_held": held,
        "messages": stats.messages,
        "errors": len(stats.errors),
        "first_errors": stats.errors[:5],
        "rtt_p50_ms": round(statistics.median(rtts) * 1000, 3),
        "rtt_p99_ms": round(rtts[int(len(rtts) * 0.99) - 1 if len(rtts) > 1 else 0] * 1000, 3),
        "server_rss_kib_idle": rss_idle,
        "server_rss_kib_held": rss_held,
        "server_kib_per_connection": round((rss_held - rss_idle) / max(held, 1), 2),
        "seconds": round(trio.current_time() - start, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.connections + 100
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        for _ in range(100):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        result = trio.run(soak, port, args, server.pid)
    finally:
        server.send_signal(2)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    print(json.dumps(result))
    ok = result["errors"] == 0 and result["connections_held"] == args.connections
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
