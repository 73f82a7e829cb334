"""The host-mount section of docs/benchmarks.md and the figures the chart draws from it.

Reads only results["mount"] (absent from a JSON written before the group existed: then the
section says it was not run).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from benchmarks.tables import Results, markdown_table, met_text


@dataclass(frozen=True)
class MountFigure:
    """One figure of the group beside its target: `value` None when it was not measured."""

    workload: str
    target_text: str
    limit: float
    value: float | None
    text: str
    met: bool | None


def _samples(changes: dict[str, Any]) -> tuple[list[float], int]:
    """The arrival times, and how many changes did not arrive within the cap."""
    arrived = [s for s in changes["seconds"] if s is not None]
    return arrived, len(changes["seconds"]) - len(arrived)


def seconds_text(seconds: float) -> str:
    """A duration as the pages write it: ms below a second, s above."""
    if seconds < 0.01:
        return f"{seconds * 1e3:.2f} ms"
    if seconds < 1:
        return f"{seconds * 1e3:.0f} ms"
    return f"{seconds:.2f} s"


def _changes_figure(
    workload: str, target_text: str, limit: float, changes: dict[str, Any] | None, median: bool
) -> MountFigure:
    """Met when every change arrived and the median (or the slowest) is within `limit`."""
    if changes is None:
        return MountFigure(workload, target_text, limit, None, "-", None)
    arrived, lost = _samples(changes)
    if lost or not arrived:
        text = f"{lost} of {len(changes['seconds'])} not seen in {changes['cap']:g} s"
        return MountFigure(workload, target_text, limit, changes["cap"], text, False)
    value = statistics.median(arrived) if median else max(arrived)
    each = ", ".join(seconds_text(s) for s in arrived)
    text = f"{'p50' if median else 'max'} {seconds_text(value)} ({each})"
    return MountFigure(workload, target_text, limit, value, text, value <= limit)


def _idle_figure(workload: str, limit: float, run: dict[str, Any] | None) -> MountFigure:
    if run is None:
        return MountFigure(workload, f"<= {limit:g} % of a core", limit, None, "-", None)
    idle = run["idle"]
    text = (
        f"{idle['cpu_percent']:.2f} % ({idle['cpu_seconds'] * 1e3:.0f} ms in"
        f" {idle['window_seconds']:g} s; bindfs {idle['fuse_cpu_percent']:.2f} %)"
    )
    value = idle["cpu_percent"]
    return MountFigure(workload, f"<= {limit:g} % of a core", limit, value, text, value <= limit)


def mount_figures(results: Results) -> list[MountFigure]:
    """The group's targets, in the order of the issue."""
    mount = results.get("mount") or {}
    tree, forwarded, big = mount.get("tree"), mount.get("forwarded"), mount.get("big_tree")
    entries = f"{tree['entries']:,}" if tree else "-"
    big_entries = f"{big['entries']:,}" if big else "-"
    figures = [
        _idle_figure(f"idle CPU, {entries} entries, after settling", 1.0, tree),
        _idle_figure(f"idle CPU, {big_entries} entries, after settling", 1.0, big),
        _changes_figure(
            "host change in a directory touched just before",
            "<= 0.5 s",
            0.5,
            tree and tree["hot"],
            median=False,
        ),
        _changes_figure(
            "host change in a directory untouched since the start",
            "<= 10 s",
            10.0,
            tree and tree["cold"],
            median=False,
        ),
    ]
    if big is None:
        figures.append(MountFigure("RSS while polling", "<= 60 MiB", 60.0, None, "-", None))
    else:
        rss = big["idle"]["peak_rss_mb"]
        text = f"{rss:.1f} MiB (peak, {big_entries} entries)"
        figures.append(MountFigure("RSS while polling", "<= 60 MiB", 60.0, rss, text, rss <= 60))
    figures += [
        _changes_figure(
            "mount that forwards events: edit seen, p50",
            "<= 5 ms",
            0.005,
            forwarded and forwarded["edit"],
            median=True,
        ),
        _idle_figure("mount that forwards events: idle CPU", 0.5, forwarded),
    ]
    storm = tree and tree["storm"]
    name = "host-side storm, after the last write"
    if not storm:
        figures.append(MountFigure(name, "<= 3 s", 3.0, None, "-", None))
    elif storm["seconds"] is None:
        text = f">= {storm['capped_at']:.0f} s (not complete)"
        figures.append(MountFigure(name, "<= 3 s", 3.0, storm["capped_at"], text, False))
    else:
        seconds = storm["seconds"]
        text = f"{seconds_text(seconds)} (writing it: {seconds_text(storm['write_seconds'])})"
        figures.append(MountFigure(name, "<= 3 s", 3.0, seconds, text, seconds <= 3.0))
    return figures


