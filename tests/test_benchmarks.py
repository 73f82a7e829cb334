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
    "mount",
    "files",
    "duration_seconds",
}
MOUNT_TARGETS = 8  # rows of the host-mount section, each with its target and met/missed
FILES_TARGETS = 16  # rows of the files section, each with met/missed per pylsyncd backend
FILES_WORKLOADS = {"appends", "rewrites", "big_write", "saves", "real_tree", "dirs"}
EDITORS = {"vim", "VS Code", "JetBrains", "emacs", "sed -i"}


def run_harness(
    tmp_path: Path, peers: str, workloads: str = "live,initial,idle", timeout: float = 90
) -> dict[str, Any]:
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
            "--workloads",
            workloads,
        ],
        cwd=REPOSITORY,
        check=True,
        timeout=timeout,
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
        # A peer's replica may end incomplete (lsyncd loses changes under load: the page says
        # so); pylsyncd's never.
        ours = peer.startswith("pylsyncd")
        for workload in LIVE_WORKLOADS:
            complete = live[workload]["complete"]
            assert complete if ours else isinstance(complete, bool), f"{peer} {workload}"
            assert live[workload]["cpu_seconds"] >= 0
        assert live["edit"]["edits"] == results["sizes"]["edits"]
        for workload in ("storm", "rename", "delete"):
            assert live[workload]["seconds"] is not None or not live[workload]["complete"]
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


@pytest.mark.skipif(shutil.which("bindfs") is None, reason="bindfs is not installed")
def test_harness_measures_a_host_mount(tmp_path: Path) -> None:
    peers = "pylsyncd-direct" + (",lsyncd-direct" if shutil.which("lsyncd") else "")
    results = run_harness(tmp_path, peers, "mount")
    mount = results["mount"]
    tree, forwarded, big = mount["tree"], mount["forwarded"], mount["big_tree"]
    sizes = results["sizes"]["mount"]
    # Every change arrived, on host side and through the mount, and the replica was complete.
    assert None not in tree["cold"]["seconds"] + tree["hot"]["seconds"]
    assert len(tree["hot"]["seconds"]) == sizes["hot_edits"]
    assert None not in forwarded["edit"]["seconds"]
    assert tree["storm"]["complete"] and tree["complete"]
    assert big["entries"] == big["find"]["entries"] > tree["entries"]
    for idle in (tree["idle"], tree["slow_period_idle"], forwarded["idle"], big["idle"]):
        assert idle["rss_mb"] > 0 and idle["cpu_seconds"] >= 0
    if "lsyncd" in mount:
        # lsyncd runs, and sees what is written through the mount.
        assert mount["lsyncd"]["through_mount_seconds"] is not None
    page = (tmp_path / "out" / "benchmarks.md").read_text()
    section = page.split("## Host mounts without inotify (bindfs)")[1].split("\n## ")[0]
    assert section.count(" | met |") + section.count(" | **missed** |") == MOUNT_TARGETS
    assert f"`POLL_PERIOD={tree['slow_period_seconds']:g}`" in section
    # No mount is left behind.
    assert not (tmp_path / "pylsyncd-bench" / "mount").exists()


def test_harness_measures_the_files_group(tmp_path: Path) -> None:
    ours = ["pylsyncd-direct", "pylsyncd-rsync"]
    peers = ours + (["lsyncd-direct", "lsyncd-rsync"] if shutil.which("lsyncd") else [])
    results = run_harness(tmp_path, ",".join(peers), "files")
    files, sizes = results["files"], results["sizes"]["files"]
    assert set(files) == {*peers, "cp", "real_tree", "duration_seconds"}
    assert files["real_tree"]["entries"] > 0 and files["cp"]["dirs"]["seconds"] > 0
    for peer in peers:
        entry = files[peer]
        assert set(entry) >= FILES_WORKLOADS
        appends, rewrites = entry["appends"], entry["rewrites"]
        assert appends["appended_bytes"] == 4096 * appends["appends"] > 0
        assert rewrites["rewrites"] == sizes["rewrites"] and rewrites["changed_bytes"] > 0
        assert entry["big_write"]["file_bytes"] == sizes["write_bytes"]
        assert len(entry["big_write"]["cp_runs"]) == 3
        assert len(entry["big_write"]["alone_runs"]) == 3
        assert set(entry["saves"]) == EDITORS
        assert entry["real_tree"]["entries"] == files["real_tree"]["entries"]
        assert entry["dirs"]["directories"] == sizes["dirs"] and entry["dirs"]["rss_mb"] > 0
        if peer in ours:
            # pylsyncd mirrors every one of them; lsyncd's rsync skips same-size rewrites.
            for workload in ("appends", "rewrites", "big_write", "real_tree", "dirs"):
                assert entry[workload]["complete"], f"{peer} {workload}: replica incomplete"
            for editor, run in entry["saves"].items():
                assert run["complete"] and run["arrived"] == run["saves"], f"{peer} {editor}"
                assert run["log_problems"] == 0, f"{peer} {editor}: ERROR/WARNING logged"
    page = (tmp_path / "out" / "benchmarks.md").read_text()
    section = page.split("## Big files, editor saves, a real tree, many directories")[1]
    section = section.split("\n## ")[0]
    marks = section.count(" | met") + section.count(" | **missed**")
    assert marks == FILES_TARGETS * len(ours)


