"""Names of conflict copies: `NAME.sync-conflict-YYYYMMDD-HHMMSS-<side>.EXT` (syncthing's form).

The time is an input (reconcile has no clock); the caller passes the local time of the batch,
which is what a person looking at the files expects to read.
"""

from __future__ import annotations

import re
from datetime import datetime

from pylsyncd.entries import Side

_MARK = ".sync-conflict-"
_COPY = re.compile(r"\.sync-conflict-\d{8}-\d{6}-[a-z]+(?:-\d+)?(?:\.|$)")


def conflict_copy_name(path: str, when: datetime, side: Side, attempt: int = 1) -> str:
    """The name the loser at `path` is kept under; `attempt` > 1 when that name is taken.

    The extension stays last so the copy opens with the same program ("a.txt" ->
    "a.sync-conflict-20261201-154300-destination.txt"); a leading dot does not start an
    extension (".env" -> ".env.sync-conflict-...-source").
    """
    directory, slash, name = path.rpartition("/")
    dot = name.rfind(".")
    stem, extension = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    counter = f"-{attempt}" if attempt > 1 else ""
    stamp = when.strftime("%Y%m%d-%H%M%S")
    return f"{directory}{slash}{stem}{_MARK}{stamp}-{side.value}{counter}{extension}"


def is_conflict_copy(path: str) -> bool:
    """Whether the last component of `path` is a conflict copy's name."""
    return _COPY.search(path.rpartition("/")[2]) is not None
