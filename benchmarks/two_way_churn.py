"""The two-sided churn as a benchmark: how many versions each two-way peer loses.

The operations and the record of the last version written at each path are the test suite's
(`Churn` of tests/test_two_way_churn.py, imported): random writes, same-size rewrites, renames
over files, deletions, chmods, symlinks and file/directory swaps on both sides at once, while
the peer runs. Once quiet, each version that was the last write of a path on either side must
still exist somewhere: at its path or in a conflict copy of it (pylsyncd's
`NAME.sync-conflict-...`, unison's `NAME (conflict on ...)`), on either side.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import trees
from benchmarks.daemons import Peer
from benchmarks.sizes import TwoWaySizes
from benchmarks.suite_tools import DIRECTORIES, Churn, content_of
from benchmarks.unison import CONFLICT_MARKERS, TwoWayDaemon

_READY_TIMEOUT = 60.0


@dataclass
class ChurnSeed:
    """One seed: how much it did, whether the sides became equal, what was lost."""

    seed: int
    operations: int
    versions: int  # paths whose last operation wrote a version
    converged_seconds: float | None  # from the last operation until both sides are equal
    conflict_copies: int
    lost: int
    lost_paths: list[str]


def run_churn(peer: Peer, root: str, sizes: TwoWaySizes) -> dict[str, Any]:
    """`churn_seeds` seeds of `churn_seconds` each, a fresh pair of sides for every seed."""
    numbers = range(1, sizes.churn_seeds + 1)
    seeds = [churn_seed(peer, f"{root}/seed-{n}", n, sizes) for n in numbers]
    return {
        "seeds": [asdict(seed) for seed in seeds],
        "seconds_each": sizes.churn_seconds,
        "lost": sum(seed.lost for seed in seeds),
        "versions": sum(seed.versions for seed in seeds),
        "converged": sum(seed.converged_seconds is not None for seed in seeds),
    }


def churn_seed(peer: Peer, root: str, seed: int, sizes: TwoWaySizes) -> ChurnSeed:
    """One seed on a freshly started peer."""
    a, b = Path(root, "a"), Path(root, "b")
    for side in (a, b):
        for directory in DIRECTORIES:
            (side / directory).mkdir(parents=True)
    with TwoWayDaemon(peer, str(a), str(b), root) as daemon:
        daemon.wait_ready(_READY_TIMEOUT)
        churn = Churn((a, b), random.Random(seed), seed)
        deadline = time.monotonic() + sizes.churn_seconds
        while time.monotonic() < deadline:  # the test's pace: now and then a pause for a batch
            churn.step()
            if churn.rng.random() < 0.2:
                time.sleep(churn.rng.random() * 0.01)
        quiet = time.perf_counter()
        converged = trees.wait_until(lambda: trees.settled(str(a), str(b)), sizes.cap, 0.05)
    lost = lost_versions(churn, (a, b), CONFLICT_MARKERS[peer.key])
    copies = sum(
        CONFLICT_MARKERS[peer.key] in name
        for side in (a, b)
        for _, _, names in os.walk(side)
        for name in names
    )
    return ChurnSeed(
        seed=seed,
        operations=len(churn.log),
        versions=sum(version is not None for version in churn.last.values()),
        converged_seconds=None if converged is None else converged - quiet,
        conflict_copies=copies,
        lost=len(lost),
        lost_paths=lost,
    )


def lost_versions(churn: Churn, sides: tuple[Path, Path], marker: str) -> list[str]:
    """The paths whose last written version is on neither side, at the path or in a copy."""
    lost = []
    for path, version in churn.last.items():
        if version is None:
            continue
        directory, _, name = path.rpartition("/")
        kept = []
        for side in sides:
            kept.append(content_of(side, path))
            kept += [
                content_of(side, f"{directory}/{other}")
                for other in os.listdir(side / directory)
                if other.startswith(name + marker)
            ]
        if version not in kept:
            lost.append(path)
    return lost
