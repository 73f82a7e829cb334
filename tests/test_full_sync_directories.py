"""A full sync holds the directories whose times are still to be copied only while it works in
them, not one per directory of the tree until the end: on 100,000 directories that list was about
10 MiB of the daemon's peak. Counted structurally, in entries, never timed; and the times are
still those of the source, hard links and all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import assert_trees_equal, set_mtime, write_file
from pylsyncd.coalesce import Batch, Change, ChangeKind
from pylsyncd.excludes import ExcludeRules
from pylsyncd.transfer import helper_sharing
from pylsyncd.transfer.direct import DirectTransfer

_OLD_NS = 1_500_000_000_123_456_789  # a directory time no sync could leave by accident


def _deep_tree(root: Path) -> int:
    """root/a<i>/b<j>/c<k>/d<l>/f: 2 x 4 x 10 x 10 leaves; returns the number of directories.
    Every directory gets an old mtime, so a copy that missed one shows."""
    directories = []
    for i in range(2):
        for j in range(4):
            for k in range(10):
                for n in range(10):
                    leaf = root / f"a{i}" / f"b{j}" / f"c{k}" / f"d{n}"
                    write_file(leaf / "f", f"{i} {j} {k} {n}")
    for top, dirs, _ in os.walk(root):
        directories += [Path(top) / name for name in dirs]
    for directory in sorted(directories, key=lambda p: -len(p.parts)):
        set_mtime(directory, _OLD_NS)
    return len(directories)


@pytest.fixture(autouse=True)
def no_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every subtree synced here, in this process, where its bookkeeping can be looked at.
    monkeypatch.setattr(helper_sharing, "can_help", lambda: False)


def test_a_full_sync_holds_only_the_directories_it_is_in(tmp_path: Path) -> None:
    source, destination = tmp_path / "src", tmp_path / "dst"
    directories = _deep_tree(source)
    destination.mkdir()
    transfer = DirectTransfer(str(source), str(destination), ExcludeRules(()), delete=True)
    held: list[int] = []

    def progress(entries: int) -> None:
        run = transfer._full_sync  # the run in progress, whose bookkeeping this test watches
        assert run is not None
        held.append(len(run.touched) + len(run.tree.changed_dirs))

    outcome = transfer.full_sync(delete=True, progress=progress)
    assert outcome.ok and outcome.dirs == directories
    assert len(held) > directories  # looked at after every entry
    # The root, the two levels above the shared subtrees, and the chain it is in.
    assert max(held) <= 2 + 1 + 4 + 4, f"held up to {max(held)} of {directories} directories"
    assert_trees_equal(source, destination)


def test_a_directory_written_again_after_its_tree_gets_its_times_again(tmp_path: Path) -> None:
    # b/link is another name of a/f. The batch syncs b's tree first (its times set then), then
    # a/f, whose other names raised no event: b/link is written again, after b was done with.
    source, destination = tmp_path / "src", tmp_path / "dst"
    write_file(source / "a" / "f", "one")
    (source / "b").mkdir()
    os.link(source / "a" / "f", source / "b" / "link")
    destination.mkdir()
    transfer = DirectTransfer(str(source), str(destination), ExcludeRules(()), delete=True)
    assert transfer.full_sync(delete=True).ok
    write_file(source / "a" / "f", "changed, longer")
    for directory in (source / "b", source / "a"):
        set_mtime(directory, _OLD_NS)
    batch = Batch((), (Change("b", ChangeKind.SYNC_TREE), Change("a/f", ChangeKind.SYNC)))
    outcome = transfer.apply(batch)
    assert outcome.ok and outcome.copied >= 2, outcome
    assert_trees_equal(source, destination)
