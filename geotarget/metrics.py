"""Prometheus metrics, declared once, and the text ``/metrics`` answers.

With several ``serve`` workers each keeps its figures in files under ``PROMETHEUS_MULTIPROC_DIR`` (``serve`` sets
it to ``<data dir>/metrics`` and empties it at start), so any worker's ``/metrics`` answers for all of them:
counters and histograms summed, gauges the most recent. The variable must be set before this module is first
imported, which is why ``serve`` sets it before it starts the workers."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SLOW = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

HTTP_SECONDS = Histogram(
    "geotarget_http_request_duration_seconds", "Time to answer a request, by route template", ["method", "route"],
    buckets=_FAST,
)  # fmt: skip
HTTP_REQUESTS = Counter(
    "geotarget_http_requests", "Requests answered, by route and status", ["method", "route", "status"]
)
NEARBY_REQUESTS = Counter("geotarget_nearby_requests", "Requests for offers (/v1/nearby)")
OFFER_DECISIONS = Counter(
    "geotarget_offer_decisions",
    "Offers served, blocked by a cap, or answers degraded because the cap store was away",
    ["decision"],
)
BID_DECISIONS = Counter(
    "geotarget_bid_decisions", "Bid requests by how they ended: bid, or the no-bid reason (docs/openrtb.md)", ["reason"]
)
BID_NOTICES = Counter(
    "geotarget_bid_notices", "Win, billing and loss notices by what they did (settled, late, unknown)", ["notice"]
)
EVENT_APPEND_FAILURES = Counter("geotarget_event_append_failures", "Event batches the stream did not take")
PRESENCE = Counter("geotarget_presence_transitions", "Enter, dwell and exit fired, and presence moves that failed",
                   ["outcome"])  # fmt: skip
RATE_LIMITED = Counter("geotarget_rate_limited", "Requests refused by a rate limit", ["route_class"])
RATE_LIMIT_UNAVAILABLE = Counter("geotarget_rate_limit_unavailable", "Times the rate limits failed open (Redis away)")
REDIS_SECONDS = Histogram("geotarget_redis_call_duration_seconds", "Request-path Redis calls", ["call"], buckets=_FAST)
CONSUMER_BATCH = Histogram(
    "geotarget_consumer_batch_entries", "Stream entries per batch written to the event store",
    buckets=(1, 10, 100, 500, 1_000, 2_500, 5_000, 10_000, 50_000),
)  # fmt: skip
STREAM_LAG = Gauge(
    "geotarget_event_stream_lag_entries",
    "Events in the stream not yet in the event store",
    multiprocess_mode="mostrecent",
)
FENCES = Gauge("geotarget_fence_index_fences", "Fences in a worker's index", multiprocess_mode="mostrecent")
CHANGE_SEQ = Gauge("geotarget_catalog_change_seq", "The newest change a worker has applied", multiprocess_mode="max")
SYNC_DELAY = Histogram(
    "geotarget_catalog_sync_delay_seconds", "From a change's commit to a worker applying it (others' changes)",
    buckets=_SLOW,
)  # fmt: skip

_TALLIES: dict[tuple[str, str], Any] = {
    ("serving", "requests"): NEARBY_REQUESTS,
    ("serving", "served"): OFFER_DECISIONS.labels("served"),
    ("serving", "cap_blocked"): OFFER_DECISIONS.labels("cap_blocked"),
    ("serving", "degraded"): OFFER_DECISIONS.labels("degraded"),
    ("serving", "event_failures"): EVENT_APPEND_FAILURES,
    ("presence", "transitions"): PRESENCE.labels("fired"),
    ("presence", "failures"): PRESENCE.labels("failed"),
}

_BY_LABEL = {"bidding": BID_DECISIONS, "notices": BID_NOTICES}  # the Tally's ``what`` is the label


def count(component: str, what: str, n: int) -> None:
    """The ``Tally`` sink: a domain count, into its Prometheus counter."""
    metric = _TALLIES.get((component, what))
    if metric is not None:
        metric.inc(n)
    elif component in _BY_LABEL:
        _BY_LABEL[component].labels(what).inc(n)


def observe_catalog(fences: int, seq: int, delay_s: float | None) -> None:
    """After a worker's catalog applied changes: its size, how far it is, how long the newest change took to
    reach it."""
    FENCES.set(fences)
    CHANGE_SEQ.set(seq)
    if delay_s is not None:
        SYNC_DELAY.observe(max(0.0, delay_s))


class Figures(Collector):
    """Figures read at scrape time, the same whichever worker answers (webhook deliveries, kept in Redis)."""

    def __init__(self, figures: Iterable[tuple[str, str, float]]) -> None:
        self.figures = list(figures)

    def collect(self) -> Iterator[Metric]:
        for name, kind, value in self.figures:
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(f"geotarget_{name.removesuffix('_total')}", name.replace("_", " "), value=value)


def render(shared: Iterable[tuple[str, str, float]] = ()) -> bytes:
    """The Prometheus text of every worker (multiprocess mode) or of this process, then the shared figures."""
    if os.environ.get(MULTIPROCESS_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    extra = CollectorRegistry()
    extra.register(Figures(shared))
    return text + generate_latest(extra)
