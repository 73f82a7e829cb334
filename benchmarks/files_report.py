"""The "files" section of docs/benchmarks.md: big files, editor saves, a real tree, directories.

Reads only results["files"] (absent from a JSON written before the group existed: then the
section says it was not run).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.mount_report import seconds_text
from benchmarks.tables import OURS, PEER_NAMES, Results, markdown_table, met_text

_MIB = 1024 * 1024
EDITORS = ("vim", "VS Code", "JetBrains", "emacs", "sed -i")


@dataclass(frozen=True)
class Cell:
    """One daemon's figure for one row: its text, and whether the target was met."""

    text: str
    met: bool | None


@dataclass(frozen=True)
class Row:
    """One target: how to read the floor beside it and each daemon's figure from its entry."""

    workload: str
    target: str
    cell: Callable[[dict[str, Any]], Cell]
    floor: Callable[[dict[str, Any]], float] | None = None  # measured in each daemon's run
    floor_text: Callable[[float], str] = str
    floor_label: str = "{}"  # where the figure (or the range of them) goes


def mib_text(size: float) -> str:
    """Bytes as MiB, with the digits a small figure needs."""
    mib = size / _MIB
    return f"{mib:,.0f} MiB" if mib >= 100 else f"{mib:.2f} MiB"


def _lag(seconds: float | None, limit: float, cap_text: str) -> Cell:
    if seconds is None:
        return Cell(f"not equal after {cap_text}", False)
    return Cell(seconds_text(seconds), seconds <= limit)


def _written(entry: dict[str, Any], floor_key: str) -> Cell:
    floor = entry[floor_key]
    limit = 2 * floor + _MIB
    written = entry["written_bytes"]
    text = f"{mib_text(written)} ({written / max(floor, 1):,.0f}x)"
    if "written_window_bytes" in entry:
        text += f"; in the window {mib_text(entry['written_window_bytes'])}"
    return Cell(text if entry["complete"] else f"{text}, not equal", written <= limit)


def _append_rows(cap: str) -> list[Row]:
    return [
        Row(
            "appends: bytes written, until equal",
            "<= 2x appended + 1 MiB",
            lambda e: _written(e["appends"], "appended_bytes"),
            lambda e: e["appends"]["appended_bytes"],
            mib_text,
            "{} appended",
        ),
        Row(
            "appends: lag after the last append",
            "<= 50 ms",
            lambda e: _lag(e["appends"]["lag_seconds"], 0.05, cap),
        ),
        Row(
            "appends: daemon CPU",
            "<= 0.3 s",
            lambda e: Cell(
                f"{e['appends']['cpu_seconds']:.2f} s", e["appends"]["cpu_seconds"] <= 0.3
            ),
        ),
    ]


def _rewrite_rows(cap: str) -> list[Row]:
    return [
        Row(
            "in-place rewrites: bytes written",
            "<= 2x changed + 1 MiB",
            lambda e: _written(e["rewrites"], "changed_bytes"),
            lambda e: e["rewrites"]["changed_bytes"],
            mib_text,
            "{} changed",
        ),
        Row(
            "in-place rewrites: lag after the last",
            "<= 0.5 s",
            lambda e: _lag(e["rewrites"]["lag_seconds"], 0.5, cap),
        ),
    ]


def _big_write_cell(entry: dict[str, Any]) -> Cell:
    """The daemon's part of the arrival: from the write's start, less what the same write takes
    with no daemon (its bytes cannot be copied before they are written), against `cp`."""
    big = entry["big_write"]
    cp = entry["big_write_cp_seconds"]
    if big["seconds"] is None:
        return Cell("not equal within the cap", False)
    alone = entry.get("big_write_alone_seconds")
    if alone is None:  # results from before the write alone was measured
        ratio = big["seconds"] / max(cp, 1e-9)
        text = f"{seconds_text(big['seconds'])} from its start ({ratio:.2f}x cp)"
        return Cell(text, ratio <= 1.2)
    part = max(0.0, big["seconds"] - alone)
    ratio = part / max(cp, 1e-9)
    text = (
        f"{seconds_text(part)} ({ratio:.2f}x cp): arrived {seconds_text(big['seconds'])} from"
        f" the write's start ({big['seconds'] / max(cp, 1e-9):.2f}x cp), the write alone"
        f" {seconds_text(alone)}; {seconds_text(big['after_write_seconds'])} after the write"
    )
    return Cell(text, ratio <= 1.2)


