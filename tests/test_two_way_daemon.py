"""The real daemon with MODE=two-way (and one-way-safe) on real directories: both sides' changes
arrive, conflicts lose nothing, restarts delete nothing, the daemon's own writes do not echo, and
an emptied root halts the pair."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import (
    Daemon,
    DaemonPool,
    diff_snapshots,
    run_cli,
    tree_snapshot,
    wait_until,
    write_file,
)
from helpers import Entry as Snapshot
from test_metrics import scrape, value

CONFLICT_COPY = re.compile(r"\.sync-conflict-\d{8}-\d{6}-(source|destination)")
BATCH = r"\(two-way\): batch: "


def _sides_view(root: Path) -> dict[str, Snapshot]:
    """A tree as two-way keeps it equal: directories' mtimes are not synchronised."""
    return {
        path: entry._replace(mtime_ns=0) if entry.kind == "dir" else entry
        for path, entry in tree_snapshot(root).items()
    }


@dataclass
class Sides:
    """Two roots, a state directory, a status file, and the daemons run on them."""

    a: Path
    b: Path
    state_dir: Path
    status_file: Path
    pool: DaemonPool
    mode: str = "two-way"

    def start(self, *extra: str, ready: bool = True) -> Daemon:
        """Start a daemon on the pair; wait until it is live unless `ready` is False."""
        daemon = self.pool.start(
            [
                str(self.a),
                str(self.b),
                "--mode", self.mode,
                "--state-dir", str(self.state_dir),
                "--status-file", str(self.status_file),
                "--delay", "0",
                "--log-level", "debug",
                *extra,
            ]
        )  # fmt: skip
        if ready:
            daemon.wait_ready()
        return daemon

    def wait_equal(self, daemon: Daemon, timeout: float = 10.0) -> dict[str, Snapshot]:
        """Wait until both sides hold the same tree; that tree."""
        last = ""

        def equal() -> dict[str, Snapshot] | None:
            nonlocal last
            try:
                a, b = _sides_view(self.a), _sides_view(self.b)
            except OSError as error:  # an entry went while it was read: not yet
                last = str(error)
                return None
            if a == b:
                return a or {"": Snapshot("dir", 0, 0)}
            last = diff_snapshots(a, b)
            return None

        return wait_until(
            equal, timeout, message=lambda: f"the sides differ:\n{last}\n{daemon.report()}"
        )

    def status(self) -> dict[str, object]:
        """The one pair's entry in the status file."""
        pairs = json.loads(self.status_file.read_text())["pairs"]
        assert len(pairs) == 1
        return dict(pairs[0])

    def state_files(self) -> list[Path]:
        return sorted(self.state_dir.glob("*.state"))


@pytest.fixture
def sides(tmp_path: Path, daemons: DaemonPool) -> Iterator[Sides]:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    yield Sides(a, b, tmp_path / "state", tmp_path / "status.json", daemons)


def _batches(daemon: Daemon, since: int = 0) -> int:
    return sum(1 for line in daemon.lines[since:] if re.search(BATCH, line))


def test_first_start_is_a_union_merge_and_edits_arrive_from_either_side(sides: Sides) -> None:
    write_file(sides.a / "only-a", "a")
    write_file(sides.b / "dir/only-b", "b")
    daemon = sides.start()
    daemon.wait_for_log("no state yet; starting with a union merge that deletes nothing")
    sides.wait_equal(daemon)
    assert (sides.b / "only-a").read_text() == "a"
    assert (sides.a / "dir/only-b").read_text() == "b"
    write_file(sides.a / "new-in-a", "1")
    write_file(sides.b / "dir/new-in-b", "2", mode=0o600)
    (sides.a / "link").symlink_to("only-a")
    tree = sides.wait_equal(daemon)
    assert tree["dir/new-in-b"].mode == 0o600
    assert os.readlink(sides.b / "link") == "only-a"
    write_file(sides.b / "new-in-a", "edited in b")
    wait_until(lambda: (sides.a / "new-in-a").read_text() == "edited in b")
    sides.wait_equal(daemon)
    assert "conflict" not in daemon.log_text()


