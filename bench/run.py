"""Run the wskit benchmark side by side with its peers, in one go.

    python bench/run.py [--quick] [--only SERVER,...] [--workloads W,...]
                        [--reps N] [--out bench/results]

Method (see bench/README.md and BENCH.md): every server runs pinned to core 1
and the C load generator to core 0 (latency: both on core 0, because cross-core
wake-ups on virtual machines add tens of microseconds of noise). Each
repetition warms up, then measures a fixed window; the load generator reads the
server's utime+stime from /proc/PID/stat at the exact edges of that window, so
the CPU share needs no cross-process timing. We report medians, min-max, and
throughput per server core (throughput / CPU share), which holds up better than
raw throughput on a shared, noisy machine. Speed is only ever quoted as a ratio
between servers measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BUILD = BENCH / "build"
LOADGEN_SRC = BENCH / "loadgen.c"
LOADGEN = BUILD / "loadgen"

SERVER_CORE = "1"
LOADGEN_CORE = "0"

# Display order: the subject first, then the peers, then the ceiling.
SERVERS = ["wskit", "websockets_trio", "trio_websocket", "websockets_asyncio", "picows",
           "bare_wsproto"]
SERVER_SCRIPTS = {
    "wskit": "wskit_server.py",
    "websockets_trio": "websockets_trio.py",
    "trio_websocket": "trio_websocket.py",
    "websockets_asyncio": "websockets_asyncio.py",
    "picows": "picows_server.py",
    "bare_wsproto": "bare_wsproto.py",
}
SUBJECT = "wskit"
CEILING = "bare_wsproto"
CLIENTS = {"wskit": "wskit_client.py", "websockets_trio": "websockets_trio_client.py"}
CLIENT_SERVER = "bare_wsproto"  # the one fixed server the clients talk to

IDLE_CONNS = 5000
FANOUT_CONNS = 500

# The cluster workload (not in the default set: it needs redis-server).
CLUSTER = "cluster"
CLUSTER_SCRIPT = "wskit_cluster_server.py"
CLUSTER_CLIENT = "cluster_load.py"
CLUSTER_RECEIVERS = 100  # broadcast: receivers, round-robin over the nodes
CLUSTER_PAIRS = 32  # send-by-id: sender on the first node, partner on the last
CLUSTER_INFLIGHT = 4
CLUSTER_CONFIGS = {"1 node": 1, "2 nodes + Redis": 2}
REDIS_PUBLISH_PAYLOAD = "x" * 64


@dataclass(frozen=True)
class Workload:
    name: str
    mode: str  # loadgen --mode
    metric: str  # key in the loadgen's JSON
    unit: str
    higher_is_better: bool = True
    per_core: bool = True  # divide by the server's CPU share
    args: tuple[str, ...] = ()


WORKLOADS = {
    w.name: w
    for w in [
        Workload("echo-small", "echo", "msgs_per_s", "messages/s", args=("--conns", "64")),
        Workload("latency", "latency", "p50_us", "p50 µs", higher_is_better=False, per_core=False),
        Workload("large", "large", "mb_per_s", "MB/s", args=("--size", str(2**20))),
        Workload(
            "fan-out",
            "fanout",
            "deliveries_per_s",
            "deliveries/s",
            args=("--conns", str(FANOUT_CONNS), "--inflight", "16"),
        ),
        Workload(
            "handshakes", "handshake", "handshakes_per_s", "handshakes/s", args=("--inflight", "16")
        ),
        Workload(
            "idle", "idle", "kib_per_conn", "KiB/connection", higher_is_better=False, per_core=False
        ),
        # The client workload is driven by the Python scripts in bench/clients.
        Workload("client", "client", "msgs_per_s", "messages/s or MB/s"),
    ]
}


@dataclass(frozen=True)
class Profile:
    warmup: float
    duration: float
    reps: int


DEFAULT = Profile(warmup=1.0, duration=3.0, reps=3)
QUICK = Profile(warmup=0.3, duration=1.0, reps=1)


@dataclass
class Row:
    """One (workload, server) cell: its repetitions and their summary."""

    workload: str
    server: str
    status: str = "ok"  # ok | skipped | failed
    reason: str = ""
    reps: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    variant: str = ""  # client workload: "echo" or "large"


# ---------------------------------------------------------------- environment


def build_loadgen() -> None:
    BUILD.mkdir(exist_ok=True)
    if LOADGEN.exists() and LOADGEN.stat().st_mtime >= LOADGEN_SRC.stat().st_mtime:
        return
    cmd = ["cc", "-O2", "-Wall", "-o", str(LOADGEN), str(LOADGEN_SRC)]
    print("building:", shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def child_env() -> dict[str, str]:
    # Servers and clients import wskit from this checkout, installed or not.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def machine_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    cc = subprocess.run(["cc", "--version"], capture_output=True, text=True).stdout
    return {
        "nproc": os.cpu_count(),
        "model_name": model,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "cc": cc.splitlines()[0] if cc else "",
    }


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for dist in ["websockets", "trio", "wsproto", "trio-websocket", "h11", "picows"]:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    # wskit may be a bare checkout: ask a child process with the servers' path.
    probe = "import wskit; print(getattr(wskit, '__version__', '?'), wskit.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=child_env()
    )
    versions["wskit"] = out.stdout.strip() if out.returncode == 0 else None
    git = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True
    )
    versions["repo"] = git.stdout.strip() or None
    return versions


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerFailed(Exception):
    pass


class Server:
    """A benchmark server process, pinned to a core, logging to a file."""

    def __init__(self, name: str, core: str, tag: str) -> None:
        self.name = name
        self.port = free_port()
        logs = BUILD / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"{tag}-{name}.log"
        script = BENCH / "servers" / SERVER_SCRIPTS[name]
        cmd = ["taskset", "-c", core, sys.executable, str(script), "--port", str(self.port)]
        with open(self.log_path, "w") as log:
            # A file, not a pipe: a chatty server must never block on its log.
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env(), cwd=REPO
            )

    @property
    def pid(self) -> int:
        return self.proc.pid  # taskset execs the server: same pid

    def log_tail(self) -> str:
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else f"no output (exit code {self.proc.returncode})"

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerFailed(f"exited at start: {self.log_tail()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                break
            time.sleep(0.05)
        else:
            raise ServerFailed(f"not listening after {timeout:.0f} s")
        # Same behaviour as every other server, or no numbers at all.
        result = run_loadgen(["--mode", "check", "--port", str(self.port)], LOADGEN_CORE, 30)
        if not result.get("ok"):
            raise ServerFailed(f"functional check failed: {result.get('error')}")

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise ServerFailed("no VmRSS")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def running(name: str, core: str, tag: str) -> Iterator[Server]:
    server = Server(name, core, tag)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def last_json(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.strip().splitlines()):
        with contextlib.suppress(ValueError):
            obj = json.loads(line)
            if isinstance(obj, dict):
                return obj
    return {"ok": False, "error": f"no JSON in output: {stdout.strip()[-200:]!r}"}


def run_loadgen(args: list[str], core: str, timeout: float) -> dict[str, Any]:
    cmd = ["taskset", "-c", core, str(LOADGEN), *args]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"load generator timed out after {timeout:.0f} s"}
    return last_json(out.stdout)


# ---------------------------------------------------------------- workloads


def timing_args(p: Profile) -> list[str]:
    return ["--warmup", str(p.warmup), "--duration", str(p.duration)]


def run_server_workload(w: Workload, name: str, p: Profile) -> Row:
    row = Row(w.name, name)
    core = LOADGEN_CORE if w.name == "latency" else SERVER_CORE
    try:
        if w.name == "idle":
            for _ in range(p.reps):
                # A fresh server per repetition: Python rarely returns freed
                # memory to the OS, so a reused one would understate growth.
                with running(name, core, w.name) as server:
                    row.reps.append(idle_rep(server))
        else:
            with running(name, core, w.name) as server:
                for _ in range(p.reps):
                    args = ["--mode", w.mode, "--port", str(server.port), *w.args]
                    args += [*timing_args(p), "--stat-pid", str(server.pid)]
                    args += ["--stat-cpu", core]
                    result = run_loadgen(args, LOADGEN_CORE, p.warmup + p.duration + 120)
                    if server.proc.poll() is not None:
                        result = {"ok": False, "error": f"server died: {server.log_tail()}"}
                        row.reps.append(result)
                        break
                    row.reps.append(result)
                    time.sleep(0.2)  # let the last closes settle before the next opens
    except ServerFailed as exc:
        row.status, row.reason = "skipped", str(exc)
        return row
    summarize(row, w.metric, w.per_core, "server_cpu_share")
    return row


def idle_rep(server: Server) -> dict[str, Any]:
    time.sleep(0.3)  # let the check connections finish closing
    base = server.rss_kib()
    cmd = ["taskset", "-c", LOADGEN_CORE, str(LOADGEN), "--mode", "idle"]
    cmd += ["--conns", str(IDLE_CONNS), "--port", str(server.port)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    ready = proc.stdout.readline()  # printed once every connection is open
    result: dict[str, Any]
    if '"ready"' in ready:
        time.sleep(0.5)  # let the server settle what each handshake started
        loaded = server.rss_kib()
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        result = last_json(proc.stdout.read())
        result.update(
            rss_base_kib=base,
            rss_loaded_kib=loaded,
            kib_per_conn=round((loaded - base) / IDLE_CONNS, 2),
        )
    else:
        result = last_json(ready + proc.stdout.read())
        result["ok"] = False
    proc.stdin.close()
    proc.wait(60)
    return result


def run_client_workload(name: str, variant: str, p: Profile) -> Row:
    row = Row("client", name, variant=variant)
    try:
        # Roles swap: the Python client is the subject, on core 1; the fixed
        # server takes core 0.
        with running(CLIENT_SERVER, LOADGEN_CORE, "client") as server:
            for _ in range(p.reps):
                script = BENCH / "clients" / CLIENTS[name]
                cmd = ["taskset", "-c", SERVER_CORE, sys.executable, str(script)]
                cmd += ["--mode", variant, "--port", str(server.port), *timing_args(p)]
                cmd += ["--stat-pid", str(server.pid), "--stat-cpu", SERVER_CORE]
                cmd += ["--peer-cpu", LOADGEN_CORE]
                try:
                    out = subprocess.run(
                        cmd,
                        capture_output=True,
                        text=True,
                        env=child_env(),
                        timeout=p.warmup + p.duration + 60,
                    )
                except subprocess.TimeoutExpired:
                    row.reps.append({"ok": False, "error": "client timed out"})
                    continue
                result = last_json(out.stdout)
                if out.returncode != 0 or not result.get("ok"):
                    err = out.stderr.strip().splitlines()
                    result = {"ok": False, "error": err[-1] if err else result.get("error")}
                row.reps.append(result)
    except ServerFailed as exc:
        row.status, row.reason = "skipped", f"{CLIENT_SERVER} server: {exc}"
        return row
    if not any(r.get("ok") for r in row.reps):
        row.status, row.reason = "skipped", str(row.reps[0].get("error")) if row.reps else ""
        return row
    metric = "mb_per_s" if variant == "large" else "msgs_per_s"
    summarize(row, metric, True, "client_cpu_share")
    return row


def summarize(row: Row, metric: str, per_core: bool, share_key: str) -> None:
    """Medians over the good repetitions; `share_key` names the subject's CPU share."""
    good = [r for r in row.reps if r.get("ok") and metric in r]
    errors = [r.get("error") for r in row.reps if not r.get("ok")]
    if not good:
        row.status, row.reason = "failed", str(errors[0] if errors else "no result")
        return

    def med(key: str) -> float | None:
        vals = [float(r[key]) for r in good if key in r]
        return statistics.median(vals) if vals else None

    values = [float(r[metric]) for r in good]
    s: dict[str, Any] = {
        "metric": metric,
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "failed_reps": len(errors),
        "first_error": errors[0] if errors else None,
        "cpu_share": med(share_key),
        "p99_us": med("p99_us"),
        "server_cpu_share": med("server_cpu_share"),
        "loadgen_cpu_share": med("loadgen_cpu_share"),
        # The other side's core: the load generator's, or for *client* the
        # fixed server's. When it is saturated, the subject waits on it.
        "peer_core_busy": med("peer_core_busy_share"),
        "steal_share": med("core_steal_share"),
    }
    shares = [float(r.get(share_key) or 0) for r in good]
    if per_core and all(shares):
        s["per_core"] = statistics.median(v / sh for v, sh in zip(values, shares, strict=True))
    # Time the subject's core spent on anything else: other tenants, the
    # harness, interrupts. Latency shares its core with the load generator.
    if row.workload != "latency" and all("core_busy_share" in r for r in good):
        s["other_share"] = statistics.median(
            max(0.0, float(r["core_busy_share"]) - float(r.get(share_key) or 0)) for r in good
        )
    if any(r.get("close_missing") for r in good):
        missing = sum(int(r["close_missing"]) for r in good)
        total = sum(float(r["handshakes_per_s"]) * float(r["window_s"]) for r in good)
        s["close_missing_share"] = missing / max(total, 1.0)
    row.summary = {k: v for k, v in s.items() if v is not None}


