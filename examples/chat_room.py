"""Chat rooms: Jamsocket's chat service as a wskit room, with its page on ``/``.

Shows a ``wskit.RoomService`` with per-client state (nicknames) and room
state (recent history), the three kinds of recipients (one client,
``wskit.Everyone``, ``wskit.Except(client)``), and a ``wskit.Rooms``
subclass whose ``on_request`` hook serves the page and checks origins.

Open ``http://127.0.0.1:3012/`` (the room ``lobby``) or
``http://127.0.0.1:3012/#kitchen`` (the room ``kitchen``) in two browsers;
the page connects to ``/ws/{room}``. A newcomer gets a welcome message and
the last lines said; the others see ``… joined``. ``/nick NAME`` changes
your name (everyone sees it); leaving is announced.

Policy choices:
- Names: ``user{id}`` until ``/nick``; 1-24 letters, digits, ``_`` or ``-``,
  unique in the room. A bad or taken name is refused to its sender only.
- Text only, 2 KiB per line (``max_message_size``): a chat line never needs
  more; a binary message closes that client with 1003.
- History: the room keeps the last 20 lines for newcomers; it lives as long
  as the room, which is kept 30 s after its last client left (``grace``),
  so a reload finds it.
- Same-origin only: a browser sends ``Origin``, and a page from another
  site must not join in the visitor's name (cross-site WebSocket
  hijacking): an ``Origin`` that is not ``http(s)://<Host>`` gets 403.
  Clients that send no ``Origin`` (scripts, not browsers) are allowed.
- Slow readers are disconnected (1008) once 64 KiB wait for them: a chat
  must not hold memory for a stalled tab.
- Ctrl-C (SIGINT) or SIGTERM closes everyone with 1001 and exits 0.

    python examples/chat_room.py --port 3012     # then open http://127.0.0.1:3012/
"""

from __future__ import annotations

import argparse
import collections
import logging
import re

import wskit

log = logging.getLogger("chat_room")

NAME = re.compile(r"[A-Za-z0-9_-]{1,24}")
HISTORY = 20

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wskit chat rooms</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 40em; margin: 2em auto; }
  #messages { list-style: none; padding: 0; min-height: 10em; border: 1px solid #ccc; }
  #messages li { padding: 0.2em 0.5em; border-bottom: 1px solid #eee; }
  #form { display: flex; gap: 0.5em; margin-top: 0.5em; }
  #input { flex: 1; }
</style>
</head>
<body>
<h1>Room <span id="room"></span></h1>
<p>Status: <span id="status">connecting</span> &middot; <code>/nick NAME</code> to pick a
name &middot; another room: add <code>#name</code> to the address.</p>
<ul id="messages"></ul>
<form id="form">
  <input id="input" autocomplete="off" placeholder="Say something" maxlength="2000" autofocus>
  <button id="send" type="submit" disabled>Send</button>
</form>
<script>
"use strict";
const room = decodeURIComponent(location.hash.slice(1)) || "lobby";
document.getElementById("room").textContent = room;
const status = document.getElementById("status");
const messages = document.getElementById("messages");
const input = document.getElementById("input");
const send = document.getElementById("send");
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const ws = new WebSocket(scheme + location.host + "/ws/" + encodeURIComponent(room));
ws.onopen = () => { status.textContent = "open"; send.disabled = false; };
ws.onclose = (event) => {
  status.textContent = "closed (" + event.code + ")";
  send.disabled = true;
};
ws.onmessage = (event) => {
  const item = document.createElement("li");
  item.textContent = event.data;  // text, never HTML
  messages.append(item);
};
document.getElementById("form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (input.value && ws.readyState === WebSocket.OPEN) {
    ws.send(input.value);
    input.value = "";
  }
  input.focus();
});
window.addEventListener("hashchange", () => location.reload());
</script>
</body>
</html>
"""


class ChatRoom(wskit.RoomService):
    """One chat room: who is called what, and the last lines said."""

    def __init__(self, room_id: str, ctx: wskit.RoomContext) -> None:
        super().__init__(room_id, ctx)
        self.names: dict[int, str] = {}
        self.history: collections.deque[str] = collections.deque(maxlen=HISTORY)

    def say(self, ctx: wskit.RoomContext, line: str) -> None:
        self.history.append(line)
        ctx.send(wskit.Everyone, line)

    def on_join(self, client: wskit.ClientId, ctx: wskit.RoomContext) -> None:
        name = self.names[client] = f"user{client}"
        others = [self.names[c] for c in ctx.clients if c != client]
        ctx.send(client, f"Welcome to {self.room_id}, {name}! Type /nick NAME to choose "
                         f"a name. Here: {', '.join(others) or 'nobody else yet'}.")
        for line in self.history:
            ctx.send(client, line)
        ctx.send(wskit.Except(client), f"{name} joined")

    def on_message(self, client: wskit.ClientId, msg: wskit.Message,
                   ctx: wskit.RoomContext) -> None:
        if msg.is_binary:
            ctx.close(client, wskit.CloseCode.UNSUPPORTED, "text messages only")
            return
        text = msg.strip()  # a text message is a str
        if not text:
            return
        if text.startswith("/nick"):
            self.nick(client, text.removeprefix("/nick").strip(), ctx)
        elif text.startswith("/"):
            ctx.send(client, f"unknown command {text.split()[0]}; try /nick NAME")
        else:
            self.say(ctx, f"{self.names[client]}: {text}")

    def nick(self, client: wskit.ClientId, name: str, ctx: wskit.RoomContext) -> None:
        old = self.names[client]
        if not NAME.fullmatch(name):
            ctx.send(client, "a name is 1-24 letters, digits, _ or -")
        elif name != old and name in self.names.values():
            ctx.send(client, f"{name} is taken")
        elif name != old:
            self.names[client] = name
            self.say(ctx, f"{old} is now known as {name}")

    def on_leave(self, client: wskit.ClientId, ctx: wskit.RoomContext) -> None:
        name = self.names.pop(client)
        why = " (too slow)" if client.close_code == wskit.CloseCode.POLICY else ""
        ctx.send(wskit.Everyone, f"{name} left{why}")


class ChatRooms(wskit.Rooms):
    """Rooms with the page on ``/`` and a same-origin check on upgrades."""

    def on_request(self, request: wskit.Request) -> wskit.Response | None:
        if not request.is_websocket:
            return None  # "/" is the page (Rooms' page option), /status, /rooms
        origin = request.origin
        host = request.headers.get("Host", "")
        if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
            log.warning("refused a connection from origin %r (host %r)", origin, host)
            return request.reject(403, "cross-origin connections are not allowed\n")
        return None


def make_rooms() -> ChatRooms:
    """The chat's Rooms with its policy (also for ``wskit serve examples.chat_room:rooms``)."""
    return ChatRooms(ChatRoom, default_room="lobby", page=PAGE, grace=30.0,
                     max_client_queue=64 * 2**10)


rooms = make_rooms()


def main() -> None:
    parser = argparse.ArgumentParser(description="wskit chat rooms (page and rooms on one port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=3012, help="port (%(default)s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log.info("open http://%s:%d/ in a browser", args.host, args.port)
    wskit.listen((args.host, args.port), make_rooms(),
                 settings=wskit.Settings(max_message_size=2 * 2**10))


if __name__ == "__main__":
    main()
