"""Smoke run of the benchmark harness at tiny sizes, so it cannot rot; no timing is asserted."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
LIVE_WORKLOADS = {"edit", "storm", "rename", "delete"}
EXPECTED_KEYS = {
    "started",
    "sizes",
    "machine",
    "live",
    "initial_sync",
    "idle",
    "duration_seconds",
}


def run_harness(tmp_path: Path, peers: str) -> dict[str, Any]:
    """`python -m benchmarks.run --size tiny` in `tmp_path`; returns the results JSON."""
    out = tmp_path / "out"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--size",
            "tiny",
            "--dir",
            str(tmp_path),
            "--out",
            str(out),
            "--peers",
            peers,
        ],
        cwd=REPOSITORY,
        check=True,
        timeout=90,
    )
    assert (out / "benchmarks.md").read_text().startswith("# Benchmarks")
    assert (out / "benchmarks.png").read_bytes().startswith(b"\x89PNG")
    results: dict[str, Any] = json.loads((out / "benchmarks.json").read_text())
    return results


def assert_complete(results: dict[str, Any], peers: list[str]) -> None:
    """Every peer ran every workload, and every replica measured was complete."""
    assert set(results) >= EXPECTED_KEYS
    assert {"nproc", "load_before", "load_after", "filesystem"} <= set(results["machine"])
    assert set(results["live"]) == set(peers)
    for peer in peers:
        live = results["live"][peer]
        assert set(live) == LIVE_WORKLOADS
        for workload in LIVE_WORKLOADS:
            assert live[workload]["complete"], f"{peer} {workload}: replica incomplete"
            assert live[workload]["cpu_seconds"] >= 0
        assert live["edit"]["edits"] == results["sizes"]["edits"]
        for workload in ("storm", "rename", "delete"):
            assert live[workload]["seconds"] is not None
        idle = results["idle"][peer]
        assert idle["complete"] and idle["rss_mb"] > 0
    assert set(results["initial_sync"]) == {"cp -a", "rsync -a", *peers}
    for name, entry in results["initial_sync"].items():
        assert entry["complete"], f"initial sync {name}: replica incomplete"
        assert len(entry["runs"]) == results["sizes"]["initial_repeats"]


def test_harness_measures_both_backends(tmp_path: Path) -> None:
    peers = ["pylsyncd-direct", "pylsyncd-rsync"]
    assert_complete(run_harness(tmp_path, ",".join(peers)), peers)


@pytest.mark.skipif(shutil.which("lsyncd") is None, reason="lsyncd is not installed")
def test_harness_measures_lsyncd(tmp_path: Path) -> None:
    peers = ["lsyncd-direct", "lsyncd-rsync"]
    assert_complete(run_harness(tmp_path, ",".join(peers)), peers)