# ---------------------------------------------------------------- cluster


def start_pinned(cmd: list[str], core: str, log_name: str) -> subprocess.Popen[bytes]:
    logs = BUILD / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / log_name, "w") as log:
        return subprocess.Popen(
            ["taskset", "-c", core, *cmd],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env(),
            cwd=REPO,
        )


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerFailed(f"exited at start (code {proc.returncode}): see {BUILD / 'logs'}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise ServerFailed(f"port {port} not listening after {timeout:.0f} s")


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_redis(core: str) -> tuple[subprocess.Popen[bytes], int]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise ServerFailed("redis-server not found (Debian: apt-get install redis-server)")
    port = free_port()
    cmd = [
        exe,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(BUILD),
    ]
    proc = start_pinned(cmd, core, "cluster-redis.log")
    wait_port(port, proc)
    return proc, port


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_cluster_workload(p: Profile) -> list[Row]:
    """Broadcast and send-by-id on one plain node and on 2 nodes + Redis; Redis' PUBLISH.

    Every server process (the nodes and redis-server) shares core 1 and the
    Python load client runs on core 0, so *per core* is deliveries per core
    of server-side work, summed over the processes, comparable between the
    configurations.
    """
    rows: list[Row] = []
    for label, nodes in CLUSTER_CONFIGS.items():
        procs: list[subprocess.Popen[bytes]] = []
        mode_rows = [Row(CLUSTER, label, variant=v) for v in ("broadcast", "direct")]
        try:
            extra: list[str] = []
            if nodes > 1:
                redis, redis_port = start_redis(SERVER_CORE)
                procs.append(redis)
                extra = ["--backplane", f"redis://127.0.0.1:{redis_port}/0"]
            ports = [free_port() for _ in range(nodes)]
            script = str(BENCH / "servers" / CLUSTER_SCRIPT)
            nodes_procs = [
                start_pinned(
                    [sys.executable, script, "--port", str(port), *extra],
                    SERVER_CORE,
                    f"cluster-{nodes}-node{i}.log",
                )
                for i, port in enumerate(ports)
            ]
            procs += nodes_procs
            for port, proc in zip(ports, nodes_procs, strict=True):
                wait_port(port, proc)
            pids = ",".join(str(proc.pid) for proc in procs)
            for row in mode_rows:
                for _ in range(p.reps):
                    cmd = [
                        sys.executable,
                        str(BENCH / "clients" / CLUSTER_CLIENT),
                        "--mode",
                        row.variant,
                        "--ports",
                        ",".join(map(str, ports)),
                        "--receivers",
                        str(CLUSTER_RECEIVERS),
                        "--pairs",
                        str(CLUSTER_PAIRS),
                        "--inflight",
                        str(CLUSTER_INFLIGHT),
                        *timing_args(p),
                        "--stat-pids",
                        pids,
                    ]
                    try:
                        out = subprocess.run(
                            ["taskset", "-c", LOADGEN_CORE, *cmd],
                            capture_output=True,
                            text=True,
                            env=child_env(),
                            timeout=p.warmup + p.duration + 90,
                        )
                        result = last_json(out.stdout)
                        if out.returncode != 0:
                            err = out.stderr.strip().splitlines()
                            result = {"ok": False, "error": err[-1] if err else "client failed"}
                    except subprocess.TimeoutExpired:
                        result = {"ok": False, "error": "client timed out"}
                    row.reps.append(result)
                summarize(row, "deliveries_per_s", True, "server_cpu_share")
        except ServerFailed as exc:
            for row in mode_rows:
                row.status, row.reason = "skipped", str(exc)
        finally:
            stop_all(procs)
        rows += mode_rows
    rows.append(redis_publish_row(p))
    return rows


def redis_publish_row(p: Profile) -> Row:
    """redis-benchmark's PUBLISH rate on this machine: the ceiling for a backplane."""
    row = Row(CLUSTER, "redis-benchmark PUBLISH", variant="publish")
    bench_exe = shutil.which("redis-benchmark")
    if bench_exe is None:
        row.status, row.reason = "skipped", "redis-benchmark not found (Debian: redis-tools)"
        return row
    try:
        redis, port = start_redis(SERVER_CORE)
    except ServerFailed as exc:
        row.status, row.reason = "skipped", str(exc)
        return row
    try:
        # `-t publish` is not one of redis-benchmark's built-in tests, so the
        # command is given explicitly: 50 clients, one command in flight each,
        # a 64-byte message to a channel nobody subscribes to.
        n = max(20_000, int(40_000 * p.duration))
        cmd = [
            "taskset",
            "-c",
            LOADGEN_CORE,
            bench_exe,
            "-p",
            str(port),
            "-c",
            "50",
            "-n",
            str(n),
            "--csv",
            "publish",
            "bench",
            REDIS_PUBLISH_PAYLOAD,
        ]
        for _ in range(p.reps):
            t0, cpu0 = time.perf_counter(), cpu_seconds(redis.pid)
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            elapsed, cpu = time.perf_counter() - t0, cpu_seconds(redis.pid) - cpu0
            lines = [ln for ln in out.stdout.splitlines() if ln.startswith('"publish')]
            if not lines:
                row.reps.append({"ok": False, "error": out.stderr.strip()[-200:] or "no CSV"})
                continue
            cells = [c.strip('"') for c in lines[-1].split(",")]
            row.reps.append(
                {
                    "ok": True,
                    "deliveries_per_s": float(cells[1]),
                    "p50_us": float(cells[4]) * 1000,
                    "p99_us": float(cells[6]) * 1000,
                    "server_cpu_share": cpu / elapsed,
                    "command": shlex.join(cmd[3:]),
                }
            )
    finally:
        stop_all([redis])
    summarize(row, "deliveries_per_s", True, "server_cpu_share")
    return row


def render_cluster(rows: list[Row]) -> list[str]:
    def med(r: Row, key: str) -> float | None:
        vals = [float(x[key]) for x in r.reps if x.get("ok") and x.get(key) is not None]
        return statistics.median(vals) if vals else None

    out = [
        "",
        f"## {CLUSTER}: deliveries/s, higher is better",
        "",
        f"*broadcast*: one sender on the first node, {CLUSTER_RECEIVERS} receivers round-robin "
        f"over the nodes, {CLUSTER_INFLIGHT} broadcasts in flight. *direct*: "
        f"{CLUSTER_PAIRS} senders on the first node each send by id to a partner on the last "
        f"node, {CLUSTER_INFLIGHT} in flight each. Latency is send to receive, for receivers "
        "on the last node (cross-node with 2 nodes). Servers and redis-server share core 1 "
        "(*server CPU* is their sum, *per core* divides by it); the Python load client runs "
        "on core 0 (*client CPU*). *publish* is redis-benchmark's PUBLISH (50 clients, "
        "64 bytes, no subscriber) against a fresh redis-server on core 1: the ceiling for "
        "what a backplane can publish.",
        "",
        "| setup | traffic | median | min-max | per core | server CPU | client CPU | "
        "p50 µs | p99 µs | ÷ 1 node (per core) |",
        "|" + "---|" * 10,
    ]
    base = {r.variant: key_figure(r, WORKLOADS["fan-out"]) for r in rows if r.server == "1 node"}
    for r in rows:
        if r.status != "ok":
            out.append(f"| {r.server} | {r.variant} | {r.status}: {r.reason} |" + " |" * 7)
            continue
        s = r.summary
        fig, b = key_figure(r, WORKLOADS["fan-out"]), base.get(r.variant)
        out.append(
            "| "
            + " | ".join(
                [
                    r.server,
                    r.variant,
                    fmt(s["median"]),
                    f"{fmt(s['min'])}-{fmt(s['max'])}" if s["n"] > 1 else "",
                    fmt(s.get("per_core")),
                    pct(s.get("cpu_share")),
                    pct(med(r, "client_cpu_share")),
                    fmt(med(r, "p50_us")),
                    fmt(med(r, "p99_us")),
                    f"{fig / b:.2f}" if fig and b and r.variant != "publish" else "—",
                ]
            )
            + " |"
        )
    return out


# ---------------------------------------------------------------- report


def fmt(x: float | None) -> str:
    if x is None:
        return "—"
    if abs(x) >= 10_000:
        return f"{x / 1000:.1f}k"
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}" if abs(x) >= 1 else f"{x:.2f}"


def pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.0%}"


def key_figure(row: Row | None, w: Workload) -> float | None:
    """The figure ratios are taken on: per core where it exists."""
    if row is None or row.status != "ok":
        return None
    value = row.summary.get("per_core" if w.per_core else "median")
    return float(value) if value is not None else None


def diagnose(r: Row, w: Workload) -> tuple[str, list[str]]:
    """Flags for the figure cell and notes explaining them."""
    s, flags, notes = r.summary, "", []
    if s.get("failed_reps"):
        flags += " ⚠"
        notes.append(f"⚠ {s['failed_reps']} repetition(s) failed: {s['first_error']}")
    if "close_missing_share" in s:
        flags += " †"
        notes.append(
            f"† the server closed TCP without answering the client's close frame in "
            f"{s['close_missing_share']:.0%} of cycles (counted: the server did the work)"
        )
    if s.get("loadgen_cpu_share", 0.0) > 0.8:
        flags += " ‡"
        notes.append(f"‡ the load generator used {s['loadgen_cpu_share']:.0%} of its core")
    share, other = s.get("cpu_share"), s.get("other_share", 0.0)
    if other > 0.1:
        notes.append(
            f"other work took {other:.0%} of the measured process's core "
            f"(steal {s.get('steal_share', 0.0):.0%}); trust *per core* over the median"
        )
    if w.per_core and share is not None and share + other < 0.85:
        why = "something outside that core limited it"
        peer_busy = s.get("peer_core_busy")
        if peer_busy is not None and peer_busy > 0.9:
            peer = "fixed server" if w.name == "client" else "load generator"
            why = f"the {peer}'s core was {peer_busy:.0%} busy, and it waited on the {peer}"
        notes.append(f"the measured process used only {share:.0%} of its core: {why}")
    label = f"{r.workload} ({r.variant})" if r.variant else r.workload
    return flags, [f"{label} / {r.server}: {n}" for n in notes]


