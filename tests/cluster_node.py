"""The application every node of the cluster tests serves (``wskit serve
tests.cluster_node:Node --backplane …``): commands in, answers out.

- ``id`` → ``id:<connection_id>``
- ``to <id> <text>`` → ``comms.send(id, text)``; a failure that raises comes
  back as ``error:<KIND>:<id>``, one reported later (``comms.on_error``) as
  ``late:<KIND>:<id>`` to the client that sent last (``late:<KIND>:None
  <message>`` for an error that names no client)
- ``room <room> <recipient> <text>`` → ``comms.room(room).send(recipient,
  text)``, the recipient written ``*`` (``Everyone``), ``-1,2``
  (``Except(1, 2)``), ``1,2`` (a list) or ``=1`` (one id); failures as for
  ``to``
- ``all <text>`` → ``out.broadcast(text)``
- ``ids`` → ``ids:<JSON list of comms.ids>``
- ``rooms`` → ``rooms:<JSON list of comms.rooms>``
- ``members <room>`` → ``members:<JSON list of comms.room(room).clients>``
- ``health`` → ``health:<comms.health>``
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import wskit


def recipient(text: str) -> Any:
    if text == "*":
        return wskit.Everyone
    if text.startswith("-"):
        return wskit.Except(int(i) for i in text[1:].split(","))
    if text.startswith("="):
        return int(text[1:])
    return [int(i) for i in text.split(",")]


class Node(wskit.Handler):
    last_sender: wskit.Sender | None = None

    def on_open(self, handshake: wskit.Handshake) -> None:
        self.out.comms.on_error = Node.report

    @staticmethod
    def report(err: wskit.Error) -> None:
        if Node.last_sender is not None:
            what = f"late:{err.kind.name}:{err.connection_id}"
            if err.connection_id is None:
                what += f" {err}"
            with contextlib.suppress(wskit.Error):
                Node.last_sender.send(what)

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
        elif command == "room":
            room, to, text = rest.split(" ", 2)
            Node.last_sender = self.out
            try:
                comms.room(room).send(recipient(to), text)
            except wskit.Error as err:
                self.out.send(f"error:{err.kind.name}:{err.connection_id}")
        elif command == "rooms":
            self.out.send("rooms:" + json.dumps(sorted(comms.rooms)))
        elif command == "members":
            self.out.send("members:" + json.dumps(list(comms.room(rest).clients)))
        elif command == "all":
            self.out.broadcast(rest)
        elif command == "ids":
            self.out.send("ids:" + json.dumps(sorted(comms.ids)))
        elif command == "health":
            self.out.send(f"health:{comms.health}")