def test_a_delete_on_either_side_is_propagated(sides: Sides) -> None:
    for name in ("f1", "f2", "d/f3", "kept"):  # a root emptied would halt the pair
        write_file(sides.a / name, name)
    daemon = sides.start()
    sides.wait_equal(daemon)
    (sides.b / "f1").unlink()
    (sides.a / "f2").unlink()
    shutil.rmtree(sides.b / "d")
    wait_until(lambda: not (sides.a / "f1").exists() and not (sides.a / "d").exists())
    wait_until(lambda: not (sides.b / "f2").exists())
    assert set(sides.wait_equal(daemon)) == {"kept"}


def test_a_rename_is_replayed_as_a_rename(sides: Sides) -> None:
    write_file(sides.a / "d/big", b"x" * 100_000)
    daemon = sides.start()
    sides.wait_equal(daemon)
    inodes = (os.lstat(sides.b / "d").st_ino, os.lstat(sides.b / "d/big").st_ino)
    (sides.a / "d").rename(sides.a / "e")
    wait_until(lambda: (sides.b / "e/big").exists() and not (sides.b / "d").exists())
    assert (os.lstat(sides.b / "e").st_ino, os.lstat(sides.b / "e/big").st_ino) == inodes
    sides.wait_equal(daemon)


def test_both_sides_edited_while_down_keep_both_versions(sides: Sides) -> None:
    write_file(sides.a / "notes.txt", "base")
    daemon = sides.start()
    sides.wait_equal(daemon)
    daemon.stop()
    write_file(sides.a / "notes.txt", "from a", mtime_ns=2_000_000_000_000_000_000)
    write_file(sides.b / "notes.txt", "from b", mtime_ns=1_900_000_000_000_000_000)
    daemon = sides.start("--metrics-addr", "127.0.0.1:0")
    port = int(daemon.wait_for_log(r"metrics on http://127\.0\.0\.1:(\d+)/metrics").group(1))
    line = daemon.wait_for_log(r"WARNING .*conflict: both sides changed notes\.txt").string
    wait_until(lambda: value(scrape(port), "pylsyncd_conflicts_total") == 1)
    tree = sides.wait_equal(daemon)
    copies = [path for path in tree if CONFLICT_COPY.search(path)]
    assert len(copies) == 1 and copies[0].startswith("notes.sync-conflict-")
    assert copies[0].endswith("-destination.txt") and copies[0] in line
    assert (sides.a / "notes.txt").read_text() == "from a"  # the newer mtime took the path
    assert (sides.b / copies[0]).read_text() == "from b"
    wait_until(lambda: sides.status()["open_conflicts"] == copies)
    assert sides.status()["conflicts_total"] == 1
    shown = run_cli("status", "--status-file", str(sides.status_file), cwd=sides.a.parent)
    assert copies[0] in shown.stdout and "1 since start, 1 open" in shown.stdout
    (sides.a / copies[0]).unlink()  # resolved on one side: gone from both, no longer open
    wait_until(lambda: not (sides.b / copies[0]).exists())
    wait_until(lambda: sides.status()["open_conflicts"] == [])


def test_an_edit_beats_a_delete(sides: Sides) -> None:
    write_file(sides.a / "keep.txt", "base")
    write_file(sides.a / "other", "x")
    daemon = sides.start()
    sides.wait_equal(daemon)
    daemon.stop()
    write_file(sides.b / "keep.txt", "edited in b")
    (sides.a / "keep.txt").unlink()
    daemon = sides.start()
    sides.wait_equal(daemon)
    assert (sides.a / "keep.txt").read_text() == "edited in b"
    assert "conflict" not in daemon.log_text()


@pytest.mark.parametrize("watch", ["inotify", "poll"])
def test_one_edit_is_one_transfer_and_no_echo(sides: Sides, watch: str) -> None:
    write_file(sides.a / "f", "base")
    # An edit is a truncation and a write: at DELAY=0 a loaded machine may run a batch between
    # the two, which is two transfers for two changes. The delay gathers them, as it is for.
    daemon = sides.start("--watch", watch, "--poll-period", "1", "--delay", "0.5")
    sides.wait_equal(daemon)
    for side, other in ((sides.a, sides.b), (sides.b, sides.a)):
        mark = daemon.mark()
        write_file(side / "f", f"edited in {side.name}")
        wait_until(
            lambda other=other, side=side: (other / "f").read_text() == f"edited in {side.name}"
        )
        # The write raises events on the other side: their batch must find nothing to do.
        daemon.wait_for_log(r"in sync, nothing to write", since=mark)
        wait_until(lambda: sides.status()["pending_events"] == 0)
        assert _batches(daemon, mark) == 1, daemon.report()
        assert re.search(BATCH + r"1 changes", "\n".join(daemon.lines[mark:]))


