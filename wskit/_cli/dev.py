"""``wskit dev``: serve in a child process, restart it when a source file changes."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .options import UsageError, settings_argv, settings_from
from .rooms import rooms_argv, rooms_options
from .serve import server_tls, split_target


def _watch_roots(module_name: str) -> list[Path]:
    """Where the module's sources live: its top-level package, or, for a
    single-file app, the folder that holds it (so an edit to a ``helpers.py``
    it imports from next to it restarts too).

    Only the top-level name is looked up, which imports nothing.
    """
    top = module_name.partition(".")[0]
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError) as exc:
        raise UsageError(f"cannot import module {module_name!r}: {exc}") from exc
    if spec is None:
        raise UsageError(f"cannot import module {module_name!r}: No module named {top!r}")
    if spec.submodule_search_locations:
        return [Path(p) for p in spec.submodule_search_locations]
    if spec.origin and os.path.isfile(spec.origin):
        return [Path(spec.origin).parent]
    raise UsageError(f"module {top!r} has no source files to watch")


def _scan(roots: Sequence[Path], only_python: bool = True) -> dict[str, tuple[int, int]]:
    """``{path: (mtime_ns, size)}`` of every watched file under ``roots``."""
    found: dict[str, tuple[int, int]] = {}

    def add(path: str) -> None:
        with contextlib.suppress(OSError):
            stat = os.stat(path)
            found[path] = (stat.st_mtime_ns, stat.st_size)

    for root in roots:
        if root.is_file():
            add(str(root))
            continue
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if _watched_dir(folder, d)]
            for name in files:
                if not only_python or name.endswith(".py"):
                    add(os.path.join(folder, name))
    return found


#: Folders never watched: caches, dependencies, build output.
_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "site-packages", "build", "dist"})


def _watched_dir(parent: str, name: str) -> bool:
    """Hidden folders (``.git``, ``.venv``), caches and virtual environments
    (a ``pyvenv.cfg`` inside) are not the app's sources: a folder holding a
    single-file app often holds them too."""
    if name.startswith(".") or name in _SKIPPED_DIRS:
        return False
    return not os.path.exists(os.path.join(parent, name, "pyvenv.cfg"))


def _changed(old: dict[str, tuple[int, int]], new: dict[str, tuple[int, int]]) -> str | None:
    for path in sorted(old.keys() | new.keys()):
        if old.get(path) != new.get(path):
            return path
    return None


def _check_port(host: str, port: int) -> int:
    """Bind like the server will (SO_REUSEADDR), to report a port in use up
    front; port 0 becomes a concrete free port that every restart keeps."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        bound: int = sock.getsockname()[1]
    return bound


def _raise_interrupt(signum: int, frame: Any) -> NoReturn:
    raise KeyboardInterrupt


def cmd_dev(args: argparse.Namespace) -> int:
    """``wskit dev module:factory``: serve, and restart on every source change."""
    module_name, _ = split_target(args.target)
    roots = _watch_roots(module_name)
    extra = [Path(p) for p in args.watch or ()]
    port = _check_port(args.host, args.port)
    server_tls(args)  # report bad TLS files now, not from every child
    settings_from(args)
    rooms_options(args)
    argv = [sys.executable, "-m", "wskit", "serve", args.target, "--host", args.host,
            "--port", str(port), "--log-level", args.log_level,
            "--log-format", args.log_format, "--stop-on-eof",
            *settings_argv(args), *rooms_argv(args)]
    if args.tls_cert:
        argv += ["--tls-cert", args.tls_cert, "--tls-key", args.tls_key]
    # A fresh import each time: no stale bytecode when an edit keeps the size
    # and the second of the mtime (what .pyc files are checked against).
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}

    def snapshot() -> dict[str, tuple[int, int]]:
        return {**_scan(roots), **_scan(extra, only_python=False)}

    def start() -> subprocess.Popen[bytes]:
        # Its own process group: Ctrl-C reaches only us, and we stop the
        # child once, gracefully. Its stdin is a pipe that only we hold: if
        # we die (even by SIGKILL), it sees the end of input and shuts down.
        return subprocess.Popen(argv, env=env, stdin=subprocess.PIPE,
                                start_new_session=True)

    def stop(child: subprocess.Popen[bytes]) -> None:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)  # graceful: 1001 to every client
            try:
                child.wait(timeout=args.stop_timeout)
            except subprocess.TimeoutExpired:
                print(f"wskit dev: the server did not stop within {args.stop_timeout}s; "
                      "killing it", file=sys.stderr, flush=True)
                child.kill()
                child.wait()
        if child.stdin is not None:
            child.stdin.close()

    signal.signal(signal.SIGTERM, _raise_interrupt)
    files = snapshot()
    print(f"wskit dev: serving {args.target} on port {port}; watching {len(files)} files "
          f"under {', '.join(str(r) for r in [*roots, *extra])}", file=sys.stderr, flush=True)
    child = start()
    first, reported = True, False
    try:
        while True:
            time.sleep(args.poll_interval)
            code = child.poll()
            if code is not None and not reported:
                reported = True
                if first and code == 2:
                    return 2  # a usage error (missing attribute...): the child said which
                print(f"wskit dev: the server exited with status {code}; waiting for a "
                      "change", file=sys.stderr, flush=True)
            current = snapshot()
            path = _changed(files, current)
            if path is not None:
                files = current
                print(f"wskit dev: {path} changed; restarting", file=sys.stderr, flush=True)
                stop(child)
                child, first, reported = start(), False, False
    except KeyboardInterrupt:
        stop(child)
        return 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdin is not None:
            child.stdin.close()
