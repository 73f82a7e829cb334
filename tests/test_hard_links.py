"""Hard links: a change through one name raises an event for that name only, yet every copy in
the destination (one separate file per name, as rsync without -H) must follow it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import DaemonPool, daemon_args, wait_for_mirror, write_file
from pylsyncd.coalesce import Batch, coalesce, merge
from pylsyncd.events import Event, EventKind
from pylsyncd.excludes import ExcludeRules
from pylsyncd.transfer import Transfer
from pylsyncd.transfer.direct import DirectTransfer
from pylsyncd.transfer.rsync import RsyncTransfer

OLD_MTIME_NS = 1_500_000_000_123_456_789


def _transfer(src: Path, dst: Path, backend: str) -> Transfer:
    rules = ExcludeRules(())
    if backend == "rsync":
        return RsyncTransfer(str(src), str(dst), rules, delete=True)
    return DirectTransfer(str(src), str(dst), rules, delete=True)


@pytest.mark.parametrize("backend", ["direct", "rsync"])
def test_a_change_through_one_name_reaches_every_name(
    tmp_path: Path, daemons: DaemonPool, backend: str
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_file(src / "original", "version 1")
    os.link(src / "original", src / "linked-before-start")
    daemon = daemons.start(daemon_args(src, dst, backend))
    daemon.wait_ready()

    # Linked while running, in another directory: its name is met only through its own event.
    (src / "dir").mkdir()
    os.link(src / "original", src / "dir" / "linked-live")
    wait_for_mirror(src, dst, daemon=daemon)

    for writer, content in [
        (src / "dir" / "linked-live", "version 2, longer"),
        (src / "linked-before-start", "version 3"),
        (src / "original", "version 4"),
    ]:
        writer.write_text(content)
        wait_for_mirror(src, dst, daemon=daemon)
    # Attributes are the inode's too: mode, and a same-size rewrite that keeps the mtime.
    (src / "original").chmod(0o600)
    wait_for_mirror(src, dst, daemon=daemon)
    os.utime(src / "original", ns=(OLD_MTIME_NS, OLD_MTIME_NS))
    (src / "dir" / "linked-live").write_text("version 5")
    os.utime(src / "original", ns=(OLD_MTIME_NS, OLD_MTIME_NS))
    wait_for_mirror(src, dst, daemon=daemon)
    daemon.stop()
    assert (dst / "linked-before-start").read_text() == "version 5"


@pytest.mark.parametrize("backend", ["direct", "rsync"])
def test_a_renamed_directory_does_not_hide_a_name(
    tmp_path: Path, daemons: DaemonPool, backend: str
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_file(src / "a" / "file", "version 1")
    (src / "b").mkdir()
    os.link(src / "a" / "file", src / "b" / "link")
    daemon = daemons.start(daemon_args(src, dst, backend))
    daemon.wait_ready()
    (src / "a" / "file").write_text("version 2")
    wait_for_mirror(src, dst, daemon=daemon)
    os.rename(src / "b", src / "renamed")  # the known name b/link goes stale
    wait_for_mirror(src, dst, daemon=daemon)
    (src / "a" / "file").write_text("version 3")
    wait_for_mirror(src, dst, daemon=daemon)
    daemon.stop()


@pytest.mark.parametrize("backend", ["direct", "rsync"])
@pytest.mark.parametrize("retried", [False, True], ids=["first-try", "retried"])
def test_a_file_changed_then_renamed_in_one_batch_reaches_its_other_names(
    tmp_path: Path, backend: str, retried: bool
) -> None:
    """The rename makes the changed name a tree sync (rsync cannot rename; a retried batch
    drops renames): its other names must still be copied. Seen in the churn test (rsync)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_file(src / "a", "version 1", mtime_ns=OLD_MTIME_NS)
    write_file(src / "dir" / "x", "unrelated")
    os.link(src / "a", src / "dir" / "other-name")
    dst.mkdir()
    transfer = _transfer(src, dst, backend)
    assert transfer.full_sync(delete=True).ok
    # Like a same-size rewrite within one timestamp tick, then a rename: one batch.
    (src / "a").write_text("version 2")
    os.utime(src / "a", ns=(OLD_MTIME_NS, OLD_MTIME_NS))
    os.rename(src / "a", src / "renamed")
    batch = coalesce(
        [Event(EventKind.MODIFIED, "a"), Event(EventKind.MOVED, "a", target="renamed")]
    )
    if retried:
        batch = merge(Batch(), batch)
    assert transfer.apply(batch).ok
    assert (dst / "renamed").read_text() == "version 2"
    assert (dst / "dir" / "other-name").read_text() == "version 2"
    assert not (dst / "a").exists()


@pytest.mark.parametrize("backend", ["direct", "rsync"])
def test_a_name_found_past_a_rename_not_yet_replayed_keeps_the_change(
    tmp_path: Path, backend: str
) -> None:
    """The search for other names reads the source as it is now: past a rename whose events a
    later batch carries. The name it finds there is written ahead, where that rename then puts
    the older tree: the name must be synced again after it. Seen in the churn test (direct)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_file(src / "a" / "sub" / "name", "version 1")
    os.link(src / "a" / "sub" / "name", src / "other")
    dst.mkdir()
    transfer = _transfer(src, dst, backend)
    assert transfer.full_sync(delete=True).ok
    transfer = _transfer(src, dst, backend)  # a daemon restarted: the names are met again
    (src / "other").write_text("version 2, through the other name")
    os.rename(src / "a", src / "b")
    # The write's batch comes first; the rename's events are read after it.
    assert transfer.apply(coalesce([Event(EventKind.MODIFIED, "other")])).ok
    moved = coalesce([Event(EventKind.MOVED, "a", target="b", is_dir=True)])
    assert transfer.apply(moved).ok
    assert (dst / "b" / "sub" / "name").read_text() == "version 2, through the other name"
    assert not (dst / "a").exists()
