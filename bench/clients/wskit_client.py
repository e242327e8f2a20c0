"""Benchmark client: wskit (public API only) driving N echo connections."""

from __future__ import annotations

import trio
from _common import MAX_MESSAGE_SIZE, Counter, Options, parse_options, payload

import wskit


async def main(opts: Options) -> None:
    message = payload(opts)
    counter = Counter()
    stopping = False

    class Echo(wskit.Handler):
        # One message in flight per connection, as in the server workloads.
        def on_open(self, handshake: wskit.Handshake) -> None:
            self.out.send(message)

        def on_message(self, msg: wskit.Message) -> None:
            counter.messages += 1
            counter.bytes += len(msg)
            if not stopping:
                self.out.send(message)

    settings = wskit.Settings(
        compression=None, ping_interval=None, max_message_size=MAX_MESSAGE_SIZE
    )
    async with wskit.WebSocket(Echo, settings=settings) as ws:
        for _ in range(opts.conns):
            await ws.connect(opts.url)
        await trio.sleep(opts.warmup)
        counter.snapshot(opts)
        await trio.sleep(opts.duration)
        counter.snapshot(opts)
        stopping = True
        ws.shutdown()
    counter.report("wskit", opts)


if __name__ == "__main__":
    trio.run(main, parse_options(__doc__ or ""))