def render_row(r: Row, w: Workload, subject: Row | None, ceiling: Row | None) -> list[str]:
    if r.status != "ok":
        return ["|".join(["", f" {r.server} ", f" {r.status} ", *[""] * 6, ""])]
    s = r.summary
    flags, _ = diagnose(r, w)
    fig, base, subj = key_figure(r, w), key_figure(ceiling, w), key_figure(subject, w)
    cells = [
        r.server,
        fmt(s["median"]) + flags,
        f"{fmt(s['min'])}-{fmt(s['max'])}" if s["n"] > 1 else "",
        fmt(s.get("per_core")),
        pct(s.get("cpu_share")),
        pct(s.get("other_share")) if "other_share" in s else "",
        f"{fig / base:.2f}" if fig and base else "—",
        f"{subj / fig:.2f}" if fig and subj else "—",
    ]
    if w.name == "latency":
        cells[3], cells[5] = fmt(s.get("p99_us")), ""
    elif w.name == "idle":
        reps = [x for x in r.reps if x.get("ok")]
        before = statistics.median(x["rss_base_kib"] for x in reps) / 1024
        after = statistics.median(x["rss_loaded_kib"] for x in reps) / 1024
        cells[3:6] = [f"{before:.0f} → {after:.0f}", "", ""]
    elif w.name == "client":
        cells[6] = pct(s.get("server_cpu_share"))
    return ["| " + " | ".join(cells) + " |"]