def test_kill_9_while_applying_then_restart_deletes_nothing(sides: Sides) -> None:
    for i in range(3000):
        write_file(sides.a / f"d{i % 30}/f{i}", f"content {i}")
    daemon = sides.start(ready=False)
    daemon.wait_for_log(r"union merge")
    wait_until(lambda: any((sides.b / f"d{i}").exists() for i in range(30)), 20)
    daemon.kill()  # SIGKILL, in the middle of the first reconcile's writes
    expected = _sides_view(sides.a)
    daemon = sides.start()
    tree = sides.wait_equal(daemon, 30)
    assert tree == expected
    assert "conflict" not in daemon.log_text()
    # Again, killed mid-batch while live, with edits on both sides.
    for i in range(0, 3000, 3):
        write_file(sides.b / f"d{i % 30}/f{i}", f"edited {i}")
    daemon.kill()
    daemon = sides.start()
    tree = sides.wait_equal(daemon, 30)
    assert len([path for path in tree if "/f" in path]) == 3000
    assert (sides.a / "d0/f0").read_text() == "edited 0"
    assert "conflict" not in daemon.log_text()


def test_without_its_state_the_pair_merges_and_deletes_nothing(sides: Sides) -> None:
    write_file(sides.a / "f1", "1")
    write_file(sides.a / "f2", "2")
    daemon = sides.start()
    sides.wait_equal(daemon)
    daemon.stop()
    (sides.a / "f1").unlink()
    for path in sides.state_dir.iterdir():
        path.unlink()
    daemon = sides.start()
    daemon.wait_for_log(r"no state yet; starting with a union merge that deletes nothing")
    sides.wait_equal(daemon)
    assert (sides.a / "f1").read_text() == "1"  # brought back, not deleted from b


def test_a_corrupted_state_is_said_once_and_merged(sides: Sides) -> None:
    write_file(sides.a / "f1", "1")
    write_file(sides.a / "f2", "2")
    daemon = sides.start()
    sides.wait_equal(daemon)
    daemon.stop()
    (state,) = sides.state_files()
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0xFF
    state.write_bytes(bytes(data))
    (sides.b / "f2").unlink()
    daemon = sides.start()
    sides.wait_equal(daemon)
    lines = [line for line in daemon.lines if ": corrupted (" in line]
    assert len(lines) == 1 and "union merge that deletes nothing" in lines[0], daemon.report()
    assert (sides.b / "f2").read_text() == "2"


def test_a_recreated_root_deletes_nothing_on_the_other_side(sides: Sides) -> None:
    write_file(sides.a / "f1", "1")
    write_file(sides.a / "d/f2", "2")
    daemon = sides.start()
    sides.wait_equal(daemon)
    daemon.stop()
    sides.b.rename(sides.b.with_name("b.old"))
    sides.b.mkdir()  # a new volume: empty, another inode
    write_file(sides.b / "fresh", "new")
    daemon = sides.start()
    daemon.wait_for_log(r"the destination root changed identity")
    tree = sides.wait_equal(daemon)
    assert {"f1", "d/f2", "fresh"} <= set(tree)