def _quoted(line: str, width: int = 90) -> str:
    """A log line fit for a table cell: no pipe, no backtick, cut at `width`."""
    line = line.replace("|", "/").replace("`", "'").strip()
    return line if len(line) <= width else line[: width - 3] + "..."


def _save_cell(editor: str) -> Callable[[dict[str, Any]], Cell]:
    def cell(entry: dict[str, Any]) -> Cell:
        run = entry["saves"][editor]
        problems = run["log_problems"]
        lost = run["saves"] - run["arrived"]
        if run["max_ms"] is None:
            return Cell(f"none arrived; {problems} log lines", False)
        text = f"worst {run['max_ms']:.1f} ms, p50 {run['p50_ms']:.2f} ms"
        text += f"; {problems} ERROR/WARNING lines" + (f"; {lost} lost" if lost else "")
        if run.get("first_problem"):
            text += f" (first: `{_quoted(run['first_problem'])}`)"
        ok = run["max_ms"] <= 5 and problems == 0 and lost == 0 and run["complete"]
        return Cell(text if run["complete"] else f"{text}; not equal after", ok)

    return cell


def _tree_rows(path: str) -> list[Row]:
    def complete(entry: dict[str, Any]) -> Cell:
        tree = entry["real_tree"]
        if tree["after_copy_seconds"] is None:
            differing = tree.get("differing_directories")
            text = "not complete within the cap"
            return Cell(text if differing is None else f"{text} ({differing:,} dirs differ)", False)
        seconds = tree["after_copy_seconds"]
        return Cell(seconds_text(seconds), seconds <= 0.5 and tree["complete"])

    def cpu(entry: dict[str, Any]) -> Cell:
        tree = entry["real_tree"]
        ratio = tree["daemon_cpu_seconds"] / max(tree["daemon_copy_cpu_seconds"], 1e-9)
        text = f"{tree['daemon_cpu_seconds']:.2f} s ({ratio:.2f}x the copy's)"
        return Cell(text, ratio <= 1.0)

    def slowed(entry: dict[str, Any]) -> Cell:
        tree = entry["real_tree"]
        ratio = tree["daemon_copy_seconds"] / max(tree["copy_seconds"], 1e-9)
        text = f"{(ratio - 1) * 100:+.0f} % ({seconds_text(tree['daemon_copy_seconds'])})"
        return Cell(text, ratio <= 1.2)

    return [
        Row(f"`cp -a {path}` in: complete after the copy ends", "<= 0.5 s", complete),
        Row(
            "the same: daemon CPU",
            "<= the copy's CPU",
            cpu,
            lambda e: e["real_tree"]["daemon_copy_cpu_seconds"],
            lambda cpu: f"{cpu:.2f} s",
            "cp -a's CPU {}",
        ),
        Row(
            "the same: the copy slowed",
            "<= 20 %",
            slowed,
            lambda e: e["real_tree"]["copy_seconds"],
            seconds_text,
            "cp -a alone {}",
        ),
    ]


def _dirs_rows(cp_seconds: float, dirs: int) -> list[Row]:
    def ready(entry: dict[str, Any]) -> Cell:
        seconds = entry["dirs"]["ready_seconds"]
        if seconds is None:
            return Cell("not ready within the cap", False)
        ratio = seconds / max(cp_seconds, 1e-9)
        text = f"{seconds_text(seconds)} ({ratio:.2f}x cp -a)"
        return Cell(text if entry["dirs"]["complete"] else f"{text}, incomplete", ratio <= 1.0)

    def rss(entry: dict[str, Any]) -> Cell:
        return Cell(f"{entry['dirs']['rss_mb']:.1f} MiB", entry["dirs"]["rss_mb"] <= 30)

    return [
        Row(
            f"{dirs:,} directories: start -> ready",
            "<= 1.0x cp -a",
            ready,
            lambda e: cp_seconds,
            seconds_text,
            "cp -a {}",
        ),
        Row(f"{dirs:,} directories: RSS when ready", "<= 30 MiB", rss),
    ]