HEADERS = {
    "latency": ["p50 µs", "min-max", "p99 µs", "server CPU", "", "÷ ceiling"],
    "idle": ["KiB/conn", "min-max", "RSS MiB before → with 5,000", "", "", "÷ ceiling"],
    "client": ["median", "min-max", "per core", "client CPU", "other", "server CPU"],
}
DEFAULT_HEADER = ["median", "min-max", "per core", "server CPU", "other", "÷ ceiling"]


def render(rows: list[Row], meta: dict[str, Any]) -> str:
    m = meta["machine"]
    out = [
        "# wskit benchmark",
        "",
        f"- command: `{meta['command']}`",
        f"- when: {meta['started']}; {meta['profile']}; took {meta['elapsed_s']} s",
        f"- machine: {m['nproc']} x {m['model_name']}, Linux {m['kernel']}, "
        f"Python {m['python']}, {m['cc']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        "",
        "Medians over repetitions. *per core* = figure ÷ CPU share of the process "
        "under test (the server; for *client*, the client): the figure ratios use. "
        "*other* = share of that process's core taken by anything else meanwhile. "
        f"*÷ ceiling* = row ÷ {CEILING}; *{SUBJECT} ÷* = {SUBJECT} ÷ row. "
        "For latency and memory lower is better, so there a ratio below 1 favours "
        f"{SUBJECT}. For *client*, *server CPU* is the fixed {CLIENT_SERVER} server's "
        "share: near 100% means the server, not the client, set the pace.",
    ]
    notes: list[str] = []
    if any(r.workload == CLUSTER for r in rows):
        out += render_cluster([r for r in rows if r.workload == CLUSTER])
    for wname in [w for w in WORKLOADS if any(r.workload == w for r in rows)]:
        w = WORKLOADS[wname]
        wrows = [r for r in rows if r.workload == wname]
        for variant in sorted({r.variant for r in wrows}, key=["", "echo", "large"].index):
            vrows = [r for r in wrows if r.variant == variant]
            unit = {"echo": "messages/s", "large": "MB/s"}.get(variant, w.unit)
            title = f"{wname} ({variant})" if variant else wname
            better = "higher" if w.higher_is_better else "lower"
            head = ["client" if wname == "client" else "server"]
            head += [*HEADERS.get(wname, DEFAULT_HEADER), f"{SUBJECT} ÷"]
            out += ["", f"## {title}: {unit}, {better} is better", ""]
            out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            subject = next((r for r in vrows if r.server == SUBJECT), None)
            ceiling = next((r for r in vrows if r.server == CEILING), None)
            for r in vrows:
                out += render_row(r, w, subject, ceiling)
                if r.status != "ok":
                    notes.append(f"{title} / {r.server}: {r.status}: {r.reason}")
                else:
                    notes += diagnose(r, w)[1]
    out += ["", "## Notes", ""]
    out += [f"- {n}" for n in notes] or ["- none"]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short windows, one repetition")
    ap.add_argument("--only", help=f"servers (and clients), comma-separated: {','.join(SERVERS)}")
    ap.add_argument(
        "--workloads",
        help=f"comma-separated: {','.join(WORKLOADS)}; also {CLUSTER} (needs redis-server, "
        "not in the default set)",
    )
    ap.add_argument("--reps", type=int, help="repetitions (default 3; --quick: 1)")
    ap.add_argument("--warmup", type=float, help="seconds of warm-up per repetition")
    ap.add_argument("--duration", type=float, help="seconds measured per repetition")
    ap.add_argument("--out", default=str(BENCH / "results"), help="where JSON and markdown go")
    return ap.parse_args()


