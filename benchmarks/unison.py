"""The two-way peers: pylsyncd `--mode two-way` and unison 2.52, each syncing side A with side B.

Debian's unison ships no unison-fsmonitor, so it cannot watch: it runs `-repeat 1` (a full scan
of both sides a second after each sync ends), `-batch` (no questions), `-prefer newer` (the newer
version takes a conflict) and `-copyonconflict` (the loser is kept beside, as `NAME (conflict on
DATE)`), `-times` (mtimes synced, as pylsyncd does). Its archive lives in the run's directory
(`UNISON`), so each run starts from no state, as pylsyncd starts with an empty `STATE_DIR`.
"""

from __future__ import annotations

import os
import re
import sys
import time

from benchmarks import trees
from benchmarks.daemons import Daemon, Peer

PYLSYNCD_TWO_WAY = Peer("pylsyncd", "two-way")
UNISON = Peer("unison", "repeat")
UNISON_OPTIONS = ("-batch", "-prefer", "newer", "-copyonconflict", "-times", "-repeat", "1")
# What each names a conflict's loser kept beside the path: `NAME` + one of these.
CONFLICT_MARKERS = {PYLSYNCD_TWO_WAY.key: ".sync-conflict-", UNISON.key: " (conflict"}
_TRANSFERRED = re.compile(rb"\((\d+) items? transferred")
_BATCH = re.compile(rb": batch: (\d+) changes")


class TwoWayDaemon(Daemon):
    """One of the two peers syncing `side_a` and `side_b`, its state in `workdir`."""

    def __init__(self, peer: Peer, side_a: str, side_b: str, workdir: str) -> None:
        super().__init__(peer, side_a, side_b, workdir)
        self.state_dir = os.path.join(workdir, "state")
        if peer.program == "unison":
            home = os.path.join(workdir, "unison-home")
            os.makedirs(home, exist_ok=True)
            self.environment["UNISON"] = home

    def _command(self) -> list[str]:
        if self.peer.program == "unison":
            return ["unison", self.source, self.destination, *UNISON_OPTIONS]
        # Two-way applies in-process (BACKEND=direct, the default); DELAY=0 as for every peer.
        return [
            sys.executable, "-m", "pylsyncd", self.source, self.destination,
            "--mode", "two-way", "--state-dir", self.state_dir,
            "--delay", "0", "--shutdown-grace", "2",
        ]  # fmt: skip

    def _is_ready(self) -> bool:
        with open(self.log_path, "rb") as log:
            text = log.read()
        if self.peer.program == "pylsyncd":
            return b"ready:" in text
        # The first sync: "Synchronization complete at ...", or "Nothing to do" when equal.
        return b"Synchronization complete" in text or b"Nothing to do" in text

    def log_offset(self) -> int:
        """Where the log ends now: transfers are counted from here."""
        return os.path.getsize(self.log_path)

    def quiet_log_offset(self, quiet: float, timeout: float) -> int:
        """Where the log ends once it has not grown for `quiet` seconds (at most `timeout`).

        A batch is logged once applied, after its files are in place: a wait for the files
        alone could take the offset before the last batch's line, and count it in what follows.
        """
        size, stable_since = self.log_offset(), time.perf_counter()

        def quiet_enough() -> bool:
            nonlocal size, stable_since
            now = self.log_offset()
            if now != size:
                size, stable_since = now, time.perf_counter()
            return time.perf_counter() - stable_since >= quiet

        trees.wait_until(quiet_enough, timeout, 0.01)
        return size

    def transfers_since(self, offset: int) -> tuple[int, int]:
        """(syncs that transferred something, items transferred) since `offset` in the log.

        pylsyncd: its `batch: N changes` lines (one per non-empty batch); unison: its
        `Synchronization complete ... (N items transferred ...)` lines with N > 0.
        """
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            text = log.read()
        pattern = _BATCH if self.peer.program == "pylsyncd" else _TRANSFERRED
        counts = [int(match) for match in pattern.findall(text) if int(match) > 0]
        return len(counts), sum(counts)
