"""Chat: one port serves the page (HTTP) and the WebSocket; every message goes to everyone.

Shows ``Handler.on_request`` routing plain HTTP and WebSocket upgrades on the
same port: ``GET /`` gets the chat page as an ordinary ``wskit.Response``,
``/ws`` is accepted as a WebSocket, any other path gets 404. Each chat message
is sent to every open connection with ``out.broadcast`` (the sender included:
it sees its own line once the server has it).

Policy choices:
- Same-origin only: a browser sends ``Origin``, and a page from another site
  must not be able to join in the visitor's name (cross-site WebSocket
  hijacking), so an ``Origin`` that isn't ``http(s)://<Host>`` gets 403.
  Clients that send no ``Origin`` (scripts, not browsers) are allowed.
- Text only: a binary message closes the connection with 1003.
- Messages over 64 KiB close the connection with 1009 (``max_message_size``);
  a chat line never needs more.
- Messages are relayed verbatim, in the order the server receives them.
- Ctrl-C (SIGINT) or SIGTERM closes everyone with 1001 and exits 0.

    python examples/chat.py --port 3012     # then open http://127.0.0.1:3012/
"""

from __future__ import annotations

import argparse
import logging
from urllib.parse import urlsplit

import wskit

log = logging.getLogger("chat")

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wskit chat</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 40em; margin: 2em auto; }
  #messages { list-style: none; padding: 0; min-height: 10em; border: 1px solid #ccc; }
  #messages li { padding: 0.2em 0.5em; border-bottom: 1px solid #eee; }
  #form { display: flex; gap: 0.5em; margin-top: 0.5em; }
  #input { flex: 1; }
</style>
</head>
<body>
<h1>wskit chat</h1>
<p>Status: <span id="status">connecting</span></p>
<ul id="messages"></ul>
<form id="form">
  <input id="input" autocomplete="off" placeholder="Say something" autofocus>
  <button id="send" type="submit" disabled>Send</button>
</form>
<script>
"use strict";
const status = document.getElementById("status");
const messages = document.getElementById("messages");
const form = document.getElementById("form");
const input = document.getElementById("input");
const send = document.getElementById("send");
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const ws = new WebSocket(scheme + location.host + "/ws");
ws.onopen = () => {
  status.textContent = "open";
  send.disabled = false;
};
ws.onclose = (event) => {
  status.textContent = "closed (" + event.code + ")";
  send.disabled = true;
};
ws.onmessage = (event) => {
  const item = document.createElement("li");
  item.textContent = event.data;  // text, never HTML
  messages.append(item);
};
form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (input.value && ws.readyState === WebSocket.OPEN) {
    ws.send(input.value);
    input.value = "";
  }
  input.focus();
});
</script>
</body>
</html>
"""


class Chat(wskit.Handler):
    def on_request(self, request: wskit.Request) -> wskit.Response | None:
        path = urlsplit(request.path).path
        if path == "/":
            return wskit.Response(200, PAGE, {"Content-Type": "text/html; charset=utf-8"})
        if path != "/ws":
            return request.reject(404, "not found\n")
        origin = request.origin
        host = request.headers.get("Host", "")
        if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
            log.warning("refused a connection from origin %r (host %r)", origin, host)
            return request.reject(403, "cross-origin connections are not allowed\n")
        return None  # accept the upgrade (a plain GET /ws gets 426 from wskit)

    def on_open(self, handshake: wskit.Handshake) -> None:
        log.info("connection %d joined from %s", self.out.connection_id, handshake.remote_addr())

    def on_message(self, msg: wskit.Message) -> None:
        if msg.is_binary:
            self.out.close(wskit.CloseCode.UNSUPPORTED, "text messages only")
            return
        self.out.broadcast(msg)

    def on_close(self, code: wskit.CloseCode | int, reason: str) -> None:
        log.info("connection %d left: %s %r", self.out.connection_id, code, reason)


def main() -> None:
    parser = argparse.ArgumentParser(description="wskit chat (page and WebSocket on one port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=3012, help="port (%(default)s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    settings = wskit.Settings(max_message_size=64 * 2**10)
    log.info("open http://%s:%d/ in a browser", args.host, args.port)
    wskit.listen((args.host, args.port), Chat, settings=settings)


if __name__ == "__main__":
    main()
