"""One file rewritten again and again, each edit timed until every copy of it holds it.

Shared by the remote group's fan-out (one source, several replicas) and the two-way group (an
edit on either side). The sizes alternate, so a quick check of size and mtime cannot skip an
edit that lands within one mtime tick.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks import trees
from benchmarks.workloads import percentile

EDIT_TIMEOUT = 10.0  # an edit not arrived after this is lost, not slow: the round stops there


@dataclass
class EditRound:
    """From close() of each write until the last of the copies holds it."""

    edits: int  # the edits timed (the first one, which creates the file, is not)
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    complete: bool  # every edit arrived at every copy


def edit_round(
    path: str, copies: Sequence[str], count: int, apart: float = 0.01, tag: str = ""
) -> EditRound:
    """Rewrite `path` `count` + 1 times, `apart` seconds after each edit arrived everywhere."""
    latencies: list[float] = []
    complete = True
    for i in range(count + 1):
        data = f"edit {tag} {i:06d}\n{'x' * (i % 2)}".encode()
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(descriptor, data)
        os.close(descriptor)
        closed = time.perf_counter()
        arrived = closed
        for copy in copies:
            at = trees.wait_until(functools.partial(trees.holds, copy, data), EDIT_TIMEOUT, 0)
            if at is None:
                complete = False
                break
            arrived = max(arrived, at)
        if not complete:
            break
        if i > 0:
            latencies.append(arrived - closed)
        time.sleep(apart)  # edits a person makes are apart: each one starts from an idle daemon
    latencies.sort()
    return EditRound(
        edits=len(latencies),
        p50_ms=percentile(latencies, 0.5) * 1e3 if latencies else None,
        p99_ms=percentile(latencies, 0.99) * 1e3 if latencies else None,
        max_ms=latencies[-1] * 1e3 if latencies else None,
        complete=complete,
    )