def test_an_emptied_root_halts_the_pair(sides: Sides) -> None:
    for name in ("f1", "f2", "d/f3"):
        write_file(sides.a / name, name)
    # A second for the batch: the volume's entries all go within it, as in an unmount (deleted
    # one batch at a time, they would be ordinary deletions).
    daemon = sides.start("--delay", "1")
    sides.wait_equal(daemon)
    for child in sides.b.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    line = daemon.wait_for_log(r"ERROR .*halted: the destination root is empty").string
    assert "restart" in line and str(sides.state_files()[0]) in line
    wait_until(lambda: sides.status()["state"] == "halted")
    assert sorted(p.name for p in sides.a.iterdir()) == ["d", "f1", "f2"]  # nothing propagated
    health = run_cli("health", "--status-file", str(sides.status_file), cwd=sides.a.parent)
    assert health.returncode == 1 and "halted" in health.stdout
    mark = daemon.mark()
    write_file(sides.a / "later", "x")  # a halted pair propagates nothing
    daemon.wait_for_log(r"halted: \d+ events not applied", since=mark)
    assert not (sides.b / "later").exists()
    daemon.stop()
    daemon = sides.start(ready=False)  # the volume is still empty: halted again at start
    daemon.wait_for_log(r"ERROR .*halted")
    assert sorted(p.name for p in sides.a.iterdir()) == ["d", "f1", "f2", "later"]


def test_a_vanished_root_halts_the_pair(sides: Sides) -> None:
    write_file(sides.a / "f1", "1")
    write_file(sides.a / "f2", "2")
    daemon = sides.start()
    sides.wait_equal(daemon)
    moved = sides.b.with_name("b.gone")
    sides.b.rename(moved)
    daemon.wait_for_log(r"ERROR .*halted: the destination root .* is gone")
    wait_until(lambda: sides.status()["state"] == "halted")
    assert sorted(p.name for p in sides.a.iterdir()) == ["f1", "f2"]


def test_one_way_safe_keeps_the_destination_own_work(sides: Sides) -> None:
    sides.mode = "one-way-safe"
    write_file(sides.a / "f", "from a")
    daemon = sides.start()
    wait_until(lambda: (sides.b / "f").exists())
    write_file(sides.b / "own", "made in b")
    write_file(sides.a / "g", "new in a")
    wait_until(lambda: (sides.b / "g").exists())
    (sides.b / "f").unlink()  # b's deletion is undone: b mirrors a
    wait_until(lambda: (sides.b / "f").exists())
    assert (sides.b / "own").read_text() == "made in b"
    assert not (sides.a / "own").exists()  # the source is never written
    daemon.stop()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--backend", "rsync"], "needs BACKEND=direct"),
        (["--mode", "both"], "--mode='both' is not valid"),
        (["--conflict", "mine"], "--conflict='mine' is not valid"),
        (["--state-dir", "relative"], "--state-dir='relative' is not valid"),
    ],
)
def test_bad_two_way_settings_are_one_line_errors(
    tmp_path: Path, extra: list[str], expected: str
) -> None:
    (tmp_path / "a").mkdir()
    if "--state-dir" not in extra:
        extra = [*extra, "--state-dir", str(tmp_path / "state")]
    paths = [str(tmp_path / "a"), str(tmp_path / "b")]
    result = run_cli("check", *paths, "--mode", "two-way", *extra, cwd=tmp_path)
    assert result.returncode == 2, result
    assert expected in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "b").exists() and not (tmp_path / "state").exists()


