"""Whether a one-way target's destination changed beneath it, and when VERIFY_INTERVAL is due.

A one-way pair applies the source's changes and never looks at the destination as a whole
again. If another directory takes the destination's path while it runs (a tmpfs mounted over
it, a volume recreated, the directory removed and made again) or someone empties it, the
changes still arrive but what the old directory held is never restored (issue 14). So the
target looks at its root about once a second, one stat(2) and the first entry of a listing,
and asks for a full comparison when the root is another directory or was emptied.

Remote destinations are not looked at this way (a look would be a round trip over ssh each
second); VERIFY_INTERVAL's periodic comparisons cover them and any other process that touches
a replica.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from pylsyncd.config import PairConfig
from pylsyncd.excludes import ExcludeRules
from pylsyncd.pair.observer import ResyncReason

CHECK_EVERY = 1.0  # seconds between looks at a local destination's root


@dataclass(frozen=True)
class Repair:
    """Why the destination is to be compared whole: said in the log, counted in the metrics."""

    reason: ResyncReason
    why: str


class DestinationRoot:
    """Watches over one target's destination root between its batches."""

    def __init__(self, config: PairConfig, excludes: ExcludeRules) -> None:
        self._path = None if config.remote is not None else config.destination
        self._source = config.source
        self._excludes = excludes
        self._verify_every = config.verify_interval
        self._identity: tuple[int, int] | None = None
        self._had_entries = False
        self._next_check = 0.0
        self._next_verify: float | None = None

    def compared(self) -> None:
        """The whole tree was just compared: this is the destination as it should stay."""
        now = time.monotonic()
        if self._path is not None:
            self._identity = _identity(self._path)
            self._had_entries = self._has_entries(self._path)
            self._next_check = now + CHECK_EVERY
        if self._verify_every is not None:
            self._next_verify = now + self._verify_every

    def due(self) -> float | None:
        """When (monotonic) the next look is due; None when nothing is looked at."""
        times = [self._next_verify] if self._next_verify is not None else []
        if self._path is not None and self._identity is not None:
            times.append(self._next_check)
        return min(times) if times else None

    def repair(self) -> Repair | None:
        """Why the whole tree should be compared now, if it should (cheap when it should not)."""
        now = time.monotonic()
        if self._path is not None and self._identity is not None and now >= self._next_check:
            self._next_check = now + CHECK_EVERY
            found = self._changed(self._path)
            if found is not None:
                return Repair(ResyncReason.DESTINATION_CHANGED, found)
        if self._next_verify is not None and now >= self._next_verify:
            self._next_verify = now + (self._verify_every or 0.0)
            return Repair(ResyncReason.VERIFY, "VERIFY_INTERVAL")
        return None

    def _changed(self, path: str) -> str | None:
        identity = _identity(path)
        if identity is None:
            return None  # gone: the transfer fails and says why; a new one has a new identity
        if identity != self._identity:
            self._identity = identity
            return (
                f"the destination {path} is another directory than before (a remount, or "
                "removed and created again)"
            )
        has_entries = self._has_entries(path)
        emptied = self._had_entries and not has_entries
        self._had_entries = has_entries
        if emptied and self._has_entries(self._source):
            return f"the destination {path} was emptied"
        return None

    def _has_entries(self, path: str) -> bool:
        try:
            with os.scandir(path) as entries:
                return any(
                    not self._excludes.excludes(e.name, e.is_dir(follow_symlinks=False))
                    for e in entries
                )
        except OSError:
            return False


def _identity(path: str) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_dev, status.st_ino)
