"""Prometheus metrics of a WebSocket (the optional extra ``wskit[metrics]``).

``Settings(metrics_path="/metrics")`` serves them on every port the
WebSocket listens on; ``ws.metrics`` is the :class:`Metrics` object, whose
``registry`` you may add your own metrics to, or serve elsewhere (see the
metrics guide). Everything is read when scraped: a message costs the
connection two integer increments, never a call into prometheus-client.

What is exported (all named ``wskit_...``): ``connections_open`` (gauge),
``connections_opened_total``, ``connections_closed_total{code}`` (1006:
lost), ``messages_total{direction}`` and ``bytes_total{direction}``
(``in`` / ``out``; bytes of frames as they travel), ``handshake_failures_total{status}``,
``tls_handshake_failures_total``, ``send_queue_bytes`` (gauge, all
connections), ``ping_rtt_seconds`` (histogram of keepalive round trips),
``rooms`` and ``room_clients`` (gauges, ``wskit.Rooms``). The metrics guide
(``docs/topics/metrics.md``) says what each means and how to query it.
"""

from __future__ import annotations

from collections.abc import Iterator

from ._errors import Error, ErrorKind
from ._hub.hub import Hub
from ._io.stats import Stats

try:
    from prometheus_client import CollectorRegistry, Histogram
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise Error("metrics need prometheus-client: pip install 'wskit[metrics]'",
                ErrorKind.USAGE) from exc

from ._core.http import Response

__all__ = ["RTT_BUCKETS", "Metrics"]

#: Seconds. Keepalive round trips on a LAN are ~0.1-1 ms; across continents
#: 0.1-0.3 s; beyond a few seconds the peer is about to time out.
RTT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
               10.0, float("inf"))


class Metrics(Collector):
    """A prometheus-client collector for one WebSocket (module docstring).

    Made by ``ws.metrics``. ``registry`` holds it; register it in another
    registry too if you serve one already (``REGISTRY.register(ws.metrics)``).
    ``collect()`` copies what it reads and may run in any thread (CPython).
    """

    def __init__(self, hub: Hub, stats: Stats,
                 registry: CollectorRegistry | None = None) -> None:
        self._hub = hub
        self._stats = stats
        #: Prometheus' own histogram type, kept out of any registry: this
        #: collector yields it with the rest.
        self._rtt = Histogram("wskit_ping_rtt_seconds",
                              "Round-trip time of keepalive pings (Settings.ping_interval)",
                              buckets=RTT_BUCKETS, registry=None)
        stats.on_rtt = self._rtt.observe
        self.registry = registry if registry is not None else CollectorRegistry()
        self.registry.register(self)

    def response(self, accept: str | None = None) -> Response:
        """The exposition of :attr:`registry` as an HTTP response, in the
        format the scraper's ``Accept`` header asks for (prometheus-client
        picks: the classic text format, or OpenMetrics)."""
        encode, content_type = choose_encoder(accept or "")
        return Response(200, encode(self.registry),
                        [("Content-Type", content_type), ("Cache-Control", "no-store")])

    def collect(self) -> Iterator[Metric]:
        stats, registry = self._stats, self._hub.registry
        # Copies first (each one atomic under the GIL), then Python code.
        conns = list(registry.connections.values())
        outlets = list(registry.open.values())
        groups = list(registry.groups.values())
        closed = dict(stats.closed)
        failures = dict(stats.handshake_failures)

        yield GaugeMetricFamily("wskit_connections_open", "WebSocket connections open now",
                                value=len(outlets))
        yield CounterMetricFamily("wskit_connections_opened",
                                  "Connections that completed the opening handshake",
                                  value=stats.opened)
        family = CounterMetricFamily("wskit_connections_closed",
                                     "Opened connections that ended, by close code "
                                     "(1006: lost without a closing handshake)",
                                     labels=["code"])
        for code, count in sorted(closed.items()):
            family.add_metric([str(code)], count)
        yield family

        live = [(c.messages_in, c.messages_out, c.bytes_in, c.bytes_out) for c in conns]
        family = CounterMetricFamily("wskit_messages", "Data messages received (in) and "
                                     "sent (out)", labels=["direction"])
        family.add_metric(["in"], stats.messages_in + sum(t[0] for t in live))
        family.add_metric(["out"], stats.messages_out + sum(t[1] for t in live))
        yield family
        family = CounterMetricFamily("wskit_bytes", "WebSocket bytes received (in) and "
                                     "sent (out): frames on the wire, after compression, "
                                     "without TLS", labels=["direction"])
        family.add_metric(["in"], stats.bytes_in + sum(t[2] for t in live))
        family.add_metric(["out"], stats.bytes_out + sum(t[3] for t in live))
        yield family

        family = CounterMetricFamily("wskit_handshake_failures",
                                     "Opening handshakes answered with an HTTP error status",
                                     labels=["status"])
        for status, count in sorted(failures.items()):
            family.add_metric([str(status)], count)
        yield family
        yield CounterMetricFamily("wskit_tls_handshake_failures",
                                  "TLS handshakes that failed", value=stats.tls_failures)
        yield GaugeMetricFamily("wskit_send_queue_bytes",
                                "Bytes queued to send and not yet taken by the kernel, "
                                "all open connections together",
                                value=sum(outlet.queued_bytes for outlet in outlets))
        yield from self._rtt.collect()
        yield GaugeMetricFamily("wskit_rooms", "Rooms open (wskit.Rooms)", value=len(groups))
        yield GaugeMetricFamily("wskit_room_clients", "Clients in the open rooms",
                                value=sum(len(group.member_ids()) for group in groups))