def test_state_dir_inside_a_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    result = run_cli(
        "check", str(tmp_path / "a"), str(tmp_path / "b"), "--mode", "two-way",
        "--state-dir", str(tmp_path / "a/.state"), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "inside the source" in result.stderr and result.stderr.count("\n") == 1


def test_sigterm_stops_a_two_way_pair(sides: Sides) -> None:
    daemon = sides.start()
    daemon.send(signal.SIGTERM)
    assert daemon.wait_exit() == 0


def test_trees_copied_without_their_times_merge_without_conflict_copies(sides: Sides) -> None:
    for i in range(5):
        write_file(sides.a / f"f{i}", f"same {i}", mtime_ns=1_600_000_000_000_000_000)
        write_file(sides.b / f"f{i}", f"same {i}")  # as `cp` without -a leaves them
    write_file(sides.a / "differs", "aaaa")
    write_file(sides.b / "differs", "bbbb")
    daemon = sides.start()
    tree = sides.wait_equal(daemon)
    copies = [path for path in tree if CONFLICT_COPY.search(path)]
    assert [path.partition(".")[0] for path in copies] == ["differs"], copies
    warnings = [line for line in daemon.lines if "WARNING" in line and "conflict:" in line]
    assert len(warnings) == 1 and "changed differs;" in warnings[0], warnings


def test_excluded_paths_are_never_copied_nor_deleted(sides: Sides) -> None:
    write_file(sides.a / "build/out.o", "a's")
    write_file(sides.b / "cache.tmp", "b's")
    write_file(sides.a / "kept", "x")
    write_file(sides.a / "other", "y")
    daemon = sides.start("--exclude", "build/", "--exclude", "*.tmp")
    wait_until(lambda: (sides.b / "kept").exists() and (sides.a / "other").exists())
    write_file(sides.b / "new.tmp", "b's too")
    (sides.a / "build/out.o").unlink()
    write_file(sides.a / "later", "z")
    wait_until(lambda: (sides.b / "later").exists())
    assert not (sides.b / "build").exists() and not (sides.a / "cache.tmp").exists()
    assert not (sides.a / "new.tmp").exists() and (sides.b / "cache.tmp").read_text() == "b's"
    daemon.stop()


def test_a_directory_deleted_while_the_other_side_added_in_it_comes_back(sides: Sides) -> None:
    write_file(sides.a / "d/old", "old")
    write_file(sides.a / "keep", "k")
    daemon = sides.start()
    sides.wait_equal(daemon)
    daemon.stop()
    shutil.rmtree(sides.a / "d")
    write_file(sides.b / "d/added", "new work")
    daemon = sides.start()
    tree = sides.wait_equal(daemon)
    assert "d/added" in tree and "d/old" not in tree  # the unchanged file stays deleted


@pytest.mark.parametrize(("policy", "winner"), [("source", "from a"), ("destination", "from b")])
def test_conflict_policy_chooses_the_winner(sides: Sides, policy: str, winner: str) -> None:
    write_file(sides.a / "f.txt", "base")
    daemon = sides.start("--conflict", policy)
    sides.wait_equal(daemon)
    daemon.stop()
    # The older edit wins when the policy names its side: newer mtimes do not decide.
    write_file(sides.a / "f.txt", "from a", mtime_ns=1_700_000_000_000_000_000)
    write_file(sides.b / "f.txt", "from b", mtime_ns=1_700_000_001_000_000_000)
    if policy == "destination":
        write_file(sides.b / "f.txt", "from b", mtime_ns=1_600_000_000_000_000_000)
    daemon = sides.start("--conflict", policy)
    tree = sides.wait_equal(daemon)
    assert (sides.a / "f.txt").read_text() == winner
    (copy,) = [path for path in tree if CONFLICT_COPY.search(path)]
    assert (sides.a / copy).read_text() == ("from b" if winner == "from a" else "from a")


def test_a_volume_replaced_while_running_halts_the_pair(sides: Sides) -> None:
    """A fresh, empty tmpfs mounted over the destination (a remount): the pair halts, and the
    source keeps every file."""
    write_file(sides.a / "f1", "1")
    write_file(sides.a / "d/f2", "2")
    daemon = sides.start()
    sides.wait_equal(daemon)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(sides.b)], check=True)
    try:
        daemon.wait_for_log(r"ERROR .*halted: the destination root changed identity")
        wait_until(lambda: sides.status()["state"] == "halted")
        assert sorted(p.name for p in sides.a.iterdir()) == ["d", "f1"]
        daemon.stop()
    finally:
        subprocess.run(["umount", "-l", str(sides.b)], check=False)


def test_a_same_size_rewrite_within_one_mtime_tick_arrives(sides: Sides) -> None:
    daemon = sides.start()
    for side, other in ((sides.a, sides.b), (sides.b, sides.a)):
        mark = len(daemon.lines)
        write_file(side / "f", f"first from {side.name}")
        wait_until(lambda other=other, side=side: _text(other / "f") == f"first from {side.name}")
        # The copy's own events are read first: the same tick's rewrite on one side and the
        # echo on the other in one batch would be a conflict (nothing says which side wrote).
        daemon.wait_for_log("in sync, nothing to write", since=mark)
        mtime = os.lstat(side / "f").st_mtime_ns
        # As a second write lands within the same timestamp tick: same size, same mtime.
        write_file(side / "f", f"again from {side.name}", mtime_ns=mtime)
        wait_until(lambda other=other, side=side: _text(other / "f") == f"again from {side.name}")
    sides.wait_equal(daemon)