def pick(value: str | None, known: list[str], what: str) -> list[str]:
    if not value:
        return known
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in known]
    if unknown:
        sys.exit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return [k for k in known if k in chosen]  # keep display order


def main() -> None:
    args = parse_args()
    base = QUICK if args.quick else DEFAULT
    p = Profile(
        warmup=args.warmup if args.warmup is not None else base.warmup,
        duration=args.duration if args.duration is not None else base.duration,
        reps=args.reps or base.reps,
    )
    servers = pick(args.only, SERVERS, "server")
    workloads = pick(args.workloads, [*WORKLOADS, CLUSTER], "workload")
    if not args.workloads:
        workloads = [w for w in workloads if w != CLUSTER]
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    build_loadgen()
    meta: dict[str, Any] = {
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "started": started.isoformat(timespec="seconds"),
        "profile": f"warm-up {p.warmup} s, window {p.duration} s, {p.reps} repetition(s)",
        "settings": {
            "warmup_s": p.warmup,
            "duration_s": p.duration,
            "reps": p.reps,
            "server_core": SERVER_CORE,
            "loadgen_core": LOADGEN_CORE,
            "idle_conns": IDLE_CONNS,
            "fanout_conns": FANOUT_CONNS,
        },
        "machine": machine_info(),
        "versions": library_versions(),
    }
    rows: list[Row] = []
    for wname in workloads:
        if wname == CLUSTER:
            rows += [progress(r) for r in run_cluster_workload(p)]
            continue
        w = WORKLOADS[wname]
        if wname == "client":
            for variant in ["echo", "large"]:
                for name in [s for s in SERVERS if s in CLIENTS and s in servers]:
                    rows.append(progress(run_client_workload(name, variant, p)))
        else:
            for name in servers:
                rows.append(progress(run_server_workload(w, name, p)))
    meta["elapsed_s"] = round(time.monotonic() - t0, 1)
    table = render(rows, meta)
    print()
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "bench-" + started.strftime("%Y%m%d-%H%M%S") + ("-quick" if args.quick else "")
    doc = {**meta, "results": [r.__dict__ for r in rows]}
    (out / f"{stem}.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / f"{stem}.md").write_text(table)
    print(f"wrote {out / stem}.json and .md in {meta['elapsed_s']} s")


def progress(row: Row) -> Row:
    label = f"{row.workload} ({row.variant})" if row.variant else row.workload
    if row.status == "ok":
        s = row.summary
        extra = f", per core {fmt(s['per_core'])}" if "per_core" in s else ""
        print(f"{label:18} {row.server:20} {fmt(s['median'])}{extra}", flush=True)
    else:
        print(f"{label:18} {row.server:20} {row.status}: {row.reason}", flush=True)
    return row


if __name__ == "__main__":
    main()
