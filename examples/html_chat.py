"""HTML chat: the page and the chat socket on one port and one path (ws-rs's html_chat).

Shows ``Handler.on_request`` telling a plain HTTP request from a WebSocket
upgrade on the same URL: ``GET /`` from a browser gets the page, the page's
script opens ``ws://<host>/`` on that very path, and that request — an
upgrade — is accepted. Every message is broadcast to everyone.
(``chat.py`` does the same with the page and the socket on two paths.)

Policy choices:
- Same-origin only: an upgrade whose ``Origin`` is not this server's page is
  refused with 403 (another site's page must not chat in its visitor's
  name). Clients without ``Origin`` (scripts) are allowed.
- Any other path is 404; text only (binary closes with 1003); messages over
  16 KiB close with 1009.
- Ctrl-C (SIGINT) or SIGTERM closes everyone with 1001 and exits 0.

    python examples/html_chat.py --port 3012    # then open http://127.0.0.1:3012/
"""

from __future__ import annotations

import argparse
import logging
from urllib.parse import urlsplit

import wskit

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>wskit html chat</title>
<ul id="log"></ul>
<form id="form"><input id="text" autocomplete="off" autofocus> <button>Send</button></form>
<script>
"use strict";
const log = document.getElementById("log");
const text = document.getElementById("text");
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const ws = new WebSocket(scheme + location.host + "/");
ws.onmessage = (event) => {
  const item = document.createElement("li");
  item.textContent = event.data;
  log.append(item);
};
ws.onclose = (event) => { text.disabled = true; text.placeholder = "closed " + event.code; };
document.getElementById("form").onsubmit = (event) => {
  event.preventDefault();
  if (text.value) { ws.send(text.value); text.value = ""; }
};
</script>
"""


class HtmlChat(wskit.Handler):
    def on_request(self, request: wskit.Request) -> wskit.Response | None:
        if urlsplit(request.path).path != "/":
            return request.reject(404, "not found\n")
        if not request.is_websocket:
            return wskit.Response(200, PAGE, {"Content-Type": "text/html; charset=utf-8"})
        host = request.headers.get("Host", "")
        if request.origin is not None and request.origin not in (f"http://{host}",
                                                                 f"https://{host}"):
            return request.reject(403, "cross-origin connections are not allowed\n")
        return None  # accept the upgrade

    def on_message(self, msg: wskit.Message) -> None:
        if msg.is_binary:
            self.out.close(wskit.CloseCode.UNSUPPORTED, "text messages only")
        else:
            self.out.broadcast(msg)


def main() -> None:
    parser = argparse.ArgumentParser(description="wskit chat: page and socket on one path")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=3012, help="port (%(default)s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    wskit.listen((args.host, args.port), HtmlChat,
                 settings=wskit.Settings(max_message_size=16 * 2**10))


if __name__ == "__main__":
    main()
