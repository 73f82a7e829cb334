"""The ancestor state at 100,000 entries: save, load, decode, append (CPU time, best of runs).

    PYTHONPATH=src python -m benchmarks.ancestor_state [--entries N] [--runs N]

Not yet part of `./dev bench` (two-way sync is not wired into the daemon yet).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pylsyncd.entries import Ancestor, Entry, Kind
from pylsyncd.plan import Record
from pylsyncd.state import AncestorStore, PairIdentity, PairState, RootIdentity
from pylsyncd.state.records import AncestorEntries

PAIR = PairIdentity("/src.mounted", "/src")
ROOTS = (RootIdentity(1, 2, 3), RootIdentity(4, 5, 6))


def one_run(path: Path, state: PairState) -> dict[str, float]:
    """CPU seconds of each operation once (the machine may be shared: wall time would count
    the others' work)."""
    figures: dict[str, float] = {}
    clock = time.process_time
    store = AncestorStore(path)
    start = clock()
    store.save(state)
    figures["save (encode every entry)"] = clock() - start
    start = clock()
    again = store.load(PAIR, *ROOTS)
    figures["load"] = clock() - start
    assert isinstance(again, PairState), again
    start = clock()
    store.save(again)
    figures["save after a load"] = clock() - start
    start = clock()
    for key in again.entries:
        again.entries[key]
    figures["decode every entry"] = clock() - start
    known = again.entries[next(iter(again.entries))]
    batch = [Record(f"app/src/file-{n}.py", known) for n in range(10)]
    start = clock()
    store.append(again, batch)
    figures["append a batch of 10 records"] = clock() - start
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    arguments = parser.parse_args()
    # Paths shaped like a node_modules tree: 70 bytes on average.
    entries = AncestorEntries(
        (
            f"app/node_modules/package-{index // 100}/lib/module-{index}.js",
            Ancestor(Entry(Kind.FILE, index, 1_700_000_000 * 10**9 + index, 0o644), index, index),
        )
        for index in range(arguments.entries)
    )
    figures: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "pair.state"
        state = PairState(PAIR, *ROOTS, entries)
        for _ in range(arguments.runs):
            for name, seconds in one_run(path, state).items():
                figures.setdefault(name, []).append(seconds)
        size = path.stat().st_size
    print(f"{arguments.entries:,} entries, {size / 1e6:.1f} MB, best of {arguments.runs}:")
    for name, values in figures.items():
        print(f"  {name}: {min(values) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
