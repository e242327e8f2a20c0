"""Shared plumbing for the Python benchmark clients (the "client" workload).

Here the client is the subject: it runs pinned on its own core against the
fixed bare_wsproto server, and reports its own CPU share (so throughput per
client core can be compared) as well as the server's (to show whether the
server, not the client, was the limit).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field

MAX_MESSAGE_SIZE = 16 * 2**20


@dataclass
class Options:
    url: str
    mode: str  # "echo" (small text, N connections) or "large" (binary, 1 connection)
    conns: int
    size: int
    warmup: float
    duration: float
    stat_pid: int | None
    stat_cpu: int | None
    peer_cpu: int | None


def parse_options(description: str) -> Options:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=["echo", "large"], default="echo")
    parser.add_argument("--conns", type=int, default=None)
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--stat-pid", type=int, default=None)
    parser.add_argument("--stat-cpu", type=int, default=None, help="our core, for /proc/stat")
    parser.add_argument("--peer-cpu", type=int, default=None, help="the server's core")
    a = parser.parse_args()
    large = a.mode == "large"
    return Options(
        url=f"ws://127.0.0.1:{a.port}/bench",
        mode=a.mode,
        conns=a.conns or (1 if large else 64),
        size=a.size or (2**20 if large else 64),
        warmup=a.warmup,
        duration=a.duration,
        stat_pid=a.stat_pid,
        stat_cpu=a.stat_cpu,
        peer_cpu=a.peer_cpu,
    )


def payload(opts: Options) -> str | bytes:
    """The message every connection sends: text for echo, binary for large."""
    if opts.mode == "large":
        return os.urandom(opts.size)
    return "x" * opts.size


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, all threads, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    # fields[0] is field 3 ("state"); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def core_busy_s(cpu: int) -> float:
    """Busy seconds of one core (user, nice, system, irq, softirq) from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                user, nice, system, _idle, _iowait, irq, softirq = map(int, line.split()[1:8])
                return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
    return 0.0


@dataclass
class Counter:
    """Bumped by the receiving code; the window is cut from two snapshots."""

    messages: int = 0
    bytes: int = 0
    snapshots: list[tuple[float, ...]] = field(default_factory=list)

    def snapshot(self, opts: Options) -> None:
        server = proc_cpu_s(opts.stat_pid) if opts.stat_pid else 0.0
        core = core_busy_s(opts.stat_cpu) if opts.stat_cpu is not None else 0.0
        peer = core_busy_s(opts.peer_cpu) if opts.peer_cpu is not None else 0.0
        now, cpu = time.monotonic(), time.process_time()
        self.snapshots.append((now, cpu, server, core, peer, self.messages, self.bytes))

    def report(self, client: str, opts: Options) -> None:
        (t0, c0, s0, k0, p0, m0, b0), (t1, c1, s1, k1, p1, m1, b1) = self.snapshots[-2:]
        win = t1 - t0
        result = {
            "client": client,
            "mode": opts.mode,
            "ok": m1 > m0,
            "conns": opts.conns,
            "size": opts.size,
            "window_s": round(win, 4),
            "messages": int(m1 - m0),
            "msgs_per_s": round((m1 - m0) / win, 1),
            "mb_per_s": round((b1 - b0) / win / 1e6, 2),
            "client_cpu_share": round((c1 - c0) / win, 4),
        }
        if opts.stat_pid:
            result["server_cpu_share"] = round((s1 - s0) / win, 4)
        if opts.stat_cpu is not None:
            result["core_busy_share"] = round((k1 - k0) / win, 4)
        if opts.peer_cpu is not None:
            result["peer_core_busy_share"] = round((p1 - p0) / win, 4)
        print(json.dumps(result), flush=True)