def files_rows(results: Results) -> list[Row]:
    """The group's targets, in the order of the issue."""
    files = results.get("files") or {}
    sizes = results["sizes"].get("files", {})
    cap = f"{sizes.get('cap', 0):g} s"
    rows = [*_append_rows(cap), *_rewrite_rows(cap)]
    rows.append(
        Row(
            f"one {mib_text(sizes.get('write_bytes', 0))} file written: arrival, less the"
            " write's own time",
            "<= 1.2x cp",
            _big_write_cell,
            lambda e: e["big_write_cp_seconds"],
            seconds_text,
            "cp {}",
        )
    )
    rows += [
        Row(f"{editor} saves: worst", "<= 5 ms, no log line", _save_cell(editor))
        for editor in EDITORS
    ]
    rows += _tree_rows(files.get("real_tree", {}).get("path", "-"))
    cp_seconds = files.get("cp", {}).get("dirs", {}).get("seconds", 0.0)
    rows += _dirs_rows(cp_seconds, sizes.get("dirs", 0))
    return rows


def _safe(read: Callable[[dict[str, Any]], Any], entry: dict[str, Any] | None) -> Any:
    """A figure of an entry, or None where the entry lacks it (a partial or older run)."""
    if entry is None:
        return None
    try:
        return read(entry)
    except (KeyError, TypeError):
        return None


def _floor_text(row: Row, entries: list[dict[str, Any]]) -> str:
    """The floor beside a row: one figure, or the range of those measured in each run."""
    if row.floor is None:
        return "-"
    floors = [
        floor for floor in (_safe(row.floor, entry) for entry in entries) if floor is not None
    ]
    if not floors:
        return "-"
    low, high = row.floor_text(min(floors)), row.floor_text(max(floors))
    if low == high:
        return row.floor_label.format(low)
    return row.floor_label.format(f"{low} to {high}") + " (each run's)"


def files_table(results: Results) -> list[str]:
    """Rows of targets; a column per daemon, the floor beside, met/missed for pylsyncd's two."""
    files = results.get("files") or {}
    peers = [peer for peer in PEER_NAMES if peer in files]
    ours = [peer for peer in OURS if peer in peers]
    header = ["workload", "target", "floor", *(PEER_NAMES[p] for p in peers)]
    header += [f"target met, {PEER_NAMES[p]}" for p in ours]
    table = []
    for row in files_rows(results):
        cells = {peer: _safe(row.cell, files[peer]) for peer in peers}
        line = [row.workload, row.target, _floor_text(row, [files[peer] for peer in peers])]
        line += ["-" if cells[p] is None else cells[p].text for p in peers]
        line += [met_text(None if cells[p] is None else cells[p].met) for p in ours]
        table.append(line)
    return markdown_table(header, table)


