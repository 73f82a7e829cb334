"""A two-way pair with what one-way pairs have: ON_SYNC after the batches that wrote, GITIGNORE
read from the source's ignore files (and followed live, from either side), and its batches in
the metrics."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import test_two_way_daemon
from helpers import wait_until, write_file
from test_metrics import scrape, value
from test_on_sync import recorder, run_paths
from test_two_way_daemon import Sides

sides = test_two_way_daemon.sides  # the fixture of two fresh roots


def test_on_sync_runs_for_what_either_side_brought_never_for_the_start(
    sides: Sides, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_file(sides.a / "at-start", "merged at the first start: no run for it")
    script, runs = recorder(tmp_path)
    monkeypatch.setenv("RUNS", str(runs))
    daemon = sides.start(f"--on-sync={script}")
    assert (sides.b / "at-start").exists()
    write_file(sides.a / "from-a", "a's edit")
    wait_until(lambda: len(run_paths(runs)) == 1)
    write_file(sides.b / "sub" / "from-b", "b's edit")
    wait_until(lambda: len(run_paths(runs)) == 2)
    assert (sides.a / "sub" / "from-b").read_text() == "b's edit"
    recorded = run_paths(runs)
    assert recorded[0] == ["from-a"]
    assert recorded[1] == ["sub", "sub/from-b"]
    environment = (runs / "1.env").read_text().splitlines()
    assert f"PYLSYNCD_SOURCE={sides.a}" in environment
    assert f"PYLSYNCD_DESTINATION={sides.b}" in environment
    assert "PYLSYNCD_CHANGED=2" in environment
    assert "PYLSYNCD_COPIED=2" in environment
    # The daemon's own writes raise events too: those batches write nothing and run nothing.
    sides.wait_equal(daemon)
    daemon.stop()
    assert len(run_paths(runs)) == 2, run_paths(runs)


def test_on_sync_paths_limit_a_two_way_pair_too(
    sides: Sides, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script, runs = recorder(tmp_path)
    monkeypatch.setenv("RUNS", str(runs))
    daemon = sides.start(f"--on-sync={script}", "--on-sync-paths", "*.py")
    write_file(sides.b / "notes.txt", "no run")
    wait_until(lambda: (sides.a / "notes.txt").exists())
    write_file(sides.b / "app.py", "a run")
    wait_until(lambda: len(run_paths(runs)) == 1)
    assert run_paths(runs) == [["app.py"]]
    daemon.stop()


def test_gitignore_leaves_out_what_the_source_ignores_on_both_sides(sides: Sides) -> None:
    write_file(sides.a / ".gitignore", "*.log\nbuild/\n")
    write_file(sides.a / "keep.txt", "kept")
    write_file(sides.a / "a.log", "a's own log")
    write_file(sides.b / "b.log", "b's own log")
    write_file(sides.b / "build" / "out.o", "b's build output")
    daemon = sides.start("--gitignore")
    assert (sides.b / "keep.txt").read_text() == "kept"
    assert (sides.b / ".gitignore").exists()
    # What git ignores is neither copied nor deleted, on either side.
    write_file(sides.b / "build" / "more.o", "more output")
    write_file(sides.a / "late.log", "ignored too")
    write_file(sides.b / "from-b.txt", "synced")
    wait_until(lambda: (sides.a / "from-b.txt").exists())
    (sides.a / "keep.txt").unlink()
    wait_until(lambda: not (sides.b / "keep.txt").exists())
    assert not (sides.b / "a.log").exists() and not (sides.b / "late.log").exists()
    assert not (sides.a / "b.log").exists() and not (sides.a / "build").exists()
    assert (sides.a / "a.log").read_text() == "a's own log"
    assert (sides.b / "b.log").read_text() == "b's own log"
    assert sorted(os.listdir(sides.b / "build")) == ["more.o", "out.o"]
    daemon.stop()


def test_an_ignore_file_edited_on_the_destination_takes_effect_on_both(sides: Sides) -> None:
    write_file(sides.a / ".gitignore", "*.log\n")
    write_file(sides.a / "a.log", "a's log")
    write_file(sides.b / "b.tmp", "b's scratch file")
    daemon = sides.start("--gitignore")
    wait_until(lambda: (sides.a / "b.tmp").exists())
    # On b: *.log is no longer ignored, *.tmp is. The edit reaches a, whose rules then change.
    write_file(sides.b / ".gitignore.new", "*.tmp\n")
    (sides.b / ".gitignore.new").rename(sides.b / ".gitignore")
    wait_until(lambda: (sides.b / "a.log").exists(), timeout=20)
    assert (sides.a / ".gitignore").read_text() == "*.tmp\n"
    # Newly ignored: stays where it is on both sides, and is no longer synchronised.
    write_file(sides.b / "b.tmp", "changed, ignored now")
    write_file(sides.b / "marker", "after the edit")
    wait_until(lambda: (sides.a / "marker").exists())
    assert (sides.a / "b.tmp").read_text() == "b's scratch file"
    (sides.a / "b.tmp").unlink()
    write_file(sides.a / "marker2", "after the deletion")
    wait_until(lambda: (sides.b / "marker2").exists())
    assert (sides.b / "b.tmp").read_text() == "changed, ignored now"
    daemon.stop()


def test_a_two_way_batch_moves_the_batch_metrics_once(sides: Sides) -> None:
    daemon = sides.start("--metrics-addr", "127.0.0.1:0")
    port = int(daemon.wait_for_log(r"metrics on http://127\.0\.0\.1:(\d+)/metrics").group(1))
    before = scrape(port)
    assert value(before, "pylsyncd_batches_total", result="applied") == 0
    (sides.b.parent / "file").write_bytes(b"twelve bytes")
    (sides.b.parent / "file").rename(sides.b / "file")  # one event, on the destination
    wait_until(lambda: (sides.a / "file").exists())
    wait_until(lambda: value(scrape(port), "pylsyncd_batches_total", result="applied") == 1)
    sides.wait_equal(daemon)
    after = scrape(port)
    # The echo of the daemon's own write on a is a batch that writes nothing: not counted.
    assert value(after, "pylsyncd_batches_total", result="applied") == 1
    assert value(after, "pylsyncd_event_to_applied_seconds_count") == 1
    assert value(after, "pylsyncd_transferred_bytes_total") == 12
    assert value(after, "pylsyncd_events_total", kind="created") >= 1  # b's event (and a's echo)
    assert value(after, "pylsyncd_errors_total", kind="apply") == 0
    daemon.stop()
