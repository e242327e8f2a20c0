"""Bench: a tiny load client — many connections, round trips against an echo server (ws-rs's bench).

Shows many client connections on one ``wskit.WebSocket``: ``--connections``
connections are opened concurrently; each sends a ``--size``-byte text
message, waits for its echo, and repeats ``--messages`` times, then closes.
Prints one summary line: total time, round trips per second and the latency
percentiles of the round trips.

    python examples/echo_server.py --port 3012 &
    python examples/bench.py ws://127.0.0.1:3012 --connections 100 --messages 100

Policy choices:
- One round trip at a time per connection (latency under load, not
  pipelined throughput); the load comes from the number of connections.
- Compression and keepalive are off: they would measure zlib and timers.
- Connections are opened concurrently, capped at ``--connections``; one
  that fails to open or closes early is counted and makes the exit status 1.
- This is a smoke-level tool; ``bench/`` in the repository holds the real
  benchmarks.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import trio

import wskit


class Results:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.failed = 0


def make_factory(payload: str, messages: int, results: Results) -> type[wskit.Handler]:
    class RoundTrips(wskit.Handler):
        done = 0

        def on_open(self, handshake: wskit.Handshake) -> None:
            self.sent_at = time.perf_counter()
            self.out.send(payload)

        def on_message(self, msg: wskit.Message) -> None:
            results.latencies.append(time.perf_counter() - self.sent_at)
            self.done += 1
            if self.done == messages:
                self.out.close(wskit.CloseCode.NORMAL)
            else:
                self.sent_at = time.perf_counter()
                self.out.send(payload)

        def on_close(self, code: wskit.CloseCode | int, reason: str) -> None:
            if self.done < messages:
                results.failed += 1

    return RoundTrips


async def bench(args: argparse.Namespace, results: Results) -> float:
    settings = wskit.Settings(compression=None, ping_interval=None)
    factory = make_factory("x" * args.size, args.messages, results)
    start = time.perf_counter()
    async with wskit.WebSocket(factory, settings) as ws:

        async def one() -> None:
            try:
                await ws.connect(args.url)
            except wskit.Error as err:
                results.failed += 1
                print(f"connection failed: {err}", file=sys.stderr)

        async with trio.open_nursery() as nursery:
            for _ in range(args.connections):
                nursery.start_soon(one)
    # Leaving the block waited for every connection to close.
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description="tiny WebSocket load client")
    parser.add_argument("url", nargs="?", default="ws://127.0.0.1:3012",
                        help="echo server (%(default)s)")
    parser.add_argument("--connections", type=int, default=100, help="%(default)s")
    parser.add_argument("--messages", type=int, default=100,
                        help="round trips per connection (%(default)s)")
    parser.add_argument("--size", type=int, default=64, help="message bytes (%(default)s)")
    args = parser.parse_args()

    results = Results()
    elapsed = trio.run(bench, args, results)
    trips = results.latencies
    if trips:
        ms = sorted(t * 1000 for t in trips)
        p50 = statistics.median(ms)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        print(f"{args.connections} connections x {args.messages} round trips of {args.size} "
              f"bytes: {len(trips)} in {elapsed:.2f} s = {len(trips) / elapsed:,.0f}/s; "
              f"latency p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {ms[-1]:.2f} ms", flush=True)
    if results.failed:
        print(f"{results.failed} connections failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
