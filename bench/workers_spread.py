"""How ``--workers N`` spreads connections: ``SO_REUSEPORT`` against one shared socket.

The figure behind the choice in ``wskit/_supervisor.py`` (and the table in
``docs/topics/workers.md``): a supervisor with N workers, each answering
with its pid; C connections opened one after another and held open; how
many each worker got. Run with the repository's virtualenv:

    .venv/bin/python bench/workers_spread.py --workers 2 4 --connections 200 --runs 3

Not a speed figure: nothing is timed. Linux only (elsewhere ``SO_REUSEPORT``
does not spread connections, and the supervisor always shares one socket).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from websockets.sync.client import connect

APP = """
import os
import wskit

def pid(out):
    return lambda msg: out.send(str(os.getpid()))
"""

SUPERVISOR = """
import sys
from wskit._supervisor import Supervisor, open_sockets

workers, port, reuse_port = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "reuseport"
sockets = open_sockets("127.0.0.1", port, reuse_port=reuse_port)
command = [sys.executable, "-m", "wskit", "serve", "spread_app:pid", "--log-level", "warning"]
sys.exit(Supervisor(command, workers, sockets).run())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def spread(folder: Path, mode: str, workers: int, connections: int) -> list[int]:
    """Connections held by each worker, fewest first."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "supervisor.py", str(workers), str(port), mode],
                            cwd=folder)
    try:
        seen: set[str] = set()
        deadline = time.monotonic() + 60
        while len(seen) < workers:  # every worker is up before we count
            if time.monotonic() > deadline:
                raise SystemExit(f"{mode}: only {len(seen)} of {workers} workers answered")
            with contextlib.suppress(OSError), \
                    connect(f"ws://127.0.0.1:{port}", proxy=None, open_timeout=10) as ws:
                ws.send("?")
                seen.add(str(ws.recv(timeout=10)))
            time.sleep(0.05)
        counts: Counter[str] = Counter()
        with contextlib.ExitStack() as held:
            for _ in range(connections):
                ws = held.enter_context(connect(f"ws://127.0.0.1:{port}", proxy=None))
                ws.send("?")
                counts[str(ws.recv(timeout=10))] += 1
        return sorted(counts.get(pid, 0) for pid in seen)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "spread_app.py").write_text(APP)
        (folder / "supervisor.py").write_text(SUPERVISOR)
        for workers in args.workers:
            for mode in ("reuseport", "shared"):
                runs = [spread(folder, mode, workers, args.connections)
                        for _ in range(args.runs)]
                print(f"{workers} workers, {mode:9}, {args.connections} held connections "
                      f"per worker: {'  '.join('/'.join(map(str, r)) for r in runs)}",
                      flush=True)


if __name__ == "__main__":
    main()