def test_same_size_rewrites_on_both_sides_within_one_tick_keep_both(sides: Sides) -> None:
    """Both sides rewritten in one batch, at the same size and within one timestamp tick: size
    and mtime alike, contents not. Both versions are kept (a conflict), on both sides."""
    write_file(sides.a / "f", "first")
    daemon = sides.start("--delay", "0.5")  # both sides' writes land in one batch
    sides.wait_equal(daemon)
    mtime = time.time_ns()
    write_file(sides.a / "f", "from a!", mtime_ns=mtime)
    write_file(sides.b / "f", "from b!", mtime_ns=mtime)
    tree = sides.wait_equal(daemon)
    (copy,) = [path for path in tree if CONFLICT_COPY.search(path)]
    for root in (sides.a, sides.b):
        assert {_text(root / "f"), _text(root / copy)} == {"from a!", "from b!"}
    daemon.wait_for_log(r"WARNING .*conflict: both sides changed f;")


def _text(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def test_subtrees_only_one_side_holds_are_merged_whole_and_recorded(sides: Sides) -> None:
    """A first start copies the directories one side lacks through the one-way copier: both
    sides end equal, and every copied path is recorded, so an edit or a delete of a copy on the
    other side is a change (no conflict copy, no copy brought back)."""
    for side, name in ((sides.a, "only-a"), (sides.b, "only-b")):
        for n in range(30):
            write_file(side / f"common/{name}/d{n % 3}/f{n}", f"{name} {n}", mode=0o640)
        (side / f"common/{name}/d0/link").symlink_to("f0")
        os.chmod(side / f"common/{name}/d1", 0o750)
    write_file(sides.a / "common/shared", "same")
    shutil.copy2(sides.a / "common/shared", sides.b / "common/shared")
    daemon = sides.start()
    daemon.wait_for_log(r"2 one-sided subtrees copied whole, \d+ paths agreed, 0 back")
    tree = sides.wait_equal(daemon)
    assert tree["common/only-a/d1"].mode == 0o750
    assert tree["common/only-b/d0/f3"].mode == 0o640
    assert os.readlink(sides.a / "common/only-b/d0/link") == "f0"
    edited = "edited where it was copied"
    write_file(sides.a / "common/only-b/d1/f1", edited)
    (sides.b / "common/only-a/d2/f2").unlink()
    wait_until(lambda: (sides.b / "common/only-b/d1/f1").read_text() == edited)
    wait_until(lambda: not (sides.a / "common/only-a/d2/f2").exists())
    tree = sides.wait_equal(daemon)
    assert not any(CONFLICT_COPY.search(path) for path in tree)
    assert "conflict" not in daemon.log_text()


def test_a_one_sided_subtree_in_one_way_safe_goes_from_the_source_only(sides: Sides) -> None:
    sides.mode = "one-way-safe"
    write_file(sides.a / "from-a/f", "a")
    write_file(sides.b / "own-b/f", "b")
    daemon = sides.start()
    daemon.wait_for_log(r"1 one-sided subtrees copied whole")
    wait_until(lambda: (sides.b / "from-a/f").exists())
    assert (sides.b / "from-a/f").read_text() == "a"
    assert not (sides.a / "own-b").exists()
    assert (sides.b / "own-b/f").read_text() == "b"


def test_excluded_paths_in_one_sided_subtrees_are_never_copied(sides: Sides) -> None:
    for side, name in ((sides.a, "only-a"), (sides.b, "only-b")):
        for n in range(20):  # enough subtrees that the helper process takes some
            write_file(side / f"{name}/d{n}/kept", name)
            write_file(side / f"{name}/d{n}/scratch.tmp", "excluded")
            write_file(side / f"{name}/d{n}/build/out.o", "excluded")
    daemon = sides.start("--exclude", "build/", "--exclude", "*.tmp")
    daemon.wait_for_log(r"2 one-sided subtrees copied whole")
    for side, other in ((sides.a, "only-b"), (sides.b, "only-a")):
        for n in range(20):
            assert (side / f"{other}/d{n}/kept").read_text() == other
            assert sorted(os.listdir(side / f"{other}/d{n}")) == ["kept"]
