"""Who a pair and its roots are, and where the pair keeps its state (never inside a root).

A root's identity is its device, its inode and its filesystem's id (`statvfs().f_fsid`): a
volume recreated or remounted at the same path gets a new inode or a new filesystem id, and then
the ancestor state describes another tree and must not be used to decide deletions.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pylsyncd.errors import ConfigError

STATE_DIR = Path("/var/lib/pylsyncd")  # the default of the STATE_DIR setting
STATE_SUFFIX = ".state"


@dataclass(frozen=True, slots=True)
class RootIdentity:
    """What makes a root the same directory across restarts."""

    device: int
    inode: int
    filesystem: int  # statvfs f_fsid

    def describe(self) -> str:
        """The identity as one short phrase for a log line."""
        return f"device {self.device}, inode {self.inode}, filesystem {self.filesystem:#x}"


@dataclass(frozen=True, slots=True)
class PairIdentity:
    """A pair by its two roots' paths, as configured (absolute)."""

    source: str
    destination: str


def root_identity(path: str | os.PathLike[str]) -> RootIdentity:
    """The identity of the directory at `path` (raises OSError when it cannot be read)."""
    status = os.stat(path)
    return RootIdentity(status.st_dev, status.st_ino, os.statvfs(path).f_fsid)


def identity_change(name: str, before: RootIdentity, now: RootIdentity) -> str | None:
    """Why a root is no longer the one the state describes (None: it still is)."""
    if before == now:
        return None
    return f"the {name} root changed identity (was {before.describe()}, now {now.describe()})"


def state_path(state_dir: str | os.PathLike[str], pair: PairIdentity) -> Path:
    """The pair's state file in `state_dir`; ConfigError when `state_dir` lies inside a root.

    The name carries the destination's last component for a person listing the directory, and a
    digest of both paths so that two pairs never share a file.
    """
    directory = Path(os.path.realpath(state_dir))
    for name, root in (("source", pair.source), ("destination", pair.destination)):
        real = Path(os.path.realpath(root))
        if directory == real or real in directory.parents:
            raise ConfigError(
                f"STATE_DIR={state_dir} is inside the {name} {root}: the pair would sync its own "
                f"state; put STATE_DIR on a volume outside both roots (default {STATE_DIR})"
            )
    digest = hashlib.sha256(f"{pair.source}\0{pair.destination}".encode()).hexdigest()[:16]
    label = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(pair.destination).name or "root")[:40]
    return directory / f"{label}-{digest}{STATE_SUFFIX}"
