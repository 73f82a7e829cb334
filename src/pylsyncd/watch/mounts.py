"""The mount table: which mount holds a path, of what filesystem type, and whether that type
reports changes made elsewhere through inotify.

Read from /proc/self/mountinfo, so it sees the mounts of this mount namespace (a container's own
view), including bind mounts and FUSE filesystems stacked on one point.
"""

from __future__ import annotations

import logging
import os
import re

from pylsyncd.events import is_within

log = logging.getLogger(__name__)

# Filesystems where a change made on the other side (the host, another client or node) raises no
# inotify event here. Every FUSE filesystem is added by `needs_polling`.
NO_INOTIFY_FILESYSTEMS = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "vboxsf", "virtiofs", "fakeowner",
        "prl_fs", "vmhgfs", "ceph", "glusterfs", "afs", "lustre", "gpfs", "ocfs2", "gfs2",
    }
)  # fmt: skip
_MOUNTINFO_ESCAPE = re.compile(rb"\\([0-7]{3})")


def needs_polling(fstype: str) -> bool:
    """True for network, cluster, VM-shared and FUSE filesystems (grpcfuse is FUSE)."""
    return (
        fstype in NO_INOTIFY_FILESYSTEMS
        or fstype in ("fuse", "fuseblk")
        or fstype.startswith("fuse.")
    )


def filesystem_type(path: str, mountinfo: str = "/proc/self/mountinfo") -> str:
    """The type of the filesystem holding `path` ("ext4", "fuse.grpcfuse"); "unknown" without
    a readable mount table.

    The mount is the longest mount point above the real path; of mounts stacked on one point,
    the last listed is the one on top.
    """
    return mount_of(path, mountinfo)[1]


def mount_of(path: str, mountinfo: str = "/proc/self/mountinfo") -> tuple[str, str]:
    """(mount point, filesystem type) of the mount holding `path`; ("", "unknown") without a
    readable mount table."""
    real = os.path.realpath(path)
    best, fstype = "", "unknown"
    for mount_point, mount_type in mounts(mountinfo):
        above = mount_point == "/" or is_within(real, mount_point)
        if above and len(mount_point) >= len(best):
            best, fstype = mount_point, mount_type
    return best, fstype


def mounts(mountinfo: str = "/proc/self/mountinfo") -> list[tuple[str, str]]:
    """(mount point, filesystem type) of every mount, in the kernel's order; [] if unreadable."""
    try:
        with open(mountinfo, "rb") as table:
            lines = table.read().splitlines()
    except OSError as error:
        log.debug("cannot read %s: %s", mountinfo, error)
        return []
    found: list[tuple[str, str]] = []
    for line in lines:
        fields, separator, rest = line.partition(b" - ")
        ids = fields.split(b" ")
        if separator and len(ids) >= 5 and rest:
            found.append((_unescape(ids[4]), _unescape(rest.split(b" ")[0])))
    return found


def _unescape(field: bytes) -> str:
    """A mountinfo field as a path: the kernel writes space, tab, newline and backslash as \\ooo."""
    raw = _MOUNTINFO_ESCAPE.sub(lambda match: bytes([int(match[1], 8)]), field)
    return os.fsdecode(raw)
