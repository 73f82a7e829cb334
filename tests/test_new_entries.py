"""New entries as a storm brings them (`cp -a`, an install): modes, owners, hard links, and the
direct backend's shortcuts for directories its own batch creates."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import assert_trees_equal
from pylsyncd.coalesce import Change, ChangeKind, coalesce
from pylsyncd.events import Event, EventKind
from pylsyncd.excludes import ExcludeRules
from pylsyncd.transfer import Ownership, Transfer
from pylsyncd.transfer.direct import DirectTransfer
from pylsyncd.transfer.rsync import RsyncTransfer
from pylsyncd.transfer.tree_sync import TreeSync

# Permission bits a umask of 022 would strip, and the bits a change of owner clears.
MODES = {"plain": 0o644, "group-writable": 0o664, "all": 0o666, "private": 0o600}
MODES |= {"none": 0o000, "setuid": 0o4755, "setgid": 0o2755, "sticky": 0o1644}


def make(backend: str, src: Path, dst: Path) -> Transfer:
    ownership = Ownership.for_daemon(None, None)
    if backend == "rsync":
        return RsyncTransfer(str(src), str(dst), ExcludeRules(()), delete=True, ownership=ownership)
    return DirectTransfer(str(src), str(dst), ExcludeRules(()), delete=True, ownership=ownership)


def created(src: Path, *paths: str) -> list[Event]:
    """The events of entries made in this order, as inotify reports a copy into the source."""
    events = []
    for path in paths:
        is_dir = (src / path).is_dir()
        events.append(Event(EventKind.CREATED, path, is_dir=is_dir))
        if not is_dir:
            events.append(Event(EventKind.MODIFIED, path))
    return events


@pytest.fixture(params=["direct", "rsync"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["batch", "full sync"])
def way(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def write_modes(directory: Path, owner: tuple[int, int] | None) -> list[str]:
    directory.mkdir()
    names = []
    for name, mode in MODES.items():
        path = directory / name
        path.write_text(name)
        if owner is not None:
            os.chown(path, *owner)
        os.chmod(path, mode)  # after chown, which clears set-user-ID and set-group-ID
        names.append(f"{directory.name}/{name}")
    return names


def test_new_files_keep_every_permission_bit(
    backend: str, way: str, dirs: tuple[Path, Path]
) -> None:
    src, dst = dirs
    old_umask = os.umask(0o022)  # the usual one: it strips bits the source has
    try:
        names = write_modes(src / "d", None)
        transfer = make(backend, src, dst)
        if way == "batch":
            outcome = transfer.apply(coalesce(created(src, "d", *names)))
        else:
            outcome = transfer.full_sync(delete=True)
    finally:
        os.umask(old_umask)
    assert outcome.ok
    assert_trees_equal(src, dst)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another owner needs root")
def test_set_id_bits_survive_a_change_of_owner(
    backend: str, way: str, dirs: tuple[Path, Path]
) -> None:
    src, dst = dirs
    names = write_modes(src / "d", (1234, 5678))
    transfer = make(backend, src, dst)
    if way == "batch":
        assert transfer.apply(coalesce(created(src, "d", *names))).ok
    else:
        assert transfer.full_sync(delete=True).ok
    assert_trees_equal(src, dst)
    for name in names:
        copy = os.lstat(dst / name)
        assert (copy.st_uid, copy.st_gid) == (1234, 5678), name


def test_a_hard_link_in_a_directory_the_batch_creates_below_another(
    backend: str, dirs: tuple[Path, Path]
) -> None:
    """Both names of a hard link new in one batch, the second in a directory the batch creates
    after copying the first: each name is a copy, and nothing is left to a later search."""
    src, dst = dirs
    (src / "a" / "g").mkdir(parents=True)
    (src / "a" / "f1").write_text("linked")
    os.link(src / "a" / "f1", src / "a" / "g" / "f2")
    (src / "a" / "g" / "other").write_text("beside")
    transfer = make(backend, src, dst)
    events = created(src, "a", "a/f1", "a/g", "a/g/f2", "a/g/other")
    assert transfer.apply(coalesce(events)).ok
    assert_trees_equal(src, dst)


def test_a_new_directory_the_batch_fills_then_empties(dirs: tuple[Path, Path]) -> None:
    """Names created and deleted within a directory the batch creates: nothing is left, and
    nothing the batch did not see goes missing."""
    src, dst = dirs
    (src / "n" / "sub").mkdir(parents=True)
    (src / "n" / "kept").write_text("kept")
    events = [*created(src, "n", "n/sub", "n/kept")]
    events += [Event(EventKind.CREATED, "n/gone"), Event(EventKind.DELETED, "n/gone")]
    events += [Event(EventKind.CREATED, "n/sub/gone", is_dir=True)]
    events += [Event(EventKind.DELETED, "n/sub/gone", is_dir=True)]
    transfer = make("direct", src, dst)
    assert transfer.apply(coalesce(events)).ok
    assert_trees_equal(src, dst)


def test_a_storm_into_new_directories_then_its_late_events(dirs: tuple[Path, Path]) -> None:
    """A batch copies a new tree; a later batch brings the same entries' late events (their
    close, a chmod) after some were rewritten: each is brought up to date."""
    src, dst = dirs
    paths = ["t"]
    for i in range(3):
        (src / "t" / f"d{i}").mkdir(parents=True)
        paths.append(f"t/d{i}")
        for j in range(4):
            (src / "t" / f"d{i}" / f"f{j}").write_text(f"{i}{j}")
            paths.append(f"t/d{i}/f{j}")
    transfer = make("direct", src, dst)
    assert transfer.apply(coalesce(created(src, *paths))).ok
    (src / "t" / "d1" / "f2").write_text("rewritten, longer")
    os.chmod(src / "t" / "d2" / "f0", 0o600)
    late = [Event(EventKind.MODIFIED, path) for path in paths if "/f" in path]
    late += [Event(EventKind.ATTRIB, "t/d2/f0")]
    assert transfer.apply(coalesce(late)).ok
    assert_trees_equal(src, dst)


def test_a_tree_synced_whole_leaves_nothing_to_remember(dirs: tuple[Path, Path]) -> None:
    """What a run knows of the directories it created goes once each is synced whole: a first
    sync of 100,000 directories held 20 MiB of it until its end."""
    src, dst = dirs
    for group in range(5):
        for leaf in range(10):
            (src / f"g{group}" / f"d{leaf}").mkdir(parents=True)
            (src / f"g{group}" / f"d{leaf}" / "f").write_text("x")
    transfer = DirectTransfer(str(src), str(dst), ExcludeRules(()), delete=True)
    run = TreeSync(transfer.state, delete=True)
    run.sync_tree(Change("", ChangeKind.SYNC_TREE))
    assert len(run.fresh) == 0
    run.finish()
    assert run.outcome.ok
    assert_trees_equal(src, dst)
