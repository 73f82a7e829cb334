"""Whether a pair's source root is still there: removed, or unmounted, it must not be mirrored.

A source that goes away is not a source that was emptied. Unmounted, its path shows the empty
directory below the mount point; a full comparison against that would empty the destination.
So the pair pauses while `absence()` gives a reason, leaves the destination as it is, and
resumes (watching afresh, comparing the whole tree) when the source is back.
"""

from __future__ import annotations

import os
import stat

from pylsyncd.watch.mounts import mount_of, mounts


class SourceRoot:
    """Tells when the directory a pair mirrors has been removed or unmounted."""

    def __init__(self, path: str) -> None:
        self.path = path
        # The mount holding the source at start: when it is gone, so is the source.
        self.mount_point = mount_of(path)[0]
        self._identity = self._current_identity()

    def _current_identity(self) -> tuple[int, int] | None:
        try:
            status = os.stat(self.path)
        except OSError:
            return None
        return (status.st_dev, status.st_ino) if stat.S_ISDIR(status.st_mode) else None

    def absence(self) -> str | None:
        """Why the source is not there now, or None when it is.

        The common case costs one stat(2): the same directory as before. Another directory at
        the path (after a remount, or removed and created again) counts as the source as long
        as the mount that held it at start is mounted.
        """
        try:
            status = os.stat(self.path)
        except OSError as error:
            return f"the source {self.path} is gone ({error.strerror})"
        if not stat.S_ISDIR(status.st_mode):
            return f"the source {self.path} is no longer a directory"
        identity = (status.st_dev, status.st_ino)
        if identity == self._identity:
            return None
        if self.mount_point not in ("", "/") and all(
            point != self.mount_point for point, _ in mounts()
        ):
            return f"the file system of the source, mounted at {self.mount_point}, is unmounted"
        self._identity = identity
        return None
