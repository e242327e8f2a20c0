"""Channel: a worker thread answers the clients, through a ``queue.Queue`` (ws-rs's channel).

Shows that a ``Sender`` may be used from any thread. The handler does no
work itself: it puts ``(sender, message)`` on a ``queue.Queue``; one worker
thread takes the jobs in order, does the (here: deliberately slow, blocking)
work, and answers with ``sender.send(...)`` from the worker thread. Blocking
work never runs in the Trio thread, so every other connection stays
responsive meanwhile.

Policy choices:
- One worker, jobs answered in the order they arrived (FIFO), across all
  clients. Use several workers for throughput, at the cost of that order.
- The queue is bounded (``--queue-size``): when it is full, the client is
  told so at once (``busy: ...``) instead of the server buffering without
  limit.
- A client that leaves before its answer is ready: ``send`` raises
  ``wskit.Error`` (kind ``QUEUE``) in the worker, which logs it and goes on.
- Shutdown (Ctrl-C, SIGTERM): ``Factory.on_shutdown`` queues a sentinel, the
  worker finishes the job in hand and stops, and the program exits 0 after
  joining it.

    python examples/channel.py --port 3012
"""

from __future__ import annotations

import argparse
import logging
import queue
import threading
import time
from collections.abc import Callable

import wskit

log = logging.getLogger("channel")

#: (who to answer, what they sent); ``None`` stops the worker.
Job = tuple[wskit.Sender, wskit.Message] | None


def work(text: str) -> str:
    """The slow, blocking part (stands for a database call, a computation...)."""
    time.sleep(0.01)
    return f"{len(text.split())} words, reversed: {text[::-1]}"


def worker(jobs: queue.Queue[Job]) -> None:
    while (job := jobs.get()) is not None:
        out, msg = job
        try:
            out.send(f"[{threading.current_thread().name}] {work(str(msg))}")
        except wskit.Error as err:  # the client left meanwhile
            log.info("answer for connection %d dropped: %s", out.connection_id, err)
    log.info("worker stopped")


class Jobs(wskit.Factory):
    """Every handler hands its messages to the one worker through ``jobs``."""

    def __init__(self, jobs: queue.Queue[Job]) -> None:
        self.jobs = jobs

    def connection_made(self, out: wskit.Sender) -> Callable[[wskit.Message], None]:
        def on_message(msg: wskit.Message) -> None:
            try:
                self.jobs.put_nowait((out, msg))
            except queue.Full:
                out.send(f"busy: {msg}")

        return on_message

    def on_shutdown(self) -> None:
        # Blocking put: a sentinel must get in even if the queue is full.
        threading.Thread(target=self.jobs.put, args=(None,), daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description="wskit server answering from a worker thread")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=3012, help="port (%(default)s)")
    parser.add_argument("--queue-size", type=int, default=100,
                        help="jobs waiting at most (%(default)s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    jobs: queue.Queue[Job] = queue.Queue(maxsize=args.queue_size)
    thread = threading.Thread(target=worker, args=(jobs,), name="worker")
    thread.start()
    try:
        wskit.listen((args.host, args.port), Jobs(jobs))
    finally:
        if thread.is_alive():
            jobs.put(None)  # harmless if on_shutdown already did
        thread.join()


if __name__ == "__main__":
    main()
