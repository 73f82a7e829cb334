"""One reconcile of a two-way pair: read both sides, plan, apply, remember what they agree on.

The ancestor state (`pylsyncd.state`) is loaded at start. Usable: every path is compared with it
(the daemon may have been down while both sides changed). Unusable (missing, corrupted, another
pair's, a root recreated): said once, and the start is a union merge, which deletes nothing.
After each applied chunk of actions the records go to the state's journal, so a kill -9 leaves
an ancestor that at worst lags the sides, and sides that agree on a path whose record was lost
simply agree (no conflict, no deletion) at the next reconcile. A union merge's records are
saved once, at its end: until then there is no usable state, and a merge again deletes nothing.

The halt rules: a root that vanished or changed identity while running, or that became empty
while the ancestor held two entries or more, stops the pair with nothing propagated.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pylsyncd.config import PairConfig
from pylsyncd.conflict_names import is_conflict_copy
from pylsyncd.entries import Ancestor, Entry, Side
from pylsyncd.excludes import ExcludeRules
from pylsyncd.pair.one_sided import OneSidedCopier, QuietBelow, never_quiet
from pylsyncd.pair.plan_apply import Applied, PlanApplier
from pylsyncd.pair.side_tree import (
    Excluded,
    read_subtree,
    root_is_empty,
    unseen_rewrites,
    with_digests,
)
from pylsyncd.plan import ActionKind, Conflict, Record
from pylsyncd.reconcile import Policy, Scope, reconcile, union_merge
from pylsyncd.state import (
    AncestorStore,
    PairIdentity,
    PairState,
    RootIdentity,
    Unusable,
    identity_change,
    root_identity,
)
from pylsyncd.transfer import Outcome, Ownership
from pylsyncd.transfer.destination import DestinationTree
from pylsyncd.transfer.directories import split

log = logging.getLogger("pylsyncd")

_SIDE_NAMES = {Side.A: "source", Side.B: "destination"}


class Halted(Exception):
    """A root is gone, replaced or emptied: nothing may be propagated (the message says why)."""


@dataclass
class Reconciled:
    """What one reconcile did."""

    changes: int = 0  # writes on both sides
    conflicts: tuple[Conflict, ...] = ()
    handed_back: set[str] = field(default_factory=set)  # to reconcile again
    error: str | None = None  # a failure that was not a race: retried with backoff
    changed: tuple[str, ...] = ()  # the paths written, on either side (ON_SYNC's stdin)
    outcome: Outcome = field(default_factory=Outcome)  # the writes by kind, as a transfer's


class TwoWaySync:
    """Reconciles a pair's two roots against their ancestor, and keeps it."""

    def __init__(
        self,
        name: str,
        config: PairConfig,
        excluded: Excluded,
        ownership: Ownership,
        state_file: Path,
        bulk_excludes: ExcludeRules | None = None,
        quiet_below: QuietBelow = never_quiet,
    ) -> None:
        self.name = name
        self.quiet_below = quiet_below  # see `one_sided.QuietBelow`
        # EXCLUDES as the one-way copier takes them, for a merge's one-sided subtrees (None:
        # GITIGNORE, whose rules the plan applies entry by entry; see `one_sided`).
        self.bulk_excludes = bulk_excludes
        self.cancelled = threading.Event()
        self.roots = {Side.A: config.source, Side.B: config.destination}
        self.policy = Policy(config.mode, config.conflict)
        self.excluded = excluded
        self.ownership = ownership
        self.store = AncestorStore(state_file)
        self.pair = PairIdentity(config.source, config.destination)
        self.state: PairState | None = None
        self.open_conflicts: set[str] = set()  # conflict copies both sides hold

    def start(self) -> Reconciled:
        """Load the ancestor and reconcile both whole trees (a union merge without one)."""
        identities = self._identities()
        loaded = self.store.load(self.pair, identities[Side.A], identities[Side.B])
        if isinstance(loaded, Unusable):
            log.warning("%s: %s", self.name, loaded.reason)
            self.state = PairState(self.pair, identities[Side.A], identities[Side.B])
            return self._reconcile(None, merge=True)
        self.state = loaded
        self.open_conflicts = {path for path in loaded.entries if is_conflict_copy(path)}
        return self._reconcile(None)

    def batch(
        self, touched: set[str] | None, written: dict[Side, set[str]] | None = None
    ) -> Reconciled:
        """Reconcile the touched paths and their subtrees (None: both whole trees); `written`:
        the paths each side's watcher reported written."""
        self.check_roots()
        if touched is not None and "" in touched:
            touched = None
        return self._reconcile(touched, written=written)

    def idle(self) -> Reconciled:
        """Nothing happened: only look at the roots (Halted when one is gone or replaced)."""
        self.check_roots()
        return Reconciled()

    def check_roots(self) -> None:
        """Raise Halted when a root vanished or is another directory than at start."""
        assert self.state is not None
        before = {Side.A: self.state.source_root, Side.B: self.state.destination_root}
        now = self._identities()
        for side in (Side.A, Side.B):
            change = identity_change(_SIDE_NAMES[side], before[side], now[side])
            if change is not None:
                raise Halted(change)

    def _identities(self) -> dict[Side, RootIdentity]:
        identities = {}
        for side, root in self.roots.items():
            try:
                identities[side] = root_identity(root)
            except OSError as error:
                raise Halted(
                    f"the {_SIDE_NAMES[side]} root {root} is gone ({error.strerror})"
                ) from None
        return identities

    def _reconcile(
        self,
        touched: set[str] | None,
        *,
        merge: bool = False,
        written: dict[Side, set[str]] | None = None,
    ) -> Reconciled:
        assert self.state is not None
        trees = {
            side: DestinationTree(root, lambda _: None, self.ownership, 0)
            for side, root in self.roots.items()
        }
        try:
            scope = self._scope(trees, touched, written)
            bulk = Reconciled()
            if merge:
                a, b = dict(scope.a), dict(scope.b)
                bulk = self._merge_one_sided(trees, {Side.A: a, Side.B: b})
                with_digests(a, b, (trees[Side.A], trees[Side.B]))
                plan = union_merge(a, b, self.policy, datetime.now())
            else:
                plan = reconcile(scope, self.policy, datetime.now())
            if plan.halt is not None:
                raise Halted(plan.halt)
            if not plan and not merge:
                return Reconciled()
            # A union merge's records are saved once, whole, at its end: killed before that, the
            # pair merges again, which deletes nothing and finds what was copied equal.
            remember = self._remember_unsaved if merge else self._remember
            applied = PlanApplier(trees, remember).apply(plan)
        finally:
            for tree in trees.values():
                tree.close()
        if merge:
            self.store.save(self.state)  # the union merge's result, even when nothing was written
        return Reconciled(
            applied.changes + bulk.changes,
            tuple(c for c in plan.conflicts if c.path in applied.done),
            applied.handed_back | bulk.handed_back,
            applied.error or bulk.error,
            (*bulk.changed, *applied.changed),
            _outcome(applied, bulk.outcome),
        )

    def _merge_one_sided(
        self, trees: dict[Side, DestinationTree], sides: dict[Side, dict[str, Entry]]
    ) -> Reconciled:
        """Copy the subtrees only one side holds by the one-way copier, and take them out of
        `sides`: the plan merges the rest (see `one_sided`)."""
        if self.bulk_excludes is None:
            return Reconciled()
        copier = OneSidedCopier(
            self.roots, self.bulk_excludes, self.ownership, self.cancelled, self.quiet_below
        )
        merged = copier.merge(trees, sides, self.policy.mode, self.excluded)
        if merged is None:
            return Reconciled()
        self._remember_unsaved(merged.records)
        outcome = merged.outcome
        log.debug(
            "%s: %d one-sided subtrees copied whole, %d paths agreed, %d back to reconcile",
            self.name, merged.subtrees, len(merged.records), len(merged.disagree),
        )  # fmt: skip
        changed = tuple(record.path for record in merged.records)
        changes = outcome.copied + outcome.dirs + outcome.links
        # What the copier could not copy disagrees: the next reconcile's writes say if it fails.
        return Reconciled(changes, (), merged.disagree, None, changed, outcome)

    def cancel(self) -> None:
        """Stop a merge's copy of one-sided subtrees at its next subtree (shutdown)."""
        self.cancelled.set()

    def _scope(
        self,
        trees: dict[Side, DestinationTree],
        touched: set[str] | None,
        written: dict[Side, set[str]] | None,
    ) -> Scope:
        """Both sides and the ancestor for the touched paths and all below them."""
        assert self.state is not None
        entries = self.state.entries
        sides: dict[Side, dict[str, Entry]] = {Side.A: {}, Side.B: {}}
        ancestor: dict[str, Ancestor] = {}
        for path in [""] if touched is None else _outermost(touched):
            for side, tree in trees.items():
                leftovers: list[str] = []
                sides[side].update(read_subtree(tree, path, self.excluded, leftovers))
                _remove_leftovers(tree, leftovers)
            if touched is not None:
                ancestor.update((known, entries[known]) for known in entries.within(path))
        if touched is not None and written is not None:
            unseen_rewrites(written, sides, ancestor, trees, time.time_ns())
        empty = {side: root_is_empty(root, self.excluded) for side, root in self.roots.items()}
        if empty[Side.A] and empty[Side.B]:
            empty = {Side.A: False, Side.B: False}  # both empty: nothing is lost by agreeing
        return Scope(
            entries if touched is None else ancestor,
            sides[Side.A],
            sides[Side.B],
            ancestor_count=len(entries),
            a_root_empty=empty[Side.A],
            b_root_empty=empty[Side.B],
        )

    def _remember(self, records: list[Record]) -> None:
        """Make applied records durable, and follow the conflict copies they name."""
        assert self.state is not None
        self.store.append(self.state, records)
        self._follow_conflicts(records)

    def _remember_unsaved(self, records: list[Record]) -> None:
        """Keep applied records in memory only (the caller saves the whole state later)."""
        assert self.state is not None
        self.store.remember(self.state, records)
        self._follow_conflicts(records)

    def _follow_conflicts(self, records: list[Record]) -> None:
        """Keep the open conflict copies up to date."""
        for record in records:
            if is_conflict_copy(record.path):
                if record.ancestor is None:
                    self.open_conflicts.discard(record.path)
                else:
                    self.open_conflicts.add(record.path)


