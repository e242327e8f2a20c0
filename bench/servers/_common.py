"""Shared plumbing for the benchmark servers: arguments and descriptor limits.

Every server in this directory behaves the same (see bench/README.md): echo
each message with its type; a text message ``bcast:<payload>`` sends
``<payload>`` as text to every connected client instead; no compression, no
keepalive pings, a 16 MiB message limit, 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import resource

HOST = "127.0.0.1"
MAX_MESSAGE_SIZE = 16 * 2**20
BCAST = "bcast:"


def parse_port(description: str) -> int:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    return int(parser.parse_args().port)


def raise_nofile_limit() -> None:
    # The idle workload holds 5,000 connections; the usual soft limit is 1,024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
