"""The "gitignore" group: the live storm inside a tree of 50 nested .gitignore files, with
GITIGNORE and without it, for each pylsyncd backend, in the same run; and what an edit of an
ignore file costs in that tree once the storm is in it (the rules are read again, the source
watched afresh and the whole tree compared).

The storm's directory lies below a chain of nested ignore files, none of whose lines matches a
storm file: every file is matched against the whole chain, the most a decision costs. The
variants alternate, `_RUNS` times each, and the median of each is kept (a shared machine).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks import trees
from benchmarks.daemons import Daemon, Peer
from benchmarks.initial_sync import progress
from benchmarks.sizes import Sizes

IGNORE_FILES = 50
_CHAIN = 10  # nested ignore files above the storm; the others are in sibling directories
_RUNS = 3
_TARGET = 1.2  # the storm with GITIGNORE, at most this many times the storm without
_READY_TIMEOUT = 120.0
# Lines of the kind real projects hold: wildcards, anchored, directory-only and negated ones.
_LINES = (
    "*.o\n*.py[cod]\n__pycache__/\nbuild/\n/dist\n!keep.o\n**/tmp/\n*.log\n"
    "node_modules/\n.cache/\n*.sw?\n/coverage/\n"
)


@dataclass
class StormRun:
    """One storm: from its first write, and from its last, until the replica holds it all."""

    seconds: float | None  # None: not complete within the cap
    after_last_write: float | None
    cpu_seconds: float
    complete: bool


@dataclass
class GitignoreStorm:
    """One backend's storm without and with GITIGNORE (medians), and their ratio."""

    files: int
    ignore_files: int
    plain: StormRun
    gitignore: StormRun
    ratio: float | None  # gitignore.seconds / plain.seconds
    cpu_ratio: float | None
    met: bool | None
    reload: StormRun  # from the edit of the root .gitignore to the re-included files copied


def write_project(source: str) -> str:
    """50 ignore files: a chain of `_CHAIN` nested ones, the rest beside it; returns the storm's
    directory (relative), at the bottom of the chain."""
    chain = "/".join(f"p{level}" for level in range(_CHAIN))
    for level in range(_CHAIN):
        directory = os.path.join(source, *[f"p{k}" for k in range(level + 1)])
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, ".gitignore"), "w") as rules:
            rules.write(_LINES)
    with open(os.path.join(source, ".gitignore"), "w") as rules:
        rules.write(_LINES)
    for sibling in range(IGNORE_FILES - _CHAIN - 1):
        directory = os.path.join(source, f"s{sibling}")
        os.makedirs(directory)
        with open(os.path.join(directory, ".gitignore"), "w") as rules:
            rules.write(_LINES)
        with open(os.path.join(directory, "main.py"), "w") as code:
            code.write("print()\n")
    return chain


def _storm_once(
    peer: Peer, root: str, sizes: Sizes, gitignore: bool
) -> tuple[StormRun, StormRun | None]:
    """One storm, and with GITIGNORE the edit of an ignore file after it."""
    source, replica = f"{root}/src", f"{root}/dst"
    os.makedirs(source)
    os.makedirs(replica)
    storm = write_project(source)
    daemon = Daemon(peer, source, replica, root, ("--gitignore",) if gitignore else ())
    daemon.start()
    reload: StormRun | None = None
    try:
        daemon.wait_ready(_READY_TIMEOUT)
        cpu_before = daemon.cpu_seconds()
        started = time.perf_counter()
        expected = trees.write_storm(
            f"{source}/{storm}/storm",
            sizes.storm_dirs,
            sizes.storm_files_per_dir,
            sizes.storm_bytes,
        )
        last_write = time.perf_counter()
        landed = trees.ReplicaProgress(f"{replica}/{storm}/storm", expected)
        done = trees.wait_until(landed.complete, sizes.cap, 0.001)
        cpu = daemon.cpu_seconds() - cpu_before
        if gitignore and done is not None:
            reload = _reload(daemon, source, replica, sizes)
    finally:
        daemon.stop()
    subprocess.run(["rm", "-rf", root], check=True)
    storm_run = StormRun(
        seconds=None if done is None else done - started,
        after_last_write=None if done is None else done - last_write,
        cpu_seconds=cpu,
        complete=done is not None,
    )
    return storm_run, reload