def files_section(results: Results) -> list[str]:
    """The page's section for the group."""
    lines = ["## Big files, editor saves, a real tree, many directories", ""]
    files = results.get("files") or {}
    if not files:
        return [*lines, "Not run (`--workloads files`).", ""]
    sizes = results["sizes"]["files"]
    tree = files.get("real_tree", {})
    # The group run on its own, merged into a full run's JSON (`runs`; `files_run` before).
    run = (results.get("runs") or {}).get("files") or results.get("files_run")
    if run is not None:
        before, after = run["machine"]["load_before"][0], run["machine"]["load_after"][0]
        lines += [
            f"A run of this group alone, {run['started']} (`./dev bench --workloads files`),"
            f" load average {before:.1f} before and {after:.1f} after.",
            "",
        ]
    lines += files_table(results)
    lines += [
        "- Bytes written: the daemon's `wchar` from `/proc/PID/io`, the bytes passed to"
        " write(2), copy_file_range(2) and sendfile(2). A child's counters join its parent's"
        " when it is reaped (rsync, and lsyncd's cp and rsync, are reaped by the daemon), and"
        " children still running are read directly. `wchar` counts pipes too: an rsync run"
        " writes its data once into the pipe between its processes and once into the file, so"
        " rsync modes show about twice the file bytes. The daemon's log lines are in it (a few"
        " KiB). The floor is the bytes the workload itself changed.",
        f"- Appends: a {mib_text(sizes['append_file_bytes'])} file in the source, mirrored at"
        f" start (waited for until equal); then {sizes['append_seconds']:g} s of 4 KiB appends"
        f" every {sizes['append_every'] * 1e3:g} ms on a deadline schedule (a late append does"
        " not push the later ones), each one `open(O_APPEND)`, write, close, as a shell's `>>`"
        " does. Written: from the first append until the destination is equal (also shown:"
        " during the window only). Lag: from the last append to the start of the check that"
        " found the destination equal (its size polled, then its content compared). CPU: the"
        " daemon and its children over the same span.",
        f"- In-place rewrites: a {mib_text(sizes['rewrite_file_bytes'])} file mirrored, then"
        f" {sizes['rewrites']} rewrites of a 4 KiB page at random page offsets (seeded),"
        f" {sizes['rewrite_every'] * 1e3:g} ms apart, each `open(r+b)`, seek, write, close."
        " Lag: until the destination holds every rewritten page (only those read while"
        f" waiting), then the whole file is compared once. A wait is capped at {sizes['cap']:g} s.",
        f"- One file: {mib_text(sizes['write_bytes'])} written in 1 MiB writes into the live"
        " source; from the first write to the destination equal. The same write into a"
        " directory no daemon watches, 3 times before, and `cp` of the file to the same"
        " filesystem, outside the source, 3 times after: the median of each. The target is on"
        " the daemon's part: the arrival less the write alone (no daemon can copy a byte before"
        " it is written; the write alone is about cp's time already). Before each run three"
        " times the file's size is written and removed on the same filesystem: in a virtual"
        " machine the first touch of a page of memory costs about three times a later one, and"
        " no run is to pay it for the others.",
        f"- Editor saves: {sizes['saves']} saves of an 820-byte source file per editor (one file"
        " each), 10 ms apart, timed from the save's last system call to the destination holding the"
        " new content (a busy read loop); ERROR and WARNING lines of the daemon's log written"
        " meanwhile are counted. vim: probe file `4913` created and removed, the file renamed"
        " to `file~`, a new file written and fsynced, `file~` removed. VS Code: truncate and"
        " write in place. JetBrains: `file___jb_tmp___` written, the file renamed to"
        " `file___jb_old___`, the temporary renamed to the file, the old one removed. emacs:"
        " lock symlink `.#file -> user@host.pid:boot`, the file renamed to `file~` (kept), a"
        " new file written, the lock removed. `sed -i`: `sedXXXXXX` written in the same"
        " directory, renamed over the file. After each editor the trees are compared fully.",
        f"- Real tree: `{tree.get('path', sizes['real_tree'])}`"
        f" ({tree.get('entries', 0):,} entries; on a plain Debian, files of every size and"
        " thousands of symlinks), first copied into the workspace so that every copy reads the"
        " same memory; `cp -a` of it into a directory outside any source, then into the live"
        " source. Complete: from the end of the copy until every directory of the destination"
        " lists the expected names, types and sizes; then the content is compared (untimed)."
        " CPU: the daemon's and its children's from the copy's start; the copy's own from"
        f" getrusage. Capped at {sizes['tree_cap']:g} s.",
        f"- Many directories: {sizes['dirs']:,} directories of one 64-byte file each, 100 to a"
        " parent, built once; `cp -a` of it, then each daemon from spawn to its ready line"
        " (pylsyncd `ready:`, lsyncd `Startup of ... finished`) on an empty destination, and"
        " its own VmRSS then.",
        f"- The group took {files.get('duration_seconds', 0):.0f} s.",
        "",
    ]
    return lines
