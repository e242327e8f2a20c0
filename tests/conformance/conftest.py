"""Fixtures of the conformance suite (the endpoints themselves are in ``_peers.py``).

``echo_server`` and ``small_server`` start once per session; ``connect`` and
``connect_small`` open raw peers to them and close them after the test;
``client_run`` runs a wskit client against a hand-made frame server.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from ._peers import (
    SERVER_SETTINGS,
    SMALL_LIMIT,
    BackgroundServer,
    ClientRun,
    Peer,
    run_client,
)


@pytest.fixture(scope="session")
def echo_server() -> Iterator[BackgroundServer]:
    server = BackgroundServer(SERVER_SETTINGS)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def small_server() -> Iterator[BackgroundServer]:
    """An echo server with ``max_message_size=SMALL_LIMIT``."""
    server = BackgroundServer(
        dataclasses.replace(SERVER_SETTINGS, max_message_size=SMALL_LIMIT))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def connect(echo_server: BackgroundServer) -> Iterator[Callable[..., Peer]]:
    """``connect(extensions=None, early=b"")``: a raw peer of the echo server."""
    peers: list[Peer] = []

    def open_peer(*, extensions: str | None = None, early: bytes = b"",
                  server: BackgroundServer | None = None) -> Peer:
        peer = Peer.open((server or echo_server).port, extensions=extensions, early=early)
        peers.append(peer)
        return peer

    yield open_peer
    for peer in peers:
        peer.shutdown()


@pytest.fixture
def connect_small(small_server: BackgroundServer,
                  connect: Callable[..., Peer]) -> Callable[..., Peer]:
    """Like ``connect``, to the server with ``max_message_size=SMALL_LIMIT``."""

    def open_peer(**kwargs: Any) -> Peer:
        return connect(server=small_server, **kwargs)

    return open_peer


@pytest.fixture
def client_run() -> Callable[..., Awaitable[ClientRun]]:
    """``await client_run(script, settings=..., extensions=None, early=b"")``.

    Runs a wskit client against a :class:`FrameServer` driven by ``script``;
    the script must read the client's end of stream (``expect_close`` or
    ``rest``) or ``abort()``. Returns what the client's handler recorded.
    """
    return run_client
