"""METRICS_ADDR: /metrics scraped over HTTP from a real daemon and parsed with prometheus_client's
own parser."""

from __future__ import annotations

import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import Daemon, DaemonPool, daemon_args, run_cli, wait_until
from pylsyncd.config.observability import Address
from pylsyncd.metrics import DaemonMetrics

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# Series that are not 0 at start, whatever happened: the build, the watches, the pair being live.
NOT_ZERO_AT_START = {
    "pylsyncd_build_info",
    "pylsyncd_watches",
    "pylsyncd_initial_sync_done",
}
FAMILIES = {
    "pylsyncd_events", "pylsyncd_batches", "pylsyncd_batch_duration_seconds",
    "pylsyncd_event_to_applied_seconds", "pylsyncd_transferred_bytes", "pylsyncd_errors",
    "pylsyncd_full_resyncs", "pylsyncd_on_sync_runs", "pylsyncd_conflicts",
    "pylsyncd_pending_changes",
    "pylsyncd_oldest_pending_change_age_seconds", "pylsyncd_watches",
    "pylsyncd_last_successful_batch_timestamp_seconds", "pylsyncd_initial_sync_done",
    "pylsyncd_build_info",
}  # fmt: skip


def scrape(port: int) -> Samples:
    """Every sample of /metrics but the `_created` timestamps, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def families(port: int) -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    # The text format gives each counter's `_created` timestamps a family of their own.
    return {
        family.name
        for family in text_string_to_metric_families(text)
        if not family.name.endswith("_created")
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    matches = [
        v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items()
    ]
    assert len(matches) == 1, f"{name} {labels}: {len(matches)} samples"
    return matches[0]


def start_with_metrics(
    daemons: DaemonPool, src: Path, dst: Path, *extra: str
) -> tuple[Daemon, int]:
    """A daemon serving metrics on a free port of 127.0.0.1; the port it says it took."""
    daemon = daemons.start(daemon_args(src, dst, "direct", "--metrics-addr", "127.0.0.1:0", *extra))
    port = int(daemon.wait_for_log(r"metrics on http://127\.0\.0\.1:(\d+)/metrics").group(1))
    daemon.wait_ready()
    return daemon, port


def test_every_series_is_there_at_start_and_one_edit_moves_exactly_its_counters(
    dirs: tuple[Path, Path], daemons: DaemonPool
) -> None:
    src, dst = dirs
    _, port = start_with_metrics(daemons, src, dst)
    assert families(port) == FAMILIES
    before = scrape(port)
    pair = f"{src} -> {dst}"
    for (name, labels), number in before.items():
        assert name == "pylsyncd_build_info" or ("pair", pair) in labels, name
        if name.startswith(tuple(NOT_ZERO_AT_START)):
            continue
        assert number == 0, f"{name} {dict(labels)} is {number} at start"
    assert value(before, "pylsyncd_initial_sync_done") == 1

    # One edit, one event: a file written elsewhere and renamed in (editors and tools save so).
    (src.parent / "file").write_bytes(b"twelve bytes")
    (src.parent / "file").rename(src / "file")
    wait_until(lambda: value(scrape(port), "pylsyncd_batches_total", result="applied") == 1)
    after = scrape(port)
    moved = {key: after[key] - before[key] for key in before if after[key] != before[key]}
    expected_counts = {
        ("pylsyncd_events_total", "created"): 1.0,
        ("pylsyncd_batches_total", "applied"): 1.0,
        ("pylsyncd_batch_duration_seconds_count", None): 1.0,
        ("pylsyncd_event_to_applied_seconds_count", None): 1.0,
        ("pylsyncd_transferred_bytes_total", None): 12.0,
    }
    for (name, label), delta in expected_counts.items():
        labels = {"kind": label} if name == "pylsyncd_events_total" else {}
        labels = {"result": label} if name == "pylsyncd_batches_total" else labels
        assert value(after, name, **labels) - value(before, name, **labels) == delta, name
    # Besides those: one bucket per histogram (and those above it), the sums, the last success.
    others = {
        name
        for name, _ in moved
        if name not in {n for n, _ in expected_counts} and not name.endswith(("_bucket", "_sum"))
    }
    assert others == {"pylsyncd_last_successful_batch_timestamp_seconds"}, moved
    last = value(after, "pylsyncd_last_successful_batch_timestamp_seconds")
    assert abs(time.time() - last) < 1
    assert value(after, "pylsyncd_batch_duration_seconds_count") == value(
        after, "pylsyncd_batches_total", result="applied"
    )


@pytest.fixture
def tmpfs_destination(tmp_path: Path) -> Iterator[Path]:
    """A destination on a tmpfs the test can remount read-only: a real write failure."""
    target = tmp_path / "dst"
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_a_read_only_destination_counts_one_error_per_failed_attempt(
    tmp_path: Path, daemons: DaemonPool, tmpfs_destination: Path
) -> None:
    src, dst = tmp_path / "src", tmpfs_destination
    src.mkdir()
    daemon, port = start_with_metrics(daemons, src, dst)
    subprocess.run(["mount", "-o", "remount,ro", str(dst)], check=True)
    try:
        (src / "blocked").write_text("waits for a writable destination")
        wait_until(lambda: value(scrape(port), "pylsyncd_errors_total", kind="apply") >= 2, 20)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(dst)], check=True)
    wait_until(lambda: (dst / "blocked").exists(), timeout=60)
    wait_until(lambda: value(scrape(port), "pylsyncd_batches_total", result="applied") >= 1)
    samples = scrape(port)
    # Each failed attempt has its own log line (batch_log), and one count.
    failures = len(re.findall(r"\d+ failed from \d+ events", daemon.log_text()))
    assert value(samples, "pylsyncd_errors_total", kind="apply") == failures
    assert value(samples, "pylsyncd_batches_total", result="failed") == failures
    assert value(samples, "pylsyncd_errors_total", kind="initial_sync") == 0


def test_two_registries_in_one_process_serve_their_own_series() -> None:
    first, second = DaemonMetrics("1"), DaemonMetrics("2")
    try:
        first.pair("a -> b")
        first.serve(Address("127.0.0.1", 0))
        second.serve(Address("127.0.0.1", 0))
        assert ("pylsyncd_build_info", frozenset({("version", "1")})) in scrape(first.port)
        assert ("pylsyncd_build_info", frozenset({("version", "2")})) in scrape(second.port)
        assert not any(name == "pylsyncd_batches_total" for name, _ in scrape(second.port))
    finally:
        first.close()
        second.close()


def test_a_bad_or_taken_metrics_address_is_one_line_and_touches_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    bad = run_cli(str(src), str(tmp_path / "dst"), "--metrics-addr", "9108", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        "pylsyncd: error: --metrics-addr='9108' is not valid: give HOST:PORT, "
        "e.g. 0.0.0.0:9108 or 127.0.0.1:9108"
    ]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            str(src), str(tmp_path / "dst"), "--metrics-addr", f"127.0.0.1:{port}", cwd=tmp_path
        )
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "Address already in use" in result.stderr
    assert not (tmp_path / "dst").exists()
