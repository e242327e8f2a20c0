"""Benchmark client: websockets.trio driving N echo connections."""

from __future__ import annotations

import contextlib

import trio
from _common import MAX_MESSAGE_SIZE, Counter, Options, parse_options, payload
from websockets.trio.client import ClientConnection, connect


async def echo_loop(ws: ClientConnection, message: str | bytes, counter: Counter) -> None:
    # One message in flight per connection, as in the server workloads.
    while True:
        await ws.send(message)
        reply = await ws.recv()
        counter.messages += 1
        counter.bytes += len(reply)


async def main(opts: Options) -> None:
    message = payload(opts)
    counter = Counter()
    async with contextlib.AsyncExitStack() as stack:
        conns = [
            await stack.enter_async_context(
                connect(
                    opts.url,
                    compression=None,
                    ping_interval=None,
                    max_size=MAX_MESSAGE_SIZE,
                    proxy=None,
                )
            )
            for _ in range(opts.conns)
        ]
        async with trio.open_nursery() as nursery:
            for ws in conns:
                nursery.start_soon(echo_loop, ws, message, counter)
            await trio.sleep(opts.warmup)
            counter.snapshot(opts)
            await trio.sleep(opts.duration)
            counter.snapshot(opts)
            nursery.cancel_scope.cancel()
    counter.report("websockets_trio", opts)


if __name__ == "__main__":
    trio.run(main, parse_options(__doc__ or ""))
