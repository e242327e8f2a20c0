"""The backplane's way into Redis: TLS (``rediss://``) and passwords.

A real ``redis-server`` serving TLS only (``--port 0 --tls-port``) with a
certificate from a throwaway trustme CA; nodes trust that CA through the
URL (``?ssl_ca_certs=``). Two ``wskit serve`` processes send by id to each
other through it; a node that does not trust the CA, or that connects by a
name the certificate does not hold, refuses to start with an error that
says so. A Redis with ``--requirepass``: the right password works, a
missing or wrong one is a clear start-up error that never shows it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trustme
from _cli_helpers import run, run_server
from _procs import TIMEOUT, free_port, ws_connect
from _redis import RedisServer, TLSFiles, redis_server

import wskit

APP = "tests.cluster_node:Node"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A CA, and a certificate it signed for 127.0.0.1 only."""
    folder = Path(tmp_path_factory.mktemp("redis-tls"))
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    files = TLSFiles(folder / "redis.pem", folder / "redis.key", folder / "ca.pem")
    cert.cert_chain_pems[0].write_to_path(str(files.cert))
    cert.private_key_pem.write_to_path(str(files.key))
    ca.cert_pem.write_to_path(str(files.ca))
    trustme.CA().cert_pem.write_to_path(str(folder / "other-ca.pem"))
    return files


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory,
              tls_files: TLSFiles) -> Iterator[RedisServer]:
    with redis_server(Path(tmp_path_factory.mktemp("redis")), tls=tls_files) as server:
        yield server


async def start_node(url: str) -> tuple[wskit.ErrorKind, str]:
    """The kind and message of the error a node gets for ``url`` (it must
    not start)."""
    with pytest.raises(wskit.Error) as caught:
        async with wskit.WebSocket(lambda out: None, wskit.Settings(backplane=url)):
            pytest.fail(f"a node started with {url}")
    found = caught.value.kind, str(caught.value)
    del caught  # its traceback holds coredis' connection: collected now, not in a later test
    gc.collect()
    return found


def test_send_by_id_over_tls(tls_redis: RedisServer, tls_files: TLSFiles) -> None:
    url = f"{tls_redis.url}?ssl_ca_certs={tls_files.ca}"
    assert url.startswith("rediss://127.0.0.1:")
    with run_server("serve", APP, "--backplane", url, "--backplane-lease", "1") as a, \
            run_server("serve", APP, "--backplane", url, "--backplane-lease", "1") as b, \
            ws_connect(a.url) as alice, ws_connect(b.url) as bob:
        ids = []
        for ws in (alice, bob):
            ws.send("id")
            answer = ws.recv(timeout=TIMEOUT)
            assert isinstance(answer, str) and answer.startswith("id:")
            ids.append(int(answer[3:]))
        alice_id, bob_id = ids
        assert alice_id >> 32 != bob_id >> 32
        alice.send(f"to {bob_id} over TLS")
        assert bob.recv(timeout=TIMEOUT) == "over TLS"
        bob.send(f"to {alice_id} and back")
        assert alice.recv(timeout=TIMEOUT) == "and back"