def _outcome(applied: Applied, bulk: Outcome) -> Outcome:
    """The writes of a reconcile by kind, as a transfer's: the plan's and a merge's bulk copy."""
    kinds = applied.kinds
    return Outcome(
        copied=kinds.get(ActionKind.COPY, 0)
        + kinds.get(ActionKind.SET_ATTRIBUTES, 0)
        + bulk.copied,
        bytes=applied.bytes + bulk.bytes,
        dirs=bulk.dirs,
        links=bulk.links,
        deleted=kinds.get(ActionKind.DELETE, 0),
        moved=kinds.get(ActionKind.RENAME, 0),
    )


def _remove_leftovers(tree: DestinationTree, leftovers: list[str]) -> None:
    """Remove temporary files a killed daemon left (the only writer of a pair is its daemon, and
    this one writes none between two reconciles)."""
    for path in leftovers:
        parent, name = split(path)
        parent_fd = tree.open_dir(parent)
        if parent_fd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=parent_fd)
        log.debug("removed %s, a temporary file left by a daemon that was killed", path)


def _outermost(paths: set[str]) -> list[str]:
    """The paths not below another one of them (a subtree is read once)."""
    kept: list[str] = []
    for path in sorted(paths):
        if kept and (path == kept[-1] or path.startswith(kept[-1] + "/")):
            continue
        kept.append(path)
    return kept


def state_dir_ready(state_dir: str) -> None:
    """Create STATE_DIR when missing (OSError when it cannot be)."""
    os.makedirs(state_dir, exist_ok=True)
