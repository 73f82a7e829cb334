"""The page's section for the "remote" group: pylsyncd over ssh beside lsyncd's rsyncssh."""

from __future__ import annotations

from typing import Any

from benchmarks.tables import load_text, markdown_table, met_text

OURS, THEIRS = "pylsyncd-remote", "lsyncd-rsyncssh"
_LOCAL_RSYNC = "pylsyncd-rsync"


def ms_text(milliseconds: float | None) -> str:
    if milliseconds is None:
        return "-"
    return f"{milliseconds:.1f} ms" if milliseconds < 100 else f"{milliseconds:.0f} ms"


def edit_text(entry: dict[str, Any] | None) -> str:
    """p50 (p99) of an edit round, and a mark when an edit was lost."""
    if entry is None or entry["p50_ms"] is None:
        return "-"
    text = f"{ms_text(entry['p50_ms'])} ({ms_text(entry['p99_ms'])})"
    return text if entry["complete"] else f"{text}, **an edit lost**"


def change_seconds(entry: dict[str, Any] | None) -> float | None:
    """A storm, rename or delete time when the replica was complete, else None."""
    if entry is None or entry.get("seconds") is None or not entry["complete"]:
        return None
    return float(entry["seconds"])


def change_text(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "-"
    if entry.get("seconds") is None:
        return f">= {entry.get('capped_at') or 0:.0f} s (cap)"
    seconds = entry["seconds"]
    text = f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"
    return text if entry["complete"] else f"{text} (replica incomplete)"


def _faster(ours: float | None, theirs: float | None, factor: float) -> tuple[str, bool | None]:
    if ours is None or theirs is None:
        return "-", None
    ratio = theirs / max(ours, 1e-9)
    return f"{ratio:.1f}x", ratio >= factor


def _target_text(limit: float | None, factor: float | None) -> str:
    if limit is None:
        return "-"
    text = f"<= {limit * 1e3:.0f} ms" if limit < 1 else f"<= {limit:.0f} s"
    return text + (f", >= {factor:.0f}x faster" if factor else "")


def _change_row(
    name: str,
    mine: dict[str, Any] | None,
    other: dict[str, Any] | None,
    limit: float | None,
    factor: float | None,
) -> list[str]:
    """A storm, rename or delete: both daemons' times, the ratio, the target."""
    seconds = change_seconds(mine)
    ratio, faster = _faster(seconds, change_seconds(other), factor or 0)
    met = None
    if limit is not None and mine is not None:
        met = seconds is not None and seconds <= limit and faster is not False
    cells = [change_text(mine), change_text(other), ratio, met_text(met)]
    return [name, _target_text(limit, factor), *cells]


def _quiet_rename_text(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "-"
    landed, equal = entry["seconds"], entry["equal_seconds"]
    if landed is None:
        return "not complete within the cap"
    text = f"{landed * 1e3:.0f} ms"
    if equal is None:
        return f"{text}, **never equal**"
    return (
        text
        if equal - landed < 0.001
        else f"{text} (equal by the comparison begun at {equal * 1e3:.0f} ms)"
    )


def _live_rows(group: dict[str, Any]) -> list[list[str]]:
    ours, theirs = group["live"].get(OURS, {}), group["live"].get(THEIRS) or {}
    edit, their_edit = ours.get("edit"), theirs.get("edit")
    edit_ms = edit["p50_ms"] if edit and edit["complete"] else None
    their_ms = their_edit["p50_ms"] if their_edit and their_edit["complete"] else None
    ratio, faster = _faster(edit_ms, their_ms, 3)
    met = None if edit_ms is None else edit_ms <= 15 and faster is not False
    rows = [
        ["one edit, p50 (p99)", "<= 15 ms, >= 3x faster", edit_text(edit),
         edit_text(their_edit), ratio, met_text(met)],
    ]  # fmt: skip
    floor = group.get("floor")
    if floor:
        rows.append(
            ["the floor: `rsync -a` of that file through an open master connection", "-",
             f"{ms_text(floor['p50_ms'])} ({ms_text(floor['p99_ms'])})", "-", "-", "-"]
        )  # fmt: skip
    rows.append(
        _change_row(
            "10,000-file storm, after the last write", ours.get("storm"), theirs.get("storm"), 2, 5
        )
    )
    quiet = group.get("quiet_rename", {})
    mine = quiet.get(OURS) or {}
    landed = mine.get("seconds") if mine.get("equal_seconds") is not None else None
    their_landed = (quiet.get(THEIRS) or {}).get("seconds")
    ratio, _ = _faster(landed, their_landed, 0)
    rows.append(
        [f"rename of that tree, {mine.get('after', 6):g} s after it was synced", "<= 50 ms",
         _quiet_rename_text(quiet.get(OURS)), _quiet_rename_text(quiet.get(THEIRS)), ratio,
         met_text(None if OURS not in quiet else landed is not None and landed <= 0.05)]
    )  # fmt: skip
    rows.append(
        _change_row(
            "rename of that tree right after the storm arrived", ours.get("rename"),
            theirs.get("rename"), None, None,
        )
    )  # fmt: skip
    rows.append(
        _change_row(
            "delete of that tree (`rm -rf`), after rm returned", ours.get("delete"),
            theirs.get("delete"), None, None,
        )
    )  # fmt: skip
    logins = [group["live"].get(peer, {}).get("logins") for peer in (OURS, THEIRS)]
    rows.append(
        ["ssh logins during these workloads", "1",
         *(str(n) if n is not None else "-" for n in logins), "-",
         met_text(None if logins[0] is None else logins[0] == 1)]
    )  # fmt: skip
    return rows


def _tree_rows(group: dict[str, Any]) -> list[list[str]]:
    tree = group.get("real_tree", {})
    rows = []
    for key, name in (
        (_LOCAL_RSYNC, "local, `BACKEND=rsync`"),
        (OURS, "over ssh"),
        (THEIRS, "over ssh"),
    ):
        entry = tree.get(key)
        if entry is None:
            continue
        after = entry["after_copy_seconds"]
        text = "not complete within the cap" if after is None else f"{after:.2f} s"
        if not entry["complete"]:
            text += f" ({entry['differing_directories']} directories differ)"
        met = None if key == THEIRS else after is not None and entry["complete"] and after <= 5
        who = "lsyncd rsyncssh" if key == THEIRS else f"pylsyncd, {name}"
        rows.append(
            [
                f"`cp -a {tree['path']}` ({tree['entries']:,} entries; the copy alone"
                f" {entry['copy_seconds']:.2f} s): complete after it ends, {who}",
                "<= 5 s" if key != THEIRS else "-",
                text,
                f"{entry['daemon_cpu_seconds']:.2f} s",
                met_text(met),
            ]
        )
    return rows


def _fan_out_rows(group: dict[str, Any]) -> list[list[str]]:
    rows = []
    for key, name in ((OURS, "pylsyncd over ssh"), (THEIRS, "lsyncd rsyncssh")):
        entry = group.get("fan_out", {}).get(key)
        if entry is None:
            continue
        ratio = entry["ratio"]
        catch_up = entry["catch_up_seconds"]
        met = None if key == THEIRS or ratio is None else ratio <= 1.5 and entry["complete"]
        rows.append(
            [
                name,
                edit_text(entry["single"]),
                edit_text(entry["three"]),
                edit_text(entry["live"]),
                "-" if ratio is None else f"{ratio:.2f}x",
                "not in the cap" if catch_up is None else f"{catch_up:.2f} s",
                met_text(met),
            ]
        )
    return rows


def _notes(group: dict[str, Any]) -> list[str]:
    """What the live table's rows mean where they differ from the local live workloads."""
    local = (group.get("quiet_rename") or {}).get(_LOCAL_RSYNC)
    lines = [
        "The storm, its rename and delete are the live workloads' (200 directories of 50 files of"
        " 1 KiB). The rename right after the storm arrived: pylsyncd copies again a renamed tree"
        " that the events of the last 5 s touched (rsync may have missed a file the rename"
        " carried), so that rename costs a copy; left alone past that first, the rename is replayed"
        " remotely as a rename (`mv`, names on stdin) and nothing is copied."
        " A workload whose replica was incomplete restarts the daemon on an equal replica, which"
        " is one more login.",
    ]
    if local is not None:
        lines[0] += f" The local rsync backend's rename, left alone: {_quiet_rename_text(local)}."
    return [*lines, ""]


def remote_section(results: dict[str, Any]) -> list[str]:
    """The page's section for the group."""
    lines = ["## Remote destinations over ssh, beside lsyncd's rsyncssh", ""]
    group = results.get("remote") or {}
    if not group:
        return [*lines, "Not run (`--workloads remote`).", ""]
    run = (results.get("runs") or {}).get("remote") or {
        "started": results["started"],
        "machine": results["machine"],
    }
    load = run["machine"]["load_before"], run["machine"]["load_after"]
    lines += [
        f"`./dev bench --workloads remote` ({run['started']}, load average {load[0][0]:.2f} before,"
        f" {load[1][0]:.2f} after on {run['machine']['nproc']} cores: {load_text(load[0][0])})."
        " Both daemons mirror into Debian's sshd on 127.0.0.1 (the test suite's, `tests/sshd.py`)"
        " with `DELAY=0`: pylsyncd with an `ssh://` destination (one ssh master connection per"
        " target), lsyncd 2.2.3 with `default.rsyncssh` (an ssh login per rsync and per move)."
        " The sshd runs in a mount namespace of its own where root's `~/.bashrc` is empty: on this"
        " machine it runs `pyenv init`, 0.5 s for every command run through ssh, which a server's"
        " non-interactive shell does not pay.",
        "",
        *markdown_table(
            [
                "workload",
                "target",
                "pylsyncd over ssh",
                "lsyncd rsyncssh",
                "lsyncd / pylsyncd",
                "target met",
            ],
            _live_rows(group),
        ),
        *_notes(group),
        *markdown_table(
            ["workload", "target", "time", "daemon CPU", "target met"], _tree_rows(group)
        ),
        "Fan-out: one source, three targets on three sshds; then the third sshd is killed (its"
        " sessions too). One edit p50 (p99), until every live target holds it. The three"
        " destinations share the source's one watcher, each with its own queue and thread; the"
        " target is the live ones' p50 within 1.5x of a single target's.",
        "",
        *markdown_table(
            [
                "daemon",
                "one target",
                "three targets",
                "one of three killed",
                "killed / one",
                "the killed one caught up, after its sshd's restart",
                "target met",
            ],
            _fan_out_rows(group),
        ),
    ]
    return lines