# coredis 6.9 leaves the memory streams of a connection that never
# connected unclosed (a ResourceWarning when collected): collected in
# start_node, so that the warning belongs to the test that made them (the
# tests marked so) and no later one.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_ca_the_node_does_not_trust(tls_redis: RedisServer, tls_files: TLSFiles) -> None:
    other = tls_files.ca.parent / "other-ca.pem"
    kind, error = await start_node(f"{tls_redis.url}?ssl_ca_certs={other}")
    assert kind is wskit.ErrorKind.BACKPLANE
    assert error.startswith(f"cannot reach the backplane at {tls_redis.url}?ssl_ca_certs=")
    assert ("TLS handshake failed: certificate verify failed: self-signed certificate in "
            "certificate chain (trust the CA that signed Redis' certificate: "
            "rediss://host:port/db?ssl_ca_certs=/path/to/ca.pem)") in error
    # No CA given: the system's trusted CAs, which did not sign it either.
    kind, error = await start_node(tls_redis.url)
    assert "certificate verify failed" in error


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_the_host_name_is_checked(tls_redis: RedisServer, tls_files: TLSFiles) -> None:
    """The certificate names 127.0.0.1, not localhost: refused (coredis
    alone would not check), unless the URL turns the check off."""
    url = f"rediss://localhost:{tls_redis.port}/0?ssl_ca_certs={tls_files.ca}"
    kind, error = await start_node(url)
    assert kind is wskit.ErrorKind.BACKPLANE
    assert "Hostname mismatch" in error, error
    assert "connect by a name the certificate holds" in error
    async with wskit.WebSocket(lambda out: None, wskit.Settings(
            backplane=url + "&ssl_check_hostname=false")) as ws:
        assert ws.comms.node > 0 and ws.comms.health == "ok"
        ws.shutdown()


async def test_a_missing_ca_file_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    kind, error = await start_node(f"rediss://127.0.0.1:{free_port()}/0?ssl_ca_certs={missing}")
    assert kind is wskit.ErrorKind.USAGE
    assert error.endswith(f"ssl_ca_certs='{missing}': no such file")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_plain_url_to_a_tls_port(tls_redis: RedisServer) -> None:
    kind, error = await start_node(f"redis://127.0.0.1:{tls_redis.port}/0")
    assert kind is wskit.ErrorKind.BACKPLANE
    assert error.startswith(f"cannot reach the backplane at redis://127.0.0.1:"
                                 f"{tls_redis.port}/0: ")


# -- passwords ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(Path(tmp_path_factory.mktemp("redis")), password="s3cret") as server:
        yield server


async def test_password_in_the_url(locked_redis: RedisServer) -> None:
    url = f"redis://:s3cret@127.0.0.1:{locked_redis.port}/0"
    got: list[str] = []
    async with wskit.WebSocket(wskit.Handler, wskit.Settings(backplane=url)) as a, \
            wskit.WebSocket(wskit.Handler, wskit.Settings(backplane=url)) as b, \
            wskit.WebSocket(lambda out: got.append) as client:
        _, port = await b.listen("127.0.0.1:0")
        await client.connect(f"ws://127.0.0.1:{port}/")
        while not b.comms.ids:  # noqa: ASYNC110 - the connection opens on b's side
            await trio.sleep(0.02)
        (on_b,) = b.comms.ids
        a.comms.send(on_b, "with a password")
        while not got:  # noqa: ASYNC110 - what b's client receives
            await trio.sleep(0.02)
        assert got == ["with a password"]
        for ws in (a, b, client):
            ws.shutdown()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_missing_or_wrong_password(locked_redis: RedisServer) -> None:
    kind, error = await start_node(f"redis://127.0.0.1:{locked_redis.port}/0")
    assert kind is wskit.ErrorKind.BACKPLANE
    assert error == (f"cannot use the backplane at redis://127.0.0.1:{locked_redis.port}"
                          "/0: Redis requires a password; give it in the URL "
                          "(redis://:PASSWORD@host:port/db, or redis://USER:PASSWORD@… for "
                          "an ACL user)")
    kind, error = await start_node(f"redis://:hunter2@127.0.0.1:{locked_redis.port}/0")
    assert kind is wskit.ErrorKind.BACKPLANE
    assert error.startswith(f"cannot use the backplane at redis://:***@127.0.0.1:"
                                 f"{locked_redis.port}/0: Redis refused the credentials")
    assert "hunter2" not in error


def test_wrong_password_from_the_command_line(locked_redis: RedisServer) -> None:
    result = run("serve", APP, "--backplane",
                 f"redis://:hunter2@127.0.0.1:{locked_redis.port}/0", "--port", str(free_port()))
    assert result.returncode == 1, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("wskit: error: cannot use the backplane at redis://:***@127.0.0.1")
    assert "refused the credentials" in line and "hunter2" not in result.stderr
