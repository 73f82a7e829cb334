"""The page's section for the "two-way" group: pylsyncd `--mode two-way` beside unison."""

from __future__ import annotations

from typing import Any

from benchmarks.remote_report import change_seconds, change_text, edit_text
from benchmarks.tables import load_text, markdown_table, met_text
from benchmarks.unison import PYLSYNCD_TWO_WAY, UNISON, UNISON_OPTIONS

OURS, THEIRS = PYLSYNCD_TWO_WAY.key, UNISON.key


def _edit_row(group: dict[str, Any], key: str, name: str) -> list[str]:
    ours = group.get(OURS, {}).get("live", {}).get(key)
    theirs = group.get(THEIRS, {}).get("live", {}).get(key)
    met = None if ours is None else ours["complete"] and ours["p50_ms"] <= 2
    return [name, "<= 2 ms", edit_text(ours), edit_text(theirs), met_text(met)]


def _storm_row(group: dict[str, Any], key: str, name: str) -> list[str]:
    ours = group.get(OURS, {}).get("live", {}).get(key)
    theirs = group.get(THEIRS, {}).get("live", {}).get(key)
    seconds = change_seconds(ours)
    met = None if ours is None else seconds is not None and seconds <= 1.5
    return [name, "<= 1.5 s", change_text(ours), change_text(theirs), met_text(met)]


def _union_row(group: dict[str, Any]) -> list[str]:
    union = group.get("union")
    if not union:
        return ["union merge", "<= 1.5x cp -a", "-", "-", "-"]

    def text(key: str) -> str:
        entry = union.get(key)
        if entry is None or entry["seconds"] is None:
            return "-" if entry is None else "not ready"
        done = "" if entry["complete"] else " (sides incomplete)"
        return f"{entry['seconds']:.2f} s ({entry['ratio']:.2f}x){done}"

    ours = union.get(OURS)
    met = None if ours is None else ours["complete"] and (ours["ratio"] or 99) <= 1.5
    name = (
        f"union merge at first start, {union['files']:,} files split over both sides"
        f" (`cp -a` of the union: {union['cp_seconds']:.2f} s)"
    )
    if union.get("note"):  # measured apart from the rest of the group, and when
        name += f"; {union['note']}"
    return [name, "<= 1.5x cp -a", text(OURS), text(THEIRS), met_text(met)]


def _churn_row(group: dict[str, Any]) -> list[str]:
    def text(key: str) -> str:
        churn = group.get(key, {}).get("churn")
        if churn is None:
            return "-"
        seeds = len(churn["seeds"])
        copies = sum(seed["conflict_copies"] for seed in churn["seeds"])
        return (
            f"{churn['lost']} of {churn['versions']:,} ({seeds} seeds; equal after: "
            f"{churn['converged']} of {seeds}; {copies:,} conflict copies)"
        )

    churn = group.get(OURS, {}).get("churn")
    met = (
        None if churn is None else churn["lost"] == 0 and churn["converged"] == len(churn["seeds"])
    )
    seconds = (churn or {}).get("seconds_each", 0)
    name = f"the two-sided churn ({seconds:g} s a seed), lost versions"
    return [name, "0", text(OURS), text(THEIRS), met_text(met)]


def _echo_row(group: dict[str, Any]) -> list[str]:
    def text(key: str) -> str:
        echo = group.get(key, {}).get("live", {}).get("echo")
        if echo is None:
            return "-"
        lost = (
            ""
            if echo["arrived"] == echo["edits"]
            else f", {echo['edits'] - echo['arrived']} not arrived"
        )
        transfers = f"{echo['batches']} transfers{lost}"
        return f"{echo['echo_batches']} after {echo['edits']} edits ({transfers})"

    echo = group.get(OURS, {}).get("live", {}).get("echo")
    met = None if echo is None else echo["echo_batches"] == 0 and echo["arrived"] == echo["edits"]
    return [
        "echo batches after edits on alternating sides",
        "0",
        text(OURS),
        text(THEIRS),
        met_text(met),
    ]


def two_way_section(results: dict[str, Any]) -> list[str]:
    """The page's section for the group."""
    lines = ["## Two-way sync, beside unison", ""]
    group = results.get("two_way") or {}
    if not group:
        return [*lines, "Not run (`--workloads two-way`).", ""]
    run = (results.get("runs") or {}).get("two_way") or {
        "started": results["started"],
        "machine": results["machine"],
    }
    load = run["machine"]["load_before"], run["machine"]["load_after"]
    unison = " ".join(UNISON_OPTIONS)
    lines += [
        f"`./dev bench --workloads two-way` ({run['started']}, load average {load[0][0]:.2f}"
        f" before, {load[1][0]:.2f} after on {run['machine']['nproc']} cores:"
        f" {load_text(load[0][0])}). pylsyncd `--mode two-way --delay 0`;"
        " **unison 2.52 runs `unison A B"
        f" {unison}`**: Debian's package ships no unison-fsmonitor, so unison cannot watch and"
        " rescans both sides a second after each sync; `-copyonconflict` keeps a conflict's loser"
        " as `NAME (conflict on DATE)`. Each peer starts with no state of its own.",
        "",
        *markdown_table(
            ["workload", "target", "pylsyncd two-way", "unison `-repeat 1`", "target met"],
            [
                _edit_row(group, "a_to_b", "one edit A -> B, p50 (p99)"),
                _edit_row(group, "b_to_a", "one edit B -> A, p50 (p99)"),
                _storm_row(group, "storm_a", "10,000-file storm on A, after the last write"),
                _storm_row(group, "storm_b", "10,000-file storm on B, after the last write"),
                _union_row(group),
                _churn_row(group),
                _echo_row(group),
            ],
        ),
        "One edit: from `close()` to the other side holding the new content, 10 ms after the"
        " last one arrived (unison: fewer edits, each one waits for its next rescan). Echo: each"
        " edit an atomic save (a rename onto the file), on A and B in turn, each waited for on the"
        " other side, then a quiet wait; the transfers are pylsyncd's `batch:` lines (non-empty"
        " batches) and unison's syncs that transferred something, and every one beyond one per edit"
        " is an echo. Churn: the test suite's two-sided churn (`tests/test_two_way_churn.py`,"
        " imported: random writes, same-size rewrites, renames over files, deletions, chmods,"
        " symlinks and file/directory swaps on both sides at once); once quiet, a version is lost"
        " when the last write of a path is on neither side, at its path or in a conflict copy."
        " Union merge: spawn to the peer's first complete sync, each side holding every other leaf"
        " directory of the tree.",
        "",
    ]
    return lines
