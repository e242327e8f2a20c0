"""Benchmark server: wskit, through its public API only (see API.md).

A closure factory returns a plain callable, which wskit calls as
``on_message`` for every message; broadcasts go through ``Sender.broadcast``.
"""

from __future__ import annotations

from collections.abc import Callable

from _common import BCAST, HOST, MAX_MESSAGE_SIZE, parse_port, raise_nofile_limit

import wskit


def factory(out: wskit.Sender) -> Callable[[wskit.Message], None]:
    def on_message(msg: wskit.Message) -> None:
        if msg.is_text and msg.as_text().startswith(BCAST):
            out.broadcast(msg.as_text()[len(BCAST) :])
        else:
            out.send(msg)  # a Message goes out as it is: text stays text

    return on_message


if __name__ == "__main__":
    port = parse_port(__doc__ or "")
    raise_nofile_limit()
    wskit.listen(
        (HOST, port),
        factory,
        settings=wskit.Settings(
            compression=None,
            ping_interval=None,
            max_message_size=MAX_MESSAGE_SIZE,
            # The peers have no connection cap and the idle workload opens
            # 5,000; the contract only promises a default of >= 1,000.
            max_connections=10_000,
        ),
    )
