"""Prometheus metrics and the health check, scraped over real sockets.

Real ``websockets`` clients make the traffic; ``urllib`` scrapes the
endpoint on the WebSocket port; ``prometheus_client.parser`` reads the
exposition (so the text is valid Prometheus format, not just similar).
"""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest
import trio
import websockets
from _cli_helpers import run_server
from _procs import ws_connect as sync_connect
from prometheus_client.parser import text_string_to_metric_families

import wskit

TIMEOUT = 5.0


def http_get(port: int, path: str, method: str = "GET",
             headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no env proxy
    try:
        with opener.open(request, timeout=TIMEOUT) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as {(name, sorted labels): value}, parsed by prometheus_client."""
    status, content_type, text = await trio.to_thread.run_sync(http_get, port, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")  # the classic format
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def echo(out: wskit.Sender) -> Any:
    return out.send


async def test_metrics_after_real_traffic(serve: Any, ws_connect: Any) -> None:
    settings = wskit.Settings(metrics_path="/metrics", health_path="/healthz",
                              allowed_origins={"https://app.example"}, ping_interval=0.05,
                              compression=None)
    server = await serve(echo, settings)
    url, origin = server.url("/"), "https://app.example"
    with trio.fail_after(TIMEOUT):
        async with ws_connect(url, origin=origin, compression=None) as client:
            for text in ("one", "two", "three"):
                await client.send(text)
                assert await client.recv() == text
        with pytest.raises(websockets.InvalidStatus):  # 403: origin not allowed
            async with ws_connect(url, origin="https://evil.example"):
                pass
        async with ws_connect(url, origin=origin, compression=None) as staying:
            await staying.send(b"\x01" * 200)
            assert await staying.recv() == b"\x01" * 200
            # Scrape until a keepalive round trip (ping_interval=0.05) has been
            # observed and the first connection's end counted (bounded above).
            samples = await scrape(server.port)
            while not (samples.get(("wskit_ping_rtt_seconds_count", ()))
                       and samples.get(("wskit_connections_closed_total", (("code", "1000"),)))):
                await trio.sleep(0.02)
                samples = await scrape(server.port)

    assert samples[("wskit_connections_open", ())] == 1
    assert samples[("wskit_connections_opened_total", ())] == 2
    assert samples[("wskit_connections_closed_total", (("code", "1000"),))] == 1
    # The closed connection's 3 messages plus the open one's 1, each way.
    assert samples[("wskit_messages_total", (("direction", "in"),))] == 4
    assert samples[("wskit_messages_total", (("direction", "out"),))] == 4
    # Unmasked server frames: 2-byte headers (4 for 200 bytes).
    assert samples[("wskit_bytes_total", (("direction", "out"),))] == \
        (2 + 3) + (2 + 3) + (2 + 5) + (4 + 200)
    assert samples[("wskit_bytes_total", (("direction", "in"),))] > 0
    assert samples[("wskit_handshake_failures_total", (("status", "403"),))] == 1
    assert samples[("wskit_tls_handshake_failures_total", ())] == 0
    assert samples[("wskit_send_queue_bytes", ())] == 0
    assert samples[("wskit_ping_rtt_seconds_count", ())] >= 1
    assert samples[("wskit_ping_rtt_seconds_bucket", (("le", "+Inf"),))] == \
        samples[("wskit_ping_rtt_seconds_count", ())]
    assert samples[("wskit_rooms", ())] == 0

    # The health check: no Origin needed, no factory involved, any query.
    status, content_type, body = await trio.to_thread.run_sync(
        http_get, server.port, "/healthz?probe=1")
    assert (status, body) == (200, "ok\n")
    assert await trio.to_thread.run_sync(http_get, server.port, "/healthz", "HEAD") == \
        (200, "text/plain; charset=utf-8", "")
    # Other paths still go to the WebSocket rules (here: the origin check, 403).
    assert (await trio.to_thread.run_sync(http_get, server.port, "/other"))[0] == 403
    # A scraper that asks for OpenMetrics gets it (prometheus-client's choice).
    status, content_type, body = await trio.to_thread.run_sync(
        http_get, server.port, "/metrics", "GET",
        {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith("# EOF\n")
    # POST to the metrics path is not a scrape.
    assert (await trio.to_thread.run_sync(http_get, server.port, "/metrics", "POST"))[0] == 403


class Counter(wskit.RoomService):
    def on_message(self, client: Any, msg: Any, ctx: Any) -> None:
        ctx.send(wskit.Everyone, msg)


async def test_rooms_and_their_clients_are_counted(serve: Any, ws_connect: Any) -> None:
    settings = wskit.Settings(metrics_path="/metrics", ping_interval=None)
    server = await serve(wskit.Rooms(Counter), settings)
    with trio.fail_after(TIMEOUT):
        async with ws_connect(server.url("/ws/a")) as a1, \
                ws_connect(server.url("/ws/a")) as a2, ws_connect(server.url("/ws/b")) as b:
            for client in (a1, a2, b):  # each has joined once its echo comes back
                await client.send("hi")
                assert await client.recv() == "hi"
            samples = await scrape(server.port)
    assert samples[("wskit_rooms", ())] == 2
    assert samples[("wskit_room_clients", ())] == 3
    assert samples[("wskit_connections_open", ())] == 3


async def test_own_registry_and_a_metric_of_your_own(serve: Any) -> None:
    from prometheus_client import Counter as PromCounter

    server = await serve(echo, wskit.Settings(metrics_path="/m", ping_interval=None))
    jobs = PromCounter("app_jobs", "Jobs done", registry=server.ws.metrics.registry)
    jobs.inc(3)
    samples = await scrape_path(server.port, "/m")
    assert samples["app_jobs_total"] == 3
    assert samples["wskit_connections_open"] == 0


async def scrape_path(port: int, path: str) -> dict[str, float]:
    status, _, text = await trio.to_thread.run_sync(http_get, port, path)
    assert status == 200
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples
            if not s.labels}


def test_settings_check_the_paths() -> None:
    for bad in ("metrics", "", 5):
        with pytest.raises(wskit.Error) as info:
            wskit.Settings(metrics_path=bad)  # type: ignore[arg-type]
        assert info.value.kind is wskit.ErrorKind.USAGE
    with pytest.raises(wskit.Error, match="must differ"):
        wskit.Settings(metrics_path="/x", health_path="/x")


BLOCK_PROMETHEUS = "import sys; sys.modules['prometheus_client'] = None; "


def test_without_prometheus_client_the_error_says_what_to_install() -> None:
    code = BLOCK_PROMETHEUS + (
        "import wskit\n"
        "wskit.WebSocket(print)  # no metrics asked for: fine\n"
        "try:\n"
        "    wskit.WebSocket(print, wskit.Settings(metrics_path='/metrics'))\n"
        "except wskit.Error as err:\n"
        "    print(err.kind.name, err)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == \
        "USAGE metrics need prometheus-client: pip install 'wskit[metrics]'"


def test_cli_without_prometheus_client_is_a_usage_error() -> None:
    code = BLOCK_PROMETHEUS + (
        "from wskit._cli import main; sys.exit(main(['echo', '--port', '0', "
        "'--metrics-path', '/metrics']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip() == \
        "wskit: error: metrics need prometheus-client: pip install 'wskit[metrics]'"


def test_cli_serves_metrics_and_health_and_trusts_the_proxy_it_is_told() -> None:
    with run_server("echo", "--metrics-path", "/metrics", "--health-path", "/healthz",
                    "--trusted-proxy", "127.0.0.1", "--ping-interval", "none") as server:
        with sync_connect(server.url + "/cli",
                          additional_headers={"X-Forwarded-For": "203.0.113.7"}) as client:
            client.send("hi")
            assert client.recv() == "hi"
        opened = server.errors.until(lambda line: "opened by" in line)
        assert "opened by 203.0.113.7 (via 127.0.0.1:" in opened
        server.errors.until(lambda line: "closed 1000" in line)
        assert http_get(server.port, "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")
        status, _, text = http_get(server.port, "/metrics")
        samples = {s.name: s.value for f in text_string_to_metric_families(text)
                   for s in f.samples if not s.labels}
        assert status == 200
        assert samples["wskit_connections_opened_total"] == 1
        assert server.stop() == 0
