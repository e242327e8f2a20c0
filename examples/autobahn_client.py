"""Autobahn client: runs every case of a ``fuzzingserver`` (ws-rs's autobahn-client).

The Autobahn|Testsuite ``fuzzingserver`` plays the server; this client asks
it how many cases there are (``/getCaseCount``), connects once per case
(``/runCase?case=N&agent=wskit``) echoing every message it gets, and finally
asks for the reports to be written (``/updateReports?agent=wskit``). The
verdicts are in the suite's HTML report, not in this program's output.

Policy choices:
- One ``wskit.connect`` per case, one after the other: each returns when its
  connection is closed, whoever closed it and however (many cases end in a
  protocol error on purpose), so the next case never overlaps.
- A case whose connection can't even be opened is reported on stderr and the
  run goes on; the exit status is then 1. ``--cases N`` skips
  ``getCaseCount`` (to run the first N cases only).
- Limits raised to 64 MiB as in ``autobahn_server.py``; keepalive pings off.

    docker run -it --rm -p 9001:9001 crossbario/autobahn-testsuite \\
        wstest -m fuzzingserver -s /config/fuzzingserver.json
    python examples/autobahn_client.py ws://127.0.0.1:9001 --agent wskit
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from urllib.parse import quote

import wskit

LARGE = 64 * 2**20
SETTINGS = wskit.Settings(max_message_size=LARGE, max_send_queue=LARGE, ping_interval=None)


def echo(out: wskit.Sender) -> Callable[[wskit.Message], None]:
    return out.send


def case_count(base: str) -> int:
    """Ask the fuzzing server how many cases it has."""
    counts: list[int] = []

    def factory(out: wskit.Sender) -> Callable[[wskit.Message], None]:
        def on_message(msg: wskit.Message) -> None:
            counts.append(int(str(msg)))
            out.close(wskit.CloseCode.NORMAL)

        return on_message

    wskit.connect(f"{base}/getCaseCount", factory, settings=SETTINGS)
    if not counts:
        raise wskit.Error("the server closed without sending the case count")
    return counts[0]


def main() -> int:
    parser = argparse.ArgumentParser(description="wskit client for an Autobahn fuzzingserver")
    parser.add_argument("url", nargs="?", default="ws://127.0.0.1:9001",
                        help="base URL of the fuzzingserver (%(default)s)")
    parser.add_argument("--agent", default="wskit", help="agent name in the reports (%(default)s)")
    parser.add_argument("--cases", type=int, help="run cases 1..N instead of asking the server")
    args = parser.parse_args()
    base, agent = args.url.rstrip("/"), quote(args.agent)

    try:
        total = args.cases if args.cases is not None else case_count(base)
    except wskit.Error as err:
        print(f"cannot get the case count from {base}: {err}", file=sys.stderr)
        return 1
    print(f"{total} cases", flush=True)
    failed = 0
    for case in range(1, total + 1):
        print(f"case {case}/{total}", flush=True)
        try:
            wskit.connect(f"{base}/runCase?case={case}&agent={agent}", echo, settings=SETTINGS)
        except wskit.Error as err:
            failed += 1
            print(f"case {case}: could not connect: {err}", file=sys.stderr)
    try:
        wskit.connect(f"{base}/updateReports?agent={agent}", lambda out: lambda msg: None,
                      settings=SETTINGS)
    except wskit.Error as err:
        print(f"could not update the reports: {err}", file=sys.stderr)
        return 1
    print(f"reports updated for agent {args.agent}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
