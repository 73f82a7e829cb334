"""The comparison chart (PNG): one panel per workload, one bar per daemon or floor."""

from __future__ import annotations

from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")  # no display on a server or in CI; chosen before pyplot is imported

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from benchmarks.mount_report import chart_figures
from benchmarks.report import (
    PEER_NAMES,
    Figure,
    Results,
    edit_figure,
    initial_figure,
    live_figure,
    seconds_text,
)

COLOURS = {
    "pylsyncd-direct": "#1f5fa8",
    "pylsyncd-rsync": "#6fa3dc",
    "lsyncd-direct": "#c0541a",
    "lsyncd-rsync": "#f0a05a",
    "cp -a": "#7a7a7a",
    "rsync -a": "#b0b0b0",
}
PEERS = tuple(PEER_NAMES)


def _panel(
    axes: Axes,
    title: str,
    contenders: tuple[str, ...],
    get: Callable[[str], Figure | None],
    target: float | None,
    log: bool = True,
) -> None:
    names, heights, labels, colours, hatches = [], [], [], [], []
    for name in contenders:
        figure = get(name)
        if figure is None:
            continue
        names.append(PEER_NAMES.get(name, name).replace(" ", "\n"))
        heights.append(max(figure.seconds, 1e-5))
        labels.append((">=" if figure.capped else "") + seconds_text(figure.seconds))
        colours.append(COLOURS[name])
        hatches.append("//" if figure.capped else "")
    axes.set_title(title, fontsize=9)
    if not heights:  # this workload was not run (--workloads)
        axes.text(0.5, 0.5, "not run", ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
        return
    bars = axes.bar(names, heights, color=colours, hatch=hatches, edgecolor="white")
    axes.bar_label(bars, labels=labels, fontsize=7, padding=2)
    axes.tick_params(axis="x", labelsize=7)
    axes.tick_params(axis="y", labelsize=7)
    if target is not None:
        axes.axhline(target, color="#444444", linestyle="--", linewidth=0.8, label="target")
        axes.legend(fontsize=7, loc="upper left")
    if log:
        axes.set_yscale("log")
        axes.set_ylabel("seconds (log scale)", fontsize=7)
        low = min([*heights, target or heights[0]])
        axes.set_ylim(low / 3, max(heights) * 6)  # room for the labels above the bars
    else:
        axes.set_ylabel("seconds", fontsize=7)
        axes.set_ylim(0, max([*heights, target or 0]) * 1.15)


def write_chart(results: Results, path: str) -> None:
    """Nine panels: edit p50, storm, rename, delete, initial sync (with floors), idle RSS; then
    the host-mount group: times, idle CPU and RSS, each bar beside its own target."""
    figure, grid = plt.subplots(3, 3, figsize=(13, 11))
    _panel(grid[0][0], "one edit, p50", PEERS, lambda p: edit_figure(results, p), 0.001)
    _panel(
        grid[0][1],
        "storm, after the last write",
        PEERS,
        lambda p: live_figure(results, p, "storm"),
        1.5,
    )
    _panel(
        grid[0][2], "rename of that tree", PEERS, lambda p: live_figure(results, p, "rename"), 0.1
    )
    _panel(
        grid[1][0], "delete of that tree", PEERS, lambda p: live_figure(results, p, "delete"), 1.0
    )
    floor = initial_figure(results, "cp -a")
    _panel(
        grid[1][1],
        f"initial sync, {results['sizes']['initial_files']} files (target: 1.2x cp -a)",
        ("cp -a", "rsync -a", *PEERS),
        lambda p: initial_figure(results, p),
        None if floor is None else 1.2 * floor.seconds,
        log=False,
    )
    _memory_panel(grid[1][2], results)
    _mount_panels(grid[2], results)
    sizes = results["sizes"]
    figure.suptitle(
        f"pylsyncd vs lsyncd 2.2.3, DELAY=0, {results['machine']['nproc']} cores, "
        f"{results['machine']['filesystem']} (sizes: {sizes['name']}; hatched: capped wait; "
        "lower is better)",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _memory_panel(axes: Axes, results: Results) -> None:
    idle = results["idle"]
    present = [peer for peer in PEERS if peer in idle]
    if not present:  # the idle workload was not run (--workloads)
        axes.set_title("RSS while watching", fontsize=9)
        axes.text(0.5, 0.5, "not run", ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
        return
    heights = [idle[peer]["rss_mb"] for peer in present]
    bars = axes.bar(
        [PEER_NAMES[p].replace(" ", "\n") for p in present],
        heights,
        color=[COLOURS[p] for p in present],
    )
    axes.bar_label(bars, labels=[f"{h:.1f} MiB" for h in heights], fontsize=7, padding=2)
    axes.axhline(40, color="#444444", linestyle="--", linewidth=0.8, label="target")
    axes.legend(fontsize=7, loc="upper right")
    axes.set_title(f"RSS while watching {results['sizes']['idle_dirs']} directories", fontsize=9)
    axes.set_ylabel("MiB", fontsize=7)
    axes.tick_params(axis="x", labelsize=7)
    axes.tick_params(axis="y", labelsize=7)


_MOUNT_COLOUR = "#1f5fa8"
_MOUNT_TITLES = {
    "seconds": "host mount (bindfs): change seen after",
    "percent": "host mount: idle CPU, % of a core",
    "mib": "host mount: RSS while polling, MiB",
}


def _mount_panels(row: list[Axes], results: Results) -> None:
    """pylsyncd's bars with a target mark on each; `find` and mutagen's period as references."""
    panels = chart_figures(results)
    mount = results.get("mount") or {}
    for axes, (panel, bars) in zip(row, panels.items(), strict=True):
        axes.set_title(_MOUNT_TITLES[panel], fontsize=9)
        if not bars:
            axes.text(0.5, 0.5, "not run", ha="center", va="center", transform=axes.transAxes)
            axes.set_axis_off()
            continue
        labels = [label for label, _, _ in bars]
        heights = [max(value, 1e-5) for _, value, _ in bars]
        colours = [_MOUNT_COLOUR] * len(bars)
        if panel == "seconds" and "tree" in mount:
            labels.append("find, one\nfull pass")
            heights.append(mount["tree"]["find"]["wall_seconds"])
            colours.append(COLOURS["cp -a"])
        drawn = axes.bar(labels, heights, color=colours)
        texts: dict[str, Callable[[float], str]] = {
            "seconds": seconds_text,
            "percent": lambda value: f"{value:.2f} %",
            "mib": lambda value: f"{value:.1f} MiB",
        }
        text = texts[panel]
        axes.bar_label(drawn, labels=[text(h) for h in heights], fontsize=7, padding=2)
        for x, (_, _, limit) in enumerate(bars):
            axes.hlines(limit, x - 0.4, x + 0.4, color="#444444", linestyle="--", linewidth=1)
        if panel == "seconds":
            period = mount.get("mutagen_poll_seconds", 10.0)
            axes.axhline(period, color="#c0541a", linewidth=0.8, label="mutagen's 10 s period")
            axes.legend(fontsize=7, loc="upper left")
            axes.set_yscale("log")
            axes.set_ylim(min([*heights, 1e-3]) / 3, max([*heights, period]) * 6)
        else:
            axes.set_ylim(0, max([*heights, *(limit for _, _, limit in bars)]) * 1.25)
        axes.tick_params(axis="x", labelsize=6)
        axes.tick_params(axis="y", labelsize=7)
