"""Prometheus metrics on METRICS_ADDR's `/metrics`, with prometheus_client.

Names follow Prometheus' conventions (syncthing's `syncthing_model_folder_*` is the model): one
`pylsyncd_` prefix, base units, `_total` counters, a `pair` label (the pair as the log names it)
and no path labels. Every series exists from the start, at 0, so a dashboard and an alert see a
pair before its first event. The registry is the daemon's own, not prometheus_client's global
one: a test process builds several. Imported only when METRICS_ADDR is set.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable
from typing import Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server

from pylsyncd.config.observability import Address
from pylsyncd.events import Event, EventKind
from pylsyncd.pair.observer import FailureKind, ResyncReason
from pylsyncd.transfer import Outcome
from pylsyncd.watch import Watcher
from pylsyncd.watch.choice import count_watches

log = logging.getLogger("pylsyncd")

# 100 µs (a one-file batch on a local disk) to 60 s (a storm on a slow mount).
SECONDS_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
BATCH_RESULTS = ("applied", "failed")
RUN_RESULTS = ("ok", "failed")
_FEW_EVENTS = 4  # up to this many events are counted one by one, more are tallied first


class Pending(Protocol):
    """What the gauges read of a pair's pending changes when scraped (not at every change)."""

    def __len__(self) -> int:
        """Changes waiting to be applied."""

    def oldest_age(self) -> float:
        """Seconds the oldest waiting change has waited; 0 when none waits."""


class DaemonMetrics:
    """The daemon's metric families and the HTTP server that exposes them."""

    def __init__(self, version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)

        def counter(name: str, help_text: str, *labels: str) -> Counter:
            return Counter(name, help_text, ["pair", *labels], registry=self.registry)

        def gauge(name: str, help_text: str) -> Gauge:
            return Gauge(name, help_text, ["pair"], registry=self.registry)

        def histogram(name: str, help_text: str) -> Histogram:
            return Histogram(
                name, help_text, ["pair"], registry=self.registry, buckets=SECONDS_BUCKETS
            )

        self.events = counter("pylsyncd_events", "Watcher events read, by kind", "kind")
        self.batches = counter("pylsyncd_batches", "Batches by result", "result")
        self.batch_duration = histogram(
            "pylsyncd_batch_duration_seconds", "Time to apply a batch that went through"
        )
        self.latency = histogram(
            "pylsyncd_event_to_applied_seconds",
            "From the oldest change of a batch being seen to the batch applied",
        )
        self.bytes = counter("pylsyncd_transferred_bytes", "Bytes written into destination files")
        self.errors = counter("pylsyncd_errors", "Failed attempts, by what failed", "kind")
        self.resyncs = counter(
            "pylsyncd_full_resyncs", "Whole-tree comparisons while live, by reason", "reason"
        )
        self.on_sync_runs = counter("pylsyncd_on_sync_runs", "ON_SYNC runs by result", "result")
        self.conflicts = counter(
            "pylsyncd_conflicts", "Paths both sides of a two-way pair changed differently"
        )
        self.pending = gauge("pylsyncd_pending_changes", "Changes waiting to be applied")
        self.oldest = gauge(
            "pylsyncd_oldest_pending_change_age_seconds",
            "How long the oldest waiting change waited",
        )
        self.watches = gauge("pylsyncd_watches", "inotify watches held")
        self.last_success = gauge(
            "pylsyncd_last_successful_batch_timestamp_seconds",
            "Unix time of the last batch that went through; 0 before the first",
        )
        self.initial_sync = gauge(
            "pylsyncd_initial_sync_done", "1 once the initial sync is done and the pair is live"
        )
        Info("pylsyncd_build", "The running pylsyncd", registry=self.registry).info(
            {"version": version}
        )
        self._pairs: dict[str, PairMetrics] = {}
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def pair(self, name: str) -> PairMetrics:
        """The observer of one pair, its series all created at 0."""
        self._pairs[name] = PairMetrics(self, name)
        return self._pairs[name]

    def follow(self, name: str, pending: Pending, live: Callable[[], bool]) -> None:
        """Read the gauges of the pair called `name` from these at each scrape."""
        self._pairs[name].follow(pending, live)

    def serve(self, address: Address) -> None:
        """Serve /metrics on `address` from a thread; raises OSError (port taken, bad host)."""
        self._server, self._thread = start_http_server(
            address.port, address.host, registry=self.registry
        )
        self._thread.name = "metrics"
        host, port = self._server.server_address[:2]
        log.info("metrics on http://%s/metrics", Address(str(host), int(port)))

    @property
    def port(self) -> int:
        """The port served on (the one picked, when METRICS_ADDR gave port 0)."""
        assert self._server is not None
        return int(self._server.server_address[1])

    def close(self) -> None:
        """Stop serving; the server thread is joined."""
        if self._server is None or self._thread is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server = self._thread = None


