"""docs/benchmarks.md from the results JSON: targets, ratios to the peers, CPU and memory.

It reads only the JSON (`python -m benchmarks.run --render results.json` redoes the page), and
appends `benchmarks/notes.md`, the hand-written profile findings, verbatim.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.files_report import files_section
from benchmarks.gitignore_storm import gitignore_section
from benchmarks.mount_report import mount_section, seconds_text
from benchmarks.remote_report import remote_section
from benchmarks.tables import (
    LSYNCD,
    OURS,
    PEER_NAMES,
    Results,
    load_text,
    markdown_table,
    met_text,
)
from benchmarks.two_way_report import two_way_section

NOTES = os.path.join(os.path.dirname(__file__), "notes.md")


@dataclass(frozen=True)
class Figure:
    """One measured time: `seconds` is the cap itself when the wait was capped."""

    seconds: float
    capped: bool
    complete: bool


@dataclass(frozen=True)
class Target:
    workload: str
    target: str
    met: Callable[[Results, str], bool | None]


def figure_text(figure: Figure | None) -> str:
    if figure is None:
        return "-"
    text = (">= " if figure.capped else "") + seconds_text(figure.seconds)
    return text if figure.complete or figure.capped else f"{text} (replica incomplete)"


def live_figure(results: Results, peer: str, workload: str) -> Figure | None:
    """The storm, rename or delete time of one daemon, or None when it was not run."""
    entry = results["live"].get(peer, {}).get(workload)
    if entry is None:
        return None
    if entry["seconds"] is None:
        return Figure(entry["capped_at"], capped=True, complete=False)
    return Figure(entry["seconds"], capped=False, complete=entry["complete"])


def edit_figure(results: Results, peer: str, key: str = "p50_ms") -> Figure | None:
    entry = results["live"].get(peer, {}).get("edit")
    if entry is None or entry[key] is None:
        return None
    return Figure(entry[key] / 1e3, capped=False, complete=entry["complete"])


def initial_figure(results: Results, name: str) -> Figure | None:
    entry = results["initial_sync"].get(name)
    if entry is None:
        return None
    return Figure(entry["seconds"], capped=False, complete=entry["complete"])


def _ratio_to_floor(results: Results, name: str, floor: str = "cp -a") -> float | None:
    ours, base = initial_figure(results, name), initial_figure(results, floor)
    return None if ours is None or base is None else ours.seconds / base.seconds


def _within(figure: Figure | None, limit: float) -> bool | None:
    return None if figure is None else figure.complete and figure.seconds <= limit


TARGETS = (
    Target("one edit, p50", "<= 1 ms", lambda r, p: _within(edit_figure(r, p), 0.001)),
    Target(
        "storm, after the last write",
        "<= 1.5 s",
        lambda r, p: _within(live_figure(r, p, "storm"), 1.5),
    ),
    Target(
        "rename of that tree", "<= 0.1 s", lambda r, p: _within(live_figure(r, p, "rename"), 0.1)
    ),
    Target("delete of that tree", "<= 1 s", lambda r, p: _within(live_figure(r, p, "delete"), 1.0)),
    Target(
        "initial sync",
        "<= 1.2x cp -a",
        lambda r, p: None if (x := _ratio_to_floor(r, p)) is None else x <= 1.2,
    ),
    Target(
        "idle CPU while watching",
        "0 (< 0.01 % of a core)",
        lambda r, p: None if p not in r["idle"] else r["idle"][p]["cpu_percent"] < 0.01,
    ),
    Target(
        "RSS while watching",
        "<= 40 MB",
        lambda r, p: None if p not in r["idle"] else r["idle"][p]["rss_mb"] <= 40,
    ),
)


def _peers(results: Results, names: tuple[str, ...] = (*OURS, *LSYNCD)) -> list[str]:
    return [name for name in names if name in results["live"] or name in results["idle"]]


def _speedup(ours: Figure | None, theirs: Figure | None) -> str:
    """How many times faster pylsyncd was; ">=" when the peer hit the cap."""
    if ours is None or theirs is None or ours.capped:
        return "-"
    ratio = theirs.seconds / max(ours.seconds, 1e-9)
    digits = 0 if ratio >= 10 else 1 if ratio >= 1 else 2
    return f"{'>= ' if theirs.capped else ''}{ratio:.{digits}f}x"


def _summary_cell(results: Results, target: Target, peer: str) -> str:
    live = {
        "one edit, p50": lambda: figure_text(edit_figure(results, peer)),
        "storm, after the last write": lambda: figure_text(live_figure(results, peer, "storm")),
        "rename of that tree": lambda: figure_text(live_figure(results, peer, "rename")),
        "delete of that tree": lambda: figure_text(live_figure(results, peer, "delete")),
    }
    if target.workload in live:
        return live[target.workload]()
    if target.workload == "initial sync":
        figure, ratio = initial_figure(results, peer), _ratio_to_floor(results, peer)
        return "-" if ratio is None else f"{figure_text(figure)} ({ratio:.2f}x cp -a)"
    idle = results["idle"].get(peer)
    if idle is None:
        return "-"
    if target.workload.startswith("idle CPU"):
        window = f"{idle['cpu_seconds'] * 1e3:.1f} ms in {idle['window_seconds']:.0f} s"
        return f"{idle['cpu_percent']:.2f} % ({window})"
    return f"{idle['rss_mb']:.1f} MiB"


def summary_table(results: Results) -> list[str]:
    peers = _peers(results)
    ours = [peer for peer in OURS if peer in peers]
    header = ["workload", "target", *(PEER_NAMES[p] for p in peers)]
    header += [f"target met, {PEER_NAMES[p]}" for p in ours]
    rows = []
    for target in TARGETS:
        row = [target.workload, target.target]
        row += [_summary_cell(results, target, peer) for peer in peers]
        row += [met_text(target.met(results, peer)) for peer in ours]
        rows.append(row)
    return markdown_table(header, rows)


def ratio_table(results: Results) -> list[str]:
    peers = _peers(results)
    pairs = [(o, t) for o in OURS if o in peers for t in LSYNCD if t in peers]
    header = ["workload", *(f"{PEER_NAMES[o]} vs {PEER_NAMES[t]}" for o, t in pairs)]
    workloads: list[tuple[str, Callable[[str], Figure | None]]] = [
        ("one edit, p50", lambda p: edit_figure(results, p)),
        ("one edit, p99", lambda p: edit_figure(results, p, "p99_ms")),
        ("storm, after the last write", lambda p: live_figure(results, p, "storm")),
        ("rename of that tree", lambda p: live_figure(results, p, "rename")),
        ("delete of that tree", lambda p: live_figure(results, p, "delete")),
        ("initial sync", lambda p: initial_figure(results, p)),
    ]
    rows = [[name, *(_speedup(get(o), get(t)) for o, t in pairs)] for name, get in workloads]
    return markdown_table(header, rows)


def live_detail_table(results: Results) -> list[str]:
    peers = [p for p in _peers(results) if p in results["live"]]
    rows = []
    for peer in peers:
        live = results["live"][peer]
        edit, storm = live["edit"], live["storm"]
        rows.append(
            [
                PEER_NAMES[peer],
                "-" if edit["p50_ms"] is None else f"{edit['p50_ms']:.2f} ms",
                "-" if edit["p99_ms"] is None else f"{edit['p99_ms']:.2f} ms",
                "-" if edit["max_ms"] is None else f"{edit['max_ms']:.1f} ms",
                f"{storm['write_seconds']:.2f} s",
                figure_text(live_figure(results, peer, "storm")),
                f"{storm['peak_rss_mb']:.0f} MiB",
                f"{storm['peak_children_rss_mb']:.0f} MiB",
            ]
        )
    header = ["daemon", "edit p50", "edit p99", "edit max", "writing the storm"]
    header += ["storm, after last write", "peak RSS, storm", "peak RSS of children, storm"]
    return markdown_table(header, rows)


def initial_sync_table(results: Results) -> list[str]:
    rows = []
    floor_cpu = results["initial_sync"].get("cp -a", {}).get("cpu_seconds", 0.0)
    for name, entry in results["initial_sync"].items():
        runs = ", ".join(f"{run:.2f}" for run in entry["runs"])
        rows.append(
            [
                PEER_NAMES.get(name, f"`{name}` (floor)"),
                figure_text(initial_figure(results, name)),
                runs,
                f"{_ratio_to_floor(results, name, 'cp -a') or 0:.2f}x",
                f"{_ratio_to_floor(results, name, 'rsync -a') or 0:.2f}x",
                f"{entry['cpu_seconds']:.2f} s",
                f"{entry['cpu_seconds'] / max(floor_cpu, 1e-9):.2f}x",
                "yes" if entry["complete"] else "**no**",
            ]
        )
    header = ["contender", "median", "runs (s)", "x cp -a", "x rsync -a", "CPU", "CPU x cp -a"]
    header.append("complete")
    return markdown_table(header, rows)


def cpu_table(results: Results) -> list[str]:
    peers = _peers(results)
    rows = []
    for workload in ("edit", "storm", "rename", "delete"):
        cells = []
        for peer in peers:
            entry = results["live"].get(peer, {}).get(workload)
            cells.append("-" if entry is None else f"{entry['cpu_seconds']:.2f} s")
        rows.append([workload, *cells])
    initial = results["initial_sync"]
    rows.append(
        [
            "initial sync",
            *(f"{initial[p]['cpu_seconds']:.2f} s" if p in initial else "-" for p in peers),
        ]
    )
    idle = results["idle"]
    rows.append(
        ["idle window", *(f"{idle[p]['cpu_seconds']:.3f} s" if p in idle else "-" for p in peers)]
    )
    return markdown_table(["workload", *(PEER_NAMES[p] for p in peers)], rows)


def machine_lines(results: Results) -> list[str]:
    machine, sizes = results["machine"], results["sizes"]
    load_before = ", ".join(f"{x:.2f}" for x in machine["load_before"])
    load_after = ", ".join(f"{x:.2f}" for x in machine["load_after"])
    return [
        f"- Run: {results['started']}, {results['duration_seconds']:.0f} s,"
        f" sizes `{sizes['name']}`.",
        f"- Machine: {machine['nproc']} cores, Linux {machine['kernel']},"
        f" Python {machine['python']}; load average (1, 5, 15 min) {load_before} before,"
        f" {load_after} after ({load_text(machine['load_before'][0])}).",
        f"- Filesystem of source and replica: {machine['filesystem']}.",
        f"- Peers: lsyncd {machine['lsyncd'].removeprefix('Version: ')}; {machine['rsync']};"
        f" {machine['cp']}.",
        "",
    ]


def method_lines(results: Results) -> list[str]:
    sizes = results["sizes"]
    return [
        "## How it is measured",
        "",
        "- Every daemon runs with DELAY=0: pylsyncd `--delay 0 --backend direct|rsync`; lsyncd with"
        " a Lua config `sync { default.direct|default.rsync, source=..., target=..., delay = 0 }`,"
        " all else its defaults (`default.direct` acts with `cp`, `rm` and `mv` per event and"
        " starts with one rsync; `default.rsync` runs one rsync per batch; both one process at a"
        " time).",
        f"- One edit: one file rewritten {sizes['edits']} times, 10 ms apart (after one uncounted"
        " create); from `close()` of the write to the replica's file holding the new content"
        " (a busy read loop). Sizes alternate, so rsync's quick check (size and mtime) never"
        " skips an edit made within one mtime tick.",
        f"- Storm: {sizes['storm_dirs']} directories of {sizes['storm_files_per_dir']} files of"
        f" {sizes['storm_bytes']} bytes, written in a new directory `tree` as fast as Python can"
        " (mkdir, then open/write/close); from the last `close()` to every file present in the"
        " replica with its size. Rename: one `rename(tree, renamed)` (timed from just before the"
        " call), until the replica has all"
        " of `renamed` and no `tree`. Delete: `rm -rf renamed`, from rm's exit until the replica"
        " has no `renamed`. A time ends at the start of the check that found the replica"
        " complete (the check only lists directories not yet found complete, and looks for the"
        " old name first, so a tree that lands at once is not charged for listing 10,000 files).",
        "- After each workload, untimed, source and replica are compared fully (entries, types,"
        " sizes, contents); `complete` in the JSON records it.",
        f"- A wait is capped at {sizes['cap']:.0f} s and reported as `>= cap`; the daemon is then"
        " stopped, the replica made equal with `rsync -a --delete`, and the daemon restarted, so"
        " the next workload starts from a complete replica.",
        f"- Initial sync: {sizes['initial_files']} files of {sizes['initial_bytes']} bytes in"
        f" directories of {sizes['initial_files_per_dir']}, into an empty directory. Floors:"
        " `cp -a SRC/. DST` and `rsync -a SRC/ DST`. Daemons: from spawn to their own line that"
        " the initial sync is done (pylsyncd `ready:`, lsyncd `Startup of ... finished`), so"
        " pylsyncd's figure includes Python's start-up. Every contender runs once in turn,"
        f" {sizes['initial_repeats']} round(s); the median is reported.",
        f"- Idle: {sizes['idle_dirs']} empty directories, daemon started and ready, 1 s to settle,"
        f" then CPU over {sizes['idle_window']:.0f} s (the process's CPU-time clock, to the"
        " nanosecond: /proc counts 10 ms ticks) and VmRSS.",
        "- CPU: utime+stime+cutime+cstime from `/proc/PID/stat` of the daemon, plus those of its"
        " descendants still running: the rsync, cp, rm and mv children count as the daemon's."
        " RSS: `VmRSS` from `/proc/PID/status` of the daemon process itself (pylsyncd: the Python"
        " process); its children's RSS is sampled every 100 ms during the storm and shown apart.",
        "",
    ]


def render_markdown(results: Results) -> str:
    """The whole results page."""
    lines = [
        "# Benchmarks",
        "",
        "pylsyncd beside lsyncd 2.2.3 and the copy floors, in one run on one machine. Written by"
        " `./dev bench` (`python -m benchmarks.run`); the figures are in `benchmarks.json`, the"
        " chart is `benchmarks.png`. This machine is shared and noisy: compare within a run (the"
        " ratios), not across runs.",
        "",
        *machine_lines(results),
        "![pylsyncd beside lsyncd and the copy floors](benchmarks.png)",
        "",
        "## Against the targets",
        "",
        "The targets are for pylsyncd's default `direct` backend; the `rsync` backend's"
        " column is for reference: it pays for one rsync process per batch, like lsyncd's"
        ' `default.rsync`. Where a target is missed, "Where the time goes" below says why.',
        "",
        *summary_table(results),
        *mount_section(results),
        *files_section(results),
        *gitignore_section(results),
        *remote_section(results),
        *two_way_section(results),
        "## How many times faster pylsyncd was",
        "",
        "The peer's time divided by pylsyncd's, measured in the same run (`>=` where the peer hit"
        " the cap).",
        "",
        *ratio_table(results),
        "## Initial sync",
        "",
        *initial_sync_table(results),
        "## Live workloads in detail",
        "",
        *live_detail_table(results),
        "## Daemon CPU seconds per workload",
        "",
        "Including every child process the daemon started.",
        "",
        *cpu_table(results),
        *method_lines(results),
    ]
    if os.path.exists(NOTES):
        with open(NOTES) as notes:
            lines += [notes.read().rstrip(), ""]
    return "\n".join(lines)


def write_markdown(results: Results, path: str) -> None:
    with open(path, "w") as page:
        page.write(render_markdown(results))
