"""Background push: a worker thread and a Trio task reach clients by id (Rwf's Comms).

Shows ``ws.comms``: every connection has a small integer id
(``out.connection_id``), and ``ws.comms.send(id, msg)`` delivers to it from
anywhere — here from a worker thread that finishes slow jobs, and from a
background Trio task that pushes a periodic tick to each connected client.
A send to a client that has gone raises ``wskit.Error`` (kind ``QUEUE``),
which the sender handles.

Connect to ``ws://127.0.0.1:3012/``: the server says ``id N``. Send
``job SECONDS TEXT``: you get ``queued: TEXT`` now and ``done: TEXT`` when
the worker thread has spent SECONDS on it. Every ``--tick`` seconds each
client gets ``tick N: K connected``.

Policy choices:
- One worker thread, fed by a bounded queue (100 jobs): jobs run one at a
  time, in order; a job sent while the queue is full is refused at once
  with ``busy: try again later`` rather than piling up memory.
- Jobs take at most 10 s (SECONDS is capped); blocking work stays in the
  thread, never in a hook, so it stalls no connection.
- The result of a job whose client has left is logged and discarded: the id
  is not reused in this process, so it can't reach somebody else.
- Ticks go to each client by id (``comms.ids`` is a snapshot): a client that
  leaves or is too slow in between is skipped, not an error.
- Ctrl-C (SIGINT) or SIGTERM closes everyone with 1001, stops the worker
  (a job in progress is abandoned) and exits 0.

    python examples/background_push.py --port 3012 --tick 5
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import queue
import threading

import trio

import wskit

log = logging.getLogger("background_push")

MAX_JOB_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class Job:
    client_id: int
    seconds: float
    text: str


class Pusher(wskit.Handler):
    """Tells a client its id and queues its jobs for the worker thread."""

    def __init__(self, out: wskit.Sender, jobs: queue.Queue[Job | None]) -> None:
        super().__init__(out)
        self.jobs = jobs

    def on_open(self, handshake: wskit.Handshake) -> None:
        self.out.send(f"id {self.out.connection_id}")

    def on_message(self, msg: wskit.Message) -> None:
        words = msg.split(maxsplit=2) if isinstance(msg, str) else []
        try:
            if len(words) != 3 or words[0] != "job":
                raise ValueError
            seconds = min(max(float(words[1]), 0.0), MAX_JOB_SECONDS)
        except ValueError:
            self.out.send("usage: job SECONDS TEXT")
            return
        try:
            self.jobs.put_nowait(Job(self.out.connection_id, seconds, words[2]))
        except queue.Full:
            self.out.send("busy: try again later")
            return
        self.out.send(f"queued: {words[2]}")


def worker(jobs: queue.Queue[Job | None], comms: wskit.Comms, stop: threading.Event) -> None:
    """The worker thread: slow, blocking work, then a push by id."""
    while (job := jobs.get()) is not None:
        if stop.wait(job.seconds):  # the "work"; shutdown interrupts it
            return
        try:
            comms.send(job.client_id, f"done: {job.text}")
        except wskit.Error as err:
            log.info("result of %r not delivered: %s", job.text, err)


async def ticker(comms: wskit.Comms, interval: float) -> None:
    """A background Trio task: each connected client gets a tick, by id."""
    count = 0
    while True:
        await trio.sleep(interval)
        count += 1
        ids = comms.ids
        for client_id in sorted(ids):
            try:
                comms.send(client_id, f"tick {count}: {len(ids)} connected")
            except wskit.Error as err:  # left (or too slow) since the snapshot
                log.debug("tick skipped: %s", err)


async def serve(host: str, port: int, tick: float) -> None:
    jobs: queue.Queue[Job | None] = queue.Queue(maxsize=100)
    stop = threading.Event()
    async with trio.open_nursery() as nursery:
        async with wskit.WebSocket(lambda out: Pusher(out, jobs)) as ws:
            await ws.listen((host, port))
            thread = threading.Thread(target=worker, args=(jobs, ws.comms, stop),
                                      name="worker", daemon=True)
            thread.start()
            nursery.start_soon(ticker, ws.comms, tick)
        # The block waited for shutdown (Ctrl-C) and every connection's close.
        nursery.cancel_scope.cancel()
    stop.set()
    with contextlib.suppress(queue.Full):  # full: the worker sees `stop` instead
        jobs.put_nowait(None)
    await trio.to_thread.run_sync(thread.join)
    log.info("stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description="push to clients by id from a thread and a task")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    parser.add_argument("--port", type=int, default=3012, help="port (%(default)s)")
    parser.add_argument("--tick", type=float, default=5.0,
                        help="seconds between two ticks (%(default)s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    trio.run(serve, args.host, args.port, args.tick)


if __name__ == "__main__":
    main()
