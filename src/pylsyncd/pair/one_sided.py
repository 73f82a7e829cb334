"""A union merge's one-sided subtrees: directories one side holds whole and the other lacks.

A union merge (a first start, no usable ancestor) copies what either side lacks. Through the
plan that is a compare-and-swap and a record per entry, about 100 us a file in one thread. A
directory the other side lacks altogether needs no comparison: the one-way full sync copies it
(with its helper process, on the second core) in create-only mode, where a name is put in place
by a link, which fails when the name was taken meanwhile, and nothing the other side holds is
replaced or removed. Then the copies are read, and a path is recorded as agreed only where its
copy holds what the original held when the merge read it: a path written on either side
meanwhile goes back to reconcile, which without an ancestor finds both equal or keeps both.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from pylsyncd.entries import Ancestor, Entry, Kind, Mode, Side
from pylsyncd.excludes import ExcludeRules
from pylsyncd.pair.side_tree import Excluded, read_subtree
from pylsyncd.plan import Record
from pylsyncd.transfer import Outcome, Ownership
from pylsyncd.transfer.destination import DestinationTree
from pylsyncd.transfer.full_sync import FullSync
from pylsyncd.transfer.run import TransferState

log = logging.getLogger("pylsyncd")

# Where a side's events about the copies being written are dropped until the copy is done (the
# pair's `TwoSidedPending.quiet_below`): the copies are read whole afterwards anyway.
QuietBelow = Callable[[Side, list[str]], AbstractContextManager[None]]


def never_quiet(side: Side, roots: list[str]) -> AbstractContextManager[None]:
    """No events dropped (a merge driven without a pair's watchers)."""
    return contextlib.nullcontext()


def one_sided_roots(sides: dict[Side, dict[str, Entry]], mode: Mode) -> dict[Side, list[str]]:
    """Per side, the directories it holds that the other side lacks while both hold their
    parent: the tops of what only that side has. B's only in two-way: in the one-way modes a
    merge leaves what only the destination holds where it is."""
    copied_from = (Side.A, Side.B) if mode is Mode.TWO_WAY else (Side.A,)
    roots: dict[Side, list[str]] = {side: [] for side in copied_from}
    for side in copied_from:
        mine, theirs = sides[side], sides[side.other]
        for path, entry in mine.items():
            if entry.kind is not Kind.DIR or path in theirs:
                continue
            parent = path.rpartition("/")[0]
            if parent == "" or (parent in theirs and theirs[parent].kind is Kind.DIR):
                roots[side].append(path)
    return roots


def split_off(entries: dict[str, Entry], roots: list[str]) -> dict[str, Entry]:
    """Take `roots` and everything below them out of `entries`; what was taken."""
    tops = set(roots)
    taken: dict[str, Entry] = {}
    for path in list(entries):
        # The roots are the outermost one-sided directories: only ancestors need testing.
        cut = path.find("/")
        while cut != -1 and path[:cut] not in tops:
            cut = path.find("/", cut + 1)
        if cut != -1 or path in tops:
            taken[path] = entries.pop(path)
    return taken


def copy_one_sided(
    roots: dict[Side, str],
    side: Side,
    paths: list[str],
    excludes: ExcludeRules,
    ownership: Ownership,
    cancelled: threading.Event,
) -> Outcome:
    """Copy `side`'s subtrees at `paths` into the other side, where nothing stands there."""
    state = TransferState(
        roots[side], roots[side.other], excludes, ownership, cancelled, create_only=True
    )
    run = FullSync(state, delete=False)
    try:
        run.sync_subtrees(sorted(paths))
    finally:
        run.finish()
    return run.outcome


def agreed_records(
    tree: DestinationTree,
    side: Side,
    originals: dict[str, Entry],
    roots: list[str],
    excluded: Excluded,
) -> tuple[list[Record], set[str]]:
    """The copies of `side`'s subtrees at `roots`, read in `tree` (the other side) once written:
    the records of the paths where they hold what `side` held when it was read (`originals`),
    and the paths where they do not (back to reconcile).

    The original as it was read, not as it is now: if it changed since, its copy was made
    from the change or later and differs (back to reconcile, which finds them equal or keeps
    both), or the change came after the copy was taken and is a change against the record."""
    records: list[Record] = []
    disagree: set[str] = set()
    for root in sorted(roots):
        copies = read_subtree(tree, root, excluded)
        for path, copy in copies.items():
            original = originals.get(path)
            if original is None or not copy.same(original):
                disagree.add(path)  # written there by someone else meanwhile, or changed
                continue
            a, b = (original, copy) if side is Side.A else (copy, original)
            records.append(Record(path, Ancestor(original, a.inode, b.inode)))
    agreed = {record.path for record in records}
    disagree.update(path for path in originals if path not in agreed)  # not copied
    return records, disagree


@dataclass
class OneSidedMerge:
    """What copying a merge's one-sided subtrees did."""

    subtrees: int = 0
    records: list[Record] = field(default_factory=list)  # the paths both sides now agree on
    disagree: set[str] = field(default_factory=set)  # back to reconcile
    outcome: Outcome = field(default_factory=Outcome)


@dataclass
class OneSidedCopier:
    """Copies a union merge's one-sided subtrees between a pair's roots."""

    roots: dict[Side, str]
    excludes: ExcludeRules
    ownership: Ownership
    cancelled: threading.Event
    quiet_below: QuietBelow = never_quiet

    def merge(
        self,
        trees: dict[Side, DestinationTree],
        sides: dict[Side, dict[str, Entry]],
        mode: Mode,
        excluded: Excluded,
    ) -> OneSidedMerge | None:
        """Copy what only one side holds whole, taken out of `sides` (None: nothing is)."""
        merged = OneSidedMerge()
        roots = {side: paths for side, paths in one_sided_roots(sides, mode).items() if paths}
        originals = {side: split_off(sides[side], paths) for side, paths in roots.items()}
        # One way after the other, each sharing its copies with a helper process: the two cores
        # are busy either way, and two ways at once in this process contend for the interpreter
        # (measured: 1.87-2.06 s to ready against 2.20-2.76 s, 25,000 files each way).
        done = {
            side: self._copy(side, roots[side], originals[side], trees, excluded) for side in roots
        }
        counts = merged.outcome
        for side, paths in roots.items():
            outcome, agreed, differ = done[side]
            counts.copied, counts.bytes = (
                counts.copied + outcome.copied,
                counts.bytes + outcome.bytes,
            )
            counts.dirs, counts.links = counts.dirs + outcome.dirs, counts.links + outcome.links
            if outcome.error:  # not the merge's failure: what was not copied goes to the plan
                log.debug("copying %s's one-sided subtrees: %s", side.value, outcome.error)
            merged.records += agreed
            merged.disagree |= differ
            merged.subtrees += len(paths)
        return merged if merged.subtrees else None

    def _copy(
        self,
        side: Side,
        paths: list[str],
        originals: dict[str, Entry],
        trees: dict[Side, DestinationTree],
        excluded: Excluded,
    ) -> tuple[Outcome, list[Record], set[str]]:
        """One way's copy, then what both sides agree on."""
        try:
            # The other side's events below `paths` are this copy's own writes; what anyone
            # else wrote there meanwhile is found by reading the copies next.
            with self.quiet_below(side.other, paths):
                outcome = copy_one_sided(
                    self.roots, side, paths, self.excludes, self.ownership, self.cancelled
                )
        except Exception as error:  # what was copied is recorded; the rest goes to the plan
            log.debug("copying %s's one-sided subtrees failed", side.value, exc_info=True)
            outcome = Outcome(error=f"{type(error).__name__}: {error}")
        try:
            return (outcome, *agreed_records(trees[side.other], side, originals, paths, excluded))
        except Exception as error:  # nothing recorded: the plan merges it all again
            log.debug("reading %s's copies failed", side.value, exc_info=True)
            return Outcome(error=f"{type(error).__name__}: {error}"), [], set(originals)
