"""The application every node of the cluster tests serves (``wskit serve
tests.cluster_node:Node --backplane …``): commands in, answers out.

- ``id`` → ``id:<connection_id>``
- ``to <id> <text>`` → ``comms.send(id, text)``; a failure that raises comes
  back as ``error:<KIND>:<id>``, one reported later (``comms.on_error``) as
  ``late:<KIND>:<id>`` to the client that sent last
- ``all <text>`` → ``out.broadcast(text)``
- ``ids`` → ``ids:<JSON list of comms.ids>``
- ``health`` → ``health:<comms.health>``
"""

from __future__ import annotations

import contextlib
import json

import wskit


class Node(wskit.Handler):
    last_sender: wskit.Sender | None = None

    def on_open(self, handshake: wskit.Handshake) -> None:
        self.out.comms.on_error = Node.report

    @staticmethod
    def report(err: wskit.Error) -> None:
        if Node.last_sender is not None:
            with contextlib.suppress(wskit.Error):
                Node.last_sender.send(f"late:{err.kind.name}:{err.connection_id}")

    def on_message(self, msg: wskit.Message) -> None:
        command, _, rest = str(msg).partition(" ")
        comms = self.out.comms
        if command == "id":
            self.out.send(f"id:{self.out.connection_id}")
        elif command == "to":
            target, _, text = rest.partition(" ")
            Node.last_sender = self.out
            try:
                comms.send(int(target), text)
            except wskit.Error as err:
                self.out.send(f"error:{err.kind.name}:{err.connection_id}")
        elif command == "all":
            self.out.broadcast(rest)
        elif command == "ids":
            self.out.send("ids:" + json.dumps(sorted(comms.ids)))
        elif command == "health":
            self.out.send(f"health:{comms.health}")
