"""The room service the cluster room tests serve on every node
(``wskit serve tests.cluster_rooms:Chat --rooms --backplane …``).

Every answer names the node that owns the room (``ctx.comms.node``), so a
test sees where the callbacks ran. Commands: ``say T`` (to everyone),
``others T`` (``Except`` the sender), ``to ID,ID T`` (a list), ``timer S``,
``count`` (the room's state), ``whoami``, ``kick ID``.

With ``CHAT_STATE_DIR`` set, the count is saved there by ``on_persist`` and
loaded by ``__init__``: a room re-created on another node goes on counting.
"""

from __future__ import annotations

import os
from pathlib import Path

import wskit


class Chat(wskit.RoomService):
    def __init__(self, room_id: str, ctx: wskit.RoomContext) -> None:
        super().__init__(room_id, ctx)
        self.node = ctx.comms.node
        self.count = 0
        state = self._state_file()
        if state is not None and state.exists():
            self.count = int(state.read_text())

    def _state_file(self) -> Path | None:
        folder = os.environ.get("CHAT_STATE_DIR")
        return Path(folder) / self.room_id if folder else None

    def on_persist(self, ctx: wskit.RoomContext) -> None:
        state = self._state_file()
        if state is not None:
            state.write_text(str(self.count))

    def on_join(self, client: wskit.ClientId, ctx: wskit.RoomContext) -> None:
        assert client.handshake is not None
        name = client.handshake.request.query.get("name", ["?"])[0]
        ctx.send(wskit.Everyone, f"join {name} {int(client)} on {self.node}")

    def on_message(self, client: wskit.ClientId, msg: wskit.Message,
                   ctx: wskit.RoomContext) -> None:
        command, _, rest = str(msg).partition(" ")
        if command == "say":
            ctx.send(wskit.Everyone, f"{int(client)}: {rest}")
        elif command == "others":
            ctx.send(wskit.Except(client), f"others {rest}")
        elif command == "to":
            ids, _, text = rest.partition(" ")
            ctx.send([int(i) for i in ids.split(",")], f"to {text}")
        elif command == "timer":
            ctx.set_timer(float(rest))
        elif command == "count":
            self.count += 1
            ctx.send(client, f"count {self.count} on {self.node}")
        elif command == "kick":
            ctx.close(int(rest), 4000, "kicked")
        elif command == "whoami":
            ctx.send(client, f"me {int(client)} owner {self.node}")

    def on_timer(self, ctx: wskit.RoomContext) -> None:
        ctx.send(wskit.Everyone, f"timer on {self.node}")

    def on_leave(self, client: wskit.ClientId, ctx: wskit.RoomContext) -> None:
        ctx.send(wskit.Everyone, f"left {int(client)} {int(client.close_code or 0)}")
