"""Safe writes below a destination root: every path is resolved one component at a time.

Each directory is opened with O_NOFOLLOW relative to its parent's descriptor, and every operation
takes a directory descriptor plus a single name. A symlink that exists (or appears) anywhere in
the destination is therefore never followed, so nothing is ever written outside the root.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable

from pylsyncd.transfer import Ownership
from pylsyncd.transfer.directories import (
    DIR_FLAGS,
    DirectoryCache,
    lstat_at,
    open_followed_root,
    split,
)
from pylsyncd.transfer.file_writer import (
    FileWriter,
    link_into_place,
    rename_into_place,
    temp_name,
)
from pylsyncd.transfer.source import SourceChangedError

# Source-side attributes of a directory, looked up when one has to be created on the way.
DirStat = Callable[[str], os.stat_result | None]


def _keep_nothing(path: str, is_dir: bool) -> bool:
    return False


class DestinationTree:
    """Directory descriptors below a destination root, cached for the duration of one batch."""

    def __init__(
        self,
        root: str,
        source_dir_stat: DirStat,
        ownership: Ownership,
        in_place_size: int,
        *,
        create_only: bool = False,
    ) -> None:
        self.root = root
        self._source_dir_stat = source_dir_stat
        self.ownership = ownership
        self.files = FileWriter(ownership, in_place_size, create_only=create_only)
        # A missing directory is never remembered: this tree creates the ones it needs.
        self._dirs = DirectoryCache(lambda: os.open(root, DIR_FLAGS), remember_missing=False)
        # Directories whose entries this tree changed on its own (creating a missing parent):
        # their mtimes must be copied again, like those of the directories a batch touched.
        self.changed_dirs: set[str] = set()

    def close(self) -> None:
        self._dirs.close()

    def trim(self, keep: str) -> None:
        """Close cached descriptors beyond MAX_CACHED_DIRS, but never those of `keep` and its
        ancestors: the caller may be holding them."""
        self._dirs.trim(keep)

    def forget(self, path: str) -> None:
        """Drop cached descriptors at or below `path` (it was renamed or removed)."""
        self._dirs.forget(path)

    def open_dir(self, path: str) -> int | None:
        """Descriptor of an existing real directory at `path`, or None when there is none."""
        return self._dirs.open(path)

    def ensure_dir(self, path: str) -> int:
        """Descriptor of the directory at `path`, creating missing ones like the source's."""
        fd = self.open_dir(path)
        if fd is not None:
            return fd
        source = self._source_dir_stat(path)
        if source is None:  # the entry being synced was seen in it a moment ago
            raise SourceChangedError(errno.ENOENT, "its source directory is gone", path)
        parent, name = split(path)
        parent_fd = self.ensure_dir(parent)
        self.remove(parent_fd, name, path)  # a file or symlink in the way
        os.mkdir(name, 0o700, dir_fd=parent_fd)
        self.changed_dirs.update((parent, path))
        fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
        self._dirs.add(path, fd)
        self.set_dir_attributes(fd, source)
        return fd

    def lstat(self, parent_fd: int, name: str) -> os.stat_result | None:
        return lstat_at(parent_fd, name)

    def remove(
        self, parent_fd: int, name: str, path: str, keep: Callable[[str, bool], bool] | None = None
    ) -> bool:
        """Remove whatever is at `path` (a tree too); entries for which `keep` is true survive.

        Returns True when something was removed.
        """
        current = self.lstat(parent_fd, name)
        if current is None:
            return False
        if not stat.S_ISDIR(current.st_mode):
            os.unlink(name, dir_fd=parent_fd)
            return True
        self.forget(path)
        # Descriptor by descriptor, never through a symlink (as shutil.rmtree with dir_fd does;
        # not importing shutil spares its compression modules, about 0.7 MiB resident).
        self._remove_tree_keeping(parent_fd, name, path, keep or _keep_nothing)
        return True

    def _remove_tree_keeping(
        self, parent_fd: int, name: str, path: str, keep: Callable[[str, bool], bool]
    ) -> bool:
        """Like rsync --delete without --delete-excluded: excluded entries stay, and so do the
        directories that hold them. Returns True when the directory itself could go."""
        fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
        empty = True
        try:
            with os.scandir(fd) as entries:
                children = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
            for child, is_dir in children:
                child_path = f"{path}/{child}"
                if keep(child_path, is_dir):
                    empty = False
                elif is_dir:
                    empty &= self._remove_tree_keeping(fd, child, child_path, keep)
                else:
                    os.unlink(child, dir_fd=fd)
        finally:
            os.close(fd)
        if empty:
            os.rmdir(name, dir_fd=parent_fd)
        return empty

    def set_dir_attributes(self, fd: int, source: os.stat_result) -> None:
        # Owner first, then mode, as for files (see `FileWriter`).
        owner = self.ownership.of(source)
        if owner is not None:
            os.fchown(fd, *owner)
        os.fchmod(fd, stat.S_IMODE(source.st_mode))

    def set_dir_times(self, path: str, source: os.stat_result) -> None:
        fd = self.open_dir(path)
        if fd is not None:
            os.utime(fd, ns=(source.st_atime_ns, source.st_mtime_ns))

    def write_symlink(self, parent_fd: int, name: str, target: str, source: os.stat_result) -> None:
        tmp = temp_name()
        os.symlink(target, tmp, dir_fd=parent_fd)
        try:
            owner = self.ownership.of(source)
            if owner is not None:
                os.chown(tmp, *owner, dir_fd=parent_fd, follow_symlinks=False)
            os.utime(
                tmp,
                ns=(source.st_atime_ns, source.st_mtime_ns),
                dir_fd=parent_fd,
                follow_symlinks=False,
            )
        except BaseException:
            os.unlink(tmp, dir_fd=parent_fd)
            raise
        if self.files.create_only:
            link_into_place(parent_fd, tmp, name)
        else:
            rename_into_place(parent_fd, tmp, name)


class DestinationView:
    """Read-only lookups below a destination root that another program writes (rsync): the
    same component-by-component resolution as `DestinationTree`, never through a symlink."""

    def __init__(self, root: str) -> None:
        # The root is followed, as rsync follows `destination/`; nothing below it is.
        self._dirs = DirectoryCache(lambda: open_followed_root(root), remember_missing=False)

    def close(self) -> None:
        self._dirs.close()

    def lstat(self, path: str) -> os.stat_result | None:
        """The entry at `path` itself (a symlink is not followed), or None when there is none."""
        parent, name = split(path)
        parent_fd = self._dirs.open(parent)
        return None if parent_fd is None else lstat_at(parent_fd, name)

    def open_file(self, path: str) -> int | None:
        """A read-only descriptor of the file at `path` (never through a symlink), or None."""
        parent, name = split(path)
        parent_fd = self._dirs.open(parent)
        if parent_fd is None:
            return None
        try:
            return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        except OSError:
            return None

    def children(self, path: str) -> dict[str, bool]:
        """The names in the directory at `path`, each with whether it is a directory; none when
        there is no directory there."""
        fd = self._dirs.open(path)
        if fd is None:
            return {}
        with os.scandir(fd) as entries:
            return {entry.name: entry.is_dir(follow_symlinks=False) for entry in entries}