def test_harness_measures_the_gitignore_group(tmp_path: Path) -> None:
    peers = ["pylsyncd-direct", "pylsyncd-rsync"]
    results = run_harness(tmp_path, ",".join(peers), "gitignore")
    group = results["gitignore"]
    assert set(group) == set(peers)
    for peer in peers:
        entry = group[peer]
        assert (
            entry["files"]
            == results["sizes"]["storm_dirs"] * results["sizes"]["storm_files_per_dir"]
        )
        assert entry["plain"]["complete"] and entry["gitignore"]["complete"], peer
        assert entry["ratio"] is not None
    page = (tmp_path / "out" / "benchmarks.md").read_text()
    section = page.split("## A storm inside a tree of nested .gitignore files")[1]
    assert section.split("\n## ")[0].count(" (met) |") + section.count(" (missed) |") == 2


def test_harness_measures_the_remote_group(tmp_path: Path) -> None:
    # pylsyncd over ssh, and its local rsync backend for the real tree. lsyncd's rsyncssh is
    # left out here: its ssh login per rsync would double the group's time in the suite.
    results = run_harness(tmp_path, "pylsyncd-rsync", "remote", timeout=180)
    group = results["remote"]
    assert set(group["live"]) == set(group["fan_out"]) == {"pylsyncd-remote"}
    ours = group["live"]["pylsyncd-remote"]
    for workload in LIVE_WORKLOADS:
        assert ours[workload]["complete"], f"over ssh, {workload}: replica incomplete"
    assert ours["edit"]["edits"] == results["sizes"]["edits"]
    assert ours["logins"] == 1  # one master connection carried every batch
    tree = group["real_tree"]
    for key in ("pylsyncd-rsync", "pylsyncd-remote"):
        assert tree[key]["complete"] and tree[key]["entries"] == tree["entries"] > 0, key
    fan_out = group["fan_out"]["pylsyncd-remote"]
    edits = results["sizes"]["remote"]["fan_out_edits"]
    for phase in ("single", "three", "live"):
        assert fan_out[phase]["complete"] and fan_out[phase]["edits"] == edits, phase
    assert fan_out["complete"] and fan_out["catch_up_seconds"] is not None
    section = page_section(tmp_path, "## Remote destinations over ssh")
    assert section.count("pylsyncd over ssh") >= 2 and "Not run" not in section
    # Every sshd was stopped: none is left listening.
    assert not [line for line in _processes() if "sshd" in line and str(tmp_path) in line]


def test_harness_measures_the_two_way_group(tmp_path: Path) -> None:
    results = run_harness(tmp_path, "pylsyncd-direct", "two-way", timeout=180)
    group, sizes = results["two_way"], results["sizes"]
    for key, edits in (("pylsyncd-two-way", sizes["edits"]), ("unison-repeat", 1)):
        live = group[key]["live"]
        for workload in ("a_to_b", "b_to_a"):
            assert live[workload]["complete"] and live[workload]["edits"] == edits, key
        assert live["storm_a"]["complete"] and live["storm_b"]["complete"], key
        assert live["echo"]["arrived"] == live["echo"]["edits"] > 0, key
        churn = group[key]["churn"]
        assert len(churn["seeds"]) == sizes["two_way"]["churn_seeds"]
        assert churn["versions"] > 0
        assert group["union"][key]["complete"], key
    ours = group["pylsyncd-two-way"]
    assert ours["churn"]["lost"] == 0 and ours["churn"]["converged"] == 1
    assert ours["live"]["echo"]["echo_batches"] == 0
    section = page_section(tmp_path, "## Two-way sync, beside unison")
    assert "-copyonconflict" in section and "Not run" not in section


def page_section(tmp_path: Path, heading: str) -> str:
    """The part of the written page below `heading`, up to the next section."""
    page = (tmp_path / "out" / "benchmarks.md").read_text()
    return page.split(heading)[1].split("\n## ")[0]


def _processes() -> list[str]:
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
    return lines