def _find_text(find: dict[str, Any]) -> str:
    return (
        f"{seconds_text(find['wall_seconds'])} wall, find {find['cpu_seconds']:.2f} s CPU,"
        f" bindfs {find['fuse_cpu_seconds']:.2f} s CPU ({find['entries']:,} entries)"
    )


def _ready_text(mount: dict[str, Any]) -> str:
    parts = [f"{seconds_text(mount['tree']['ready_seconds'])} ({mount['tree']['entries']:,})"]
    if "big_tree" in mount:
        big = mount["big_tree"]
        parts.append(f"{seconds_text(big['ready_seconds'])} ({big['entries']:,})")
    return ", ".join(parts)


def reference_rows(mount: dict[str, Any]) -> list[list[str]]:
    """Beside the targets: find's full pass, mutagen's period, lsyncd, the mount's own cache."""
    rows = []
    for key in ("tree", "big_tree"):
        if key in mount:
            rows.append(["`find` through the mount, one full pass", _find_text(mount[key]["find"])])
    if "tree" in mount and "slow_period_idle" in mount["tree"]:
        tree = mount["tree"]
        slow, period = tree["slow_period_idle"], tree["slow_period_seconds"]
        rows.append(
            [
                f"idle CPU, {tree['entries']:,} entries, `POLL_PERIOD={period:g}`",
                f"{slow['cpu_percent']:.2f} % ({slow['cpu_seconds'] * 1e3:.0f} ms in"
                f" {slow['window_seconds']:g} s; bindfs {slow['fuse_cpu_percent']:.2f} %)",
            ]
        )
    if "tree" in mount:
        idle = mount["tree"]["idle"]
        rows.append(
            [
                f"RSS, {mount['tree']['entries']:,} entries",
                f"{idle['rss_mb']:.1f} MiB idle, {idle['peak_rss_mb']:.1f} MiB peak;"
                f" storm: {mount['tree']['storm']['peak_rss_mb']:.1f} MiB peak",
            ]
        )
        rows.append(["time to `ready:` (initial sync through the mount)", _ready_text(mount)])
    rows.append(
        [
            "mutagen's poll period (published default; not run)",
            f"{mount.get('mutagen_poll_seconds', 10.0):.0f} s",
        ]
    )
    if "lsyncd" in mount:
        lsyncd = mount["lsyncd"]
        host = lsyncd["host_edit_seconds"]
        through = lsyncd["through_mount_seconds"]
        rows.append(
            [
                "lsyncd `default.direct`: host-side edit",
                f"not seen in {lsyncd['cap']:g} s" if host is None else seconds_text(host),
            ]
        )
        rows.append(
            [
                "lsyncd `default.direct`: edit through the mount (control)",
                "not seen" if through is None else seconds_text(through),
            ]
        )
    cache = mount.get("attribute_cache_seconds")
    rows.append(
        [
            "the mount's attribute cache: a host-side rewrite visible to stat after",
            "-" if cache is None else seconds_text(cache),
        ]
    )
    return rows


