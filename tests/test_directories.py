"""The directory-descriptor cache both trees of a direct transfer share, and the read-only
destination lookup of the rsync backend: never through a symlink below the root, bounded."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pylsyncd.transfer.destination import DestinationView
from pylsyncd.transfer.directories import (
    DIR_FLAGS,
    MAX_CACHED_DIRS,
    DirectoryCache,
    open_followed_root,
)


def cache_of(root: Path, *, remember_missing: bool) -> DirectoryCache:
    return DirectoryCache(lambda: os.open(root, DIR_FLAGS), remember_missing=remember_missing)


@pytest.fixture
def caches() -> Iterator[list[DirectoryCache]]:
    """Caches made by a test, closed at its end."""
    made: list[DirectoryCache] = []
    yield made
    for cache in made:
        cache.close()


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError as error:
        assert error.errno == errno.EBADF
        return False
    return True


@pytest.mark.parametrize("remember_missing", [True, False])
def test_a_symlink_below_the_root_is_never_followed(
    tmp_path: Path, caches: list[DirectoryCache], remember_missing: bool
) -> None:
    (tmp_path / "outside" / "inner").mkdir(parents=True)
    (tmp_path / "root" / "real").mkdir(parents=True)
    (tmp_path / "root" / "link").symlink_to(tmp_path / "outside")
    cache = cache_of(tmp_path / "root", remember_missing=remember_missing)
    caches.append(cache)
    assert cache.open("real") is not None
    assert cache.open("link") is None
    assert cache.open("link/inner") is None
    assert cache.open("real/missing") is None


def test_a_missing_directory_is_remembered_only_by_a_tree_that_asks(
    tmp_path: Path, caches: list[DirectoryCache]
) -> None:
    remembering = cache_of(tmp_path, remember_missing=True)
    looking_again = cache_of(tmp_path, remember_missing=False)
    caches += [remembering, looking_again]
    assert remembering.open("late") is None
    assert looking_again.open("late") is None
    (tmp_path / "late").mkdir()
    assert remembering.open("late") is None  # a source tree reads a batch's worth of state
    assert looking_again.open("late") is not None  # the destination finds what it creates


def test_trim_keeps_the_directory_in_use_and_its_ancestors(
    tmp_path: Path, caches: list[DirectoryCache]
) -> None:
    names = [f"a/b/d{number}" for number in range(MAX_CACHED_DIRS + 5)]
    for name in names:
        (tmp_path / name).mkdir(parents=True)
    cache = cache_of(tmp_path, remember_missing=False)
    caches.append(cache)
    fds = {name: cache.open(name) for name in ["", "a", "a/b", *names]}
    assert all(fd is not None for fd in fds.values())
    cache.trim("a/b/d0")
    kept = {name for name, fd in fds.items() if fd is not None and is_open(fd)}
    assert kept == {"", "a", "a/b", "a/b/d0"}
    assert cache.open("a/b") == fds["a/b"]  # still cached, not opened again


def test_forget_closes_a_subtree_only(tmp_path: Path, caches: list[DirectoryCache]) -> None:
    for name in ("a/b", "a2"):
        (tmp_path / name).mkdir(parents=True)
    cache = cache_of(tmp_path, remember_missing=False)
    caches.append(cache)
    fds = {name: cache.open(name) for name in ("a", "a/b", "a2")}
    cache.forget("a")
    assert {name for name, fd in fds.items() if fd is not None and is_open(fd)} == {"a2"}


def test_a_root_given_as_a_symlink_is_followed_and_a_missing_one_is_none(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to("real")
    fd = open_followed_root(str(tmp_path / "alias"))
    assert fd is not None
    os.close(fd)
    assert open_followed_root(str(tmp_path / "missing")) is None


def test_the_destination_view_reads_without_following_symlinks(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("not the destination's")
    root = tmp_path / "dst"
    (root / "dir").mkdir(parents=True)
    (root / "dir" / "file").write_text("in the destination")
    (root / "link").symlink_to(tmp_path / "outside")
    (tmp_path / "dst-alias").symlink_to("dst")
    view = DestinationView(str(tmp_path / "dst-alias"))  # as rsync follows `destination/`
    try:
        assert view.children("") == {"dir": True, "link": False}
        assert view.children("dir") == {"file": False}
        assert view.children("link") == {}
        assert view.lstat("link/secret") is None
        status = view.lstat("dir/file")
        assert status is not None and status.st_size == len("in the destination")
        assert view.lstat("dir/missing") is None
    finally:
        view.close()