def _reload(daemon: Daemon, source: str, replica: str, sizes: Sizes) -> StormRun:
    """Un-ignore build/ (100 files) by editing the root .gitignore; until they are copied."""
    expected = trees.write_storm(f"{source}/build", 1, 100, sizes.storm_bytes)
    time.sleep(0.5)  # the ignored files' events are over: the edit's cost is what is measured
    cpu_before = daemon.cpu_seconds()
    with open(f"{source}/.gitignore", "w") as rules:
        rules.write(_LINES.replace("build/\n", ""))
    edited = time.perf_counter()
    landed = trees.ReplicaProgress(f"{replica}/build", expected)
    done = trees.wait_until(landed.complete, sizes.cap, 0.001)
    return StormRun(
        seconds=None if done is None else done - edited,
        after_last_write=None if done is None else done - edited,
        cpu_seconds=daemon.cpu_seconds() - cpu_before,
        complete=done is not None,
    )


def _median(runs: list[StormRun]) -> StormRun:
    timed = sorted((r for r in runs if r.seconds is not None), key=lambda r: r.seconds or 0.0)
    if len(timed) < len(runs):
        return next(r for r in runs if r.seconds is None)
    middle = timed[len(timed) // 2]
    middle.cpu_seconds = statistics.median(r.cpu_seconds for r in runs)
    return middle


def measure_gitignore(peers: list[Peer], root: str, sizes: Sizes) -> dict[str, Any]:
    """The group for every pylsyncd peer chosen: results["gitignore"][peer key]."""
    results: dict[str, Any] = {}
    for peer in peers:
        if peer.program != "pylsyncd":
            continue  # lsyncd reads no .gitignore
        runs: dict[bool, list[StormRun]] = {False: [], True: []}
        reloads: list[StormRun] = []
        for number in range(_RUNS):
            for gitignore in (False, True) if number % 2 == 0 else (True, False):
                work = f"{root}/{peer.key}-{number}-{gitignore}"
                run, reload = _storm_once(peer, work, sizes, gitignore)
                runs[gitignore].append(run)
                reloads += [] if reload is None else [reload]
                progress(f"gitignore, {peer.key}, GITIGNORE={str(gitignore).lower()}: {run}")
                if reload is not None:
                    progress(f"gitignore, {peer.key}, an ignore file edited: {reload}")
        plain, with_rules = _median(runs[False]), _median(runs[True])
        ratio = (
            with_rules.seconds / plain.seconds
            if with_rules.seconds is not None and plain.seconds
            else None
        )
        cpu_ratio = with_rules.cpu_seconds / plain.cpu_seconds if plain.cpu_seconds else None
        entry = GitignoreStorm(
            files=sizes.storm_files,
            ignore_files=IGNORE_FILES,
            plain=plain,
            gitignore=with_rules,
            ratio=ratio,
            cpu_ratio=cpu_ratio,
            met=None if ratio is None else ratio <= _TARGET,
            reload=_median(reloads) if reloads else StormRun(None, None, 0.0, False),
        )
        results[peer.key] = asdict(entry)
    return results


def gitignore_section(results: dict[str, Any]) -> list[str]:
    """The page's section for the group."""
    lines = ["## A storm inside a tree of nested .gitignore files", ""]
    group = results.get("gitignore") or {}
    if not group:
        return [*lines, "Not run (`--workloads gitignore`).", ""]
    lines += [
        "| backend | files | without GITIGNORE | with GITIGNORE | ratio (target <= 1.2x) |"
        " CPU without | CPU with | an ignore file edited |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, entry in group.items():
        plain, with_rules = entry["plain"], entry["gitignore"]
        ratio = "n/a" if entry["ratio"] is None else f"{entry['ratio']:.2f}x"
        met = {True: " (met)", False: " (missed)", None: ""}[entry["met"]]
        lines.append(
            f"| {key} | {entry['files']:,} | {_seconds(plain['seconds'])} |"
            f" {_seconds(with_rules['seconds'])} | {ratio}{met} |"
            f" {plain['cpu_seconds']:.2f} s | {with_rules['cpu_seconds']:.2f} s |"
            f" {_seconds(entry['reload']['seconds'])}, {entry['reload']['cpu_seconds']:.2f} s CPU |"
        )
    lines += [
        "",
        f"The storm's time runs from its first write until the replica holds every file; the"
        f" medians of {_RUNS} runs of each variant, alternating. {IGNORE_FILES} ignore files of"
        f" 12 lines each, {_CHAIN} of them nested above the storm. An ignore file edited: once the"
        " storm is in, 100 ignored files in `build/` are re-included by an edit of the root"
        " `.gitignore`; from the edit until they are all in the replica (the rules read again,"
        " the source watched afresh and the whole tree compared), and the daemon's CPU for it.",
        "",
    ]
    return lines


def _seconds(value: float | None) -> str:
    return "not complete" if value is None else f"{value:.2f} s"