def mount_section(results: Results) -> list[str]:
    """The page's section for the group."""
    lines = ["## Host mounts without inotify (bindfs)", ""]
    mount = results.get("mount") or {}
    if not mount:
        return [*lines, "Not run (`--workloads mount`).", ""]
    sizes = results["sizes"].get("mount", {})
    tree = mount.get("tree") or {}
    watching = tree.get("watching") or "-"
    forwarded_watching = (mount.get("forwarded") or {}).get("watching") or "-"
    settings = " ".join(mount["daemon_settings"]) or "none: the defaults"
    figures = mount_figures(results)
    rows = [[f.workload, f.target_text, f.text, met_text(f.met)] for f in figures]
    lines += markdown_table(["workload", "target", "pylsyncd direct", "target met"], rows)
    lines += markdown_table(["beside it", "figure"], reference_rows(mount))
    lines += [
        f"- {mount['bindfs']}, `bindfs -f HOST MOUNT`"
        + (f" with `-o {mount['bindfs_options']}`" if mount["bindfs_options"] else "")
        + "; writes made in HOST (the host side) raise no inotify event on MOUNT, writes made"
        " through MOUNT do. The daemon mirrors MOUNT with `--delay 0`, `WATCH` left at auto;"
        f" further settings: {settings}. It said it watches with: `{watching}` (host-side run),"
        f" `{forwarded_watching}` (forwarding run).",
        f"- Trees: {sizes.get('dirs', 0):,} and {sizes.get('big_dirs', 0):,} leaf directories"
        " of one 64-byte file each, 100 to a parent (`g<k>/d<n>/f`): the entries above count"
        " leaves, files and parents. Built on the host side before the mount.",
        f"- Idle: from `ready:`, {sizes.get('settle', 0):g} s to settle, then the daemon's CPU"
        f" over {sizes.get('window', 0):g} s (its CPU-time clock) and that of bindfs beside it;"
        " RSS is the daemon's VmRSS, peak of samples taken every 0.5 s from ready to the end of"
        " the window.",
        f"- Host changes: {sizes.get('cold_edits', 0)} in leaf directories spread over the tree"
        f" and untouched since the start (cold), then {sizes.get('hot_edits', 0)} in the last of"
        " them (touched a moment before: hot); a new file and a rewrite of the existing one in"
        " turn, 0.1 s apart, each timed from close() to the destination holding the content, up"
        f" to {sizes.get('cap', 0):g} s. The target is checked on the slowest.",
        f"- Storm: {sizes.get('storm_dirs', 0) * sizes.get('storm_files_per_dir', 0):,} files of"
        f" 1 KiB in {sizes.get('storm_dirs', 0)} new directories below the hot directory, written"
        " on the host side; from the last close() to every file in the destination.",
        "- Forwarding mount: a second daemon on the same mount and the same, complete, replica"
        f" (`--no-init`), {sizes.get('forwarded_edits', 0)} rewrites of one file written"
        " through the mount (after one uncounted create), 0.3 s apart as a person's edits are"
        " (the daemon learns the mount forwards events from three rescans that find only what"
        " inotify reported), then the idle window as above; also with `POLL_PERIOD=60` on the"
        " host-side run's replica, for the idle figure beside the targets.",
        "- lsyncd (when among the peers): `default.direct` on the mount, a host-side new file"
        " waited for up to the cap, then one written through the mount as the control.",
        f"- The group took {mount.get('duration_seconds', 0):.0f} s.",
        "",
    ]
    return lines


def _short(workload: str) -> str:
    """A chart label for a workload of `mount_figures`."""
    if workload.startswith("idle CPU, "):
        return "idle, " + workload.split(", ")[1].split()[0]
    for start, label in (
        ("host change in a directory touched", "hot dir\nedit (max)"),
        ("host change in a directory untouched", "cold dir\nedit (max)"),
        ("RSS", "RSS"),
        ("mount that forwards events: edit", "forwarding\nmount edit"),
        ("mount that forwards events: idle", "idle,\nforwarding"),
        ("host-side storm", "storm"),
    ):
        if workload.startswith(start):
            return label
    return workload


def chart_figures(results: Results) -> dict[str, list[tuple[str, float, float]]]:
    """(label, value, target) per chart panel: "seconds", "percent" of a core, "mib"."""
    panels: dict[str, list[tuple[str, float, float]]] = {"seconds": [], "percent": [], "mib": []}
    for figure in mount_figures(results):
        if figure.value is None:
            continue
        unit = figure.target_text.split()[-1]
        panel = {"MiB": "mib", "core": "percent"}.get(unit, "seconds")
        panels[panel].append((_short(figure.workload), figure.value, figure.limit))
    return panels
