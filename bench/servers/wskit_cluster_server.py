"""Benchmark server for the *cluster* workload: wskit, optionally on a backplane.

Says ``id <connection_id>`` to each client when it opens; then a text message
``bcast:<payload>`` goes to every client on every node (``Sender.broadcast``),
``to:<id>:<payload>`` goes to the client with that id wherever it is
(``Comms.send``), anything else is echoed. Without ``--backplane`` it is one
plain node (the baseline); with it, several of these share one Redis.
"""

from __future__ import annotations

import argparse

from _common import BCAST, HOST, MAX_MESSAGE_SIZE, raise_nofile_limit

import wskit

TO = "to:"


class Relay(wskit.Handler):
    def on_open(self, handshake: wskit.Handshake) -> None:
        self.out.send(f"id {self.out.connection_id}")

    def on_message(self, msg: wskit.Message) -> None:
        text = msg.as_text() if msg.is_text else ""
        if text.startswith(BCAST):
            self.out.broadcast(text[len(BCAST) :])
        elif text.startswith(TO):
            target, _, payload = text[len(TO) :].partition(":")
            self.out.comms.send(int(target), payload)
        else:
            self.out.send(msg)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backplane", default=None, help="redis://host:port/db")
    args = parser.parse_args()
    raise_nofile_limit()
    wskit.listen(
        (HOST, args.port),
        Relay,
        settings=wskit.Settings(
            compression=None,
            ping_interval=None,
            max_message_size=MAX_MESSAGE_SIZE,
            max_connections=10_000,
            backplane=args.backplane,
        ),
    )