class PairMetrics:
    """One pair's children of the families; the `PairObserver` its threads call."""

    def __init__(self, metrics: DaemonMetrics, name: str) -> None:
        self._events = {kind: metrics.events.labels(name, kind.value) for kind in EventKind}
        self._applied = metrics.batches.labels(name, "applied")
        self._failed = metrics.batches.labels(name, "failed")
        self._duration = metrics.batch_duration.labels(name)
        self._latency = metrics.latency.labels(name)
        self._bytes = metrics.bytes.labels(name)
        self._errors = {kind: metrics.errors.labels(name, kind.value) for kind in FailureKind}
        self._resyncs = {r: metrics.resyncs.labels(name, r.value) for r in ResyncReason}
        self._runs = {result: metrics.on_sync_runs.labels(name, result) for result in RUN_RESULTS}
        self._conflicts = metrics.conflicts.labels(name)
        self._pending = metrics.pending.labels(name)
        self._oldest = metrics.oldest.labels(name)
        self._watches = metrics.watches.labels(name)
        self._last_success = metrics.last_success.labels(name)
        self._initial_sync = metrics.initial_sync.labels(name)
        self._last_success.set(0)
        self._watcher: Watcher | None = None  # the source's, read at each scrape
        self._watches.set_function(_reader(self._watch_count))

    def follow(self, pending: Pending, live: Callable[[], bool]) -> None:
        """Read the gauges from these at each scrape: the pending changes, whether it is live."""
        self._pending.set_function(_reader(pending.__len__))
        self._oldest.set_function(_reader(pending.oldest_age))
        self._initial_sync.set_function(_reader(live))

    def watching(self, watcher: Watcher | None) -> None:
        """The source's watcher now: its watches are counted at each scrape."""
        self._watcher = watcher

    def _watch_count(self) -> int:
        watcher = self._watcher  # a reference, replaced whole by the reader thread
        return 0 if watcher is None else count_watches(watcher)

    def events_read(self, events: list[Event]) -> None:
        """Count events by kind: one pass over what the reader queued."""
        if len(events) <= _FEW_EVENTS:  # an edit's read: an increment each beats tallying
            for event in events:
                self._events[event.kind].inc()
            return
        for kind, count in Tally(event.kind for event in events).items():
            self._events[kind].inc(count)

    def batch_applied(self, outcome: Outcome, seconds: float, waited: float) -> None:
        """A batch went through: its counts, its time and its oldest change's latency."""
        self._applied.inc()
        self._duration.observe(seconds)
        self._latency.observe(waited + seconds)
        if outcome.bytes:
            self._bytes.inc(outcome.bytes)
        self._last_success.set(time.time())

    def failed(self, kind: FailureKind) -> None:
        """A failed attempt; a failed batch counts as a batch too."""
        self._errors[kind].inc()
        if kind is FailureKind.APPLY:
            self._failed.inc()

    def full_resync(self, reason: ResyncReason) -> None:
        """A whole-tree comparison while live."""
        self._resyncs[reason].inc()

    def conflicted(self) -> None:
        self._conflicts.inc()

    def on_sync_ran(self, ok: bool) -> None:
        """An ON_SYNC run ended."""
        self._runs["ok" if ok else "failed"].inc()
        if not ok:
            self._errors[FailureKind.ON_SYNC].inc()


def _reader(read: Callable[[], float]) -> Callable[[], float]:
    """`read` for a scrape: a pair that cannot answer now shows 0 rather than failing it."""

    def value() -> float:
        try:
            return float(read())
        except Exception:
            return 0.0

    return value
