"""An in-memory model of two sides and their ancestor, to apply reconcile's plans in tests.

The applier checks what a real one must: each action finds what it expects (the compare-and-swap
sees exactly the entry the plan saw), a copy's origin still holds the version it copies, a write's
parent directory exists, and a directory is empty when it is deleted or replaced. A failed check
is an AssertionError: the plan's order or its expectations are wrong.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from pylsyncd.entries import Ancestor, Entry, Kind, Side, same
from pylsyncd.events import is_within, parent_of, rebase
from pylsyncd.plan import Action, ActionKind, Plan

Tree = dict[str, Entry]


@dataclass
class World:
    """Both sides' trees (path -> entry, with inodes) and the ancestor state."""

    a: Tree
    b: Tree
    ancestor: dict[str, Ancestor] = field(default_factory=dict)
    inodes: itertools.count[int] = field(default_factory=lambda: itertools.count(10**6))

    def side(self, side: Side) -> Tree:
        """The tree of one side."""
        return self.a if side is Side.A else self.b

    def apply(self, plan: Plan, skip_mismatches: bool = False) -> list[str]:
        """Apply every action in order, checking each before it writes (a compare-and-swap).

        A failed check is an AssertionError, or with `skip_mismatches` (sides changed since the
        plan was made) the action is skipped and its path handed back, as the real applier does.
        """
        assert plan.halt is None, plan.halt
        handed_back = []
        for action in plan.actions:
            mismatch = self._mismatch(action)
            if mismatch is not None:
                assert skip_mismatches, mismatch
                handed_back.append(action.path)
                continue
            inode = self._apply(action)
            for record in action.records_after(inode):
                if record.ancestor is None:
                    self.ancestor.pop(record.path, None)
                else:
                    self.ancestor[record.path] = record.ancestor
        return handed_back

    def _mismatch(self, action: Action) -> str | None:
        """Why `action` must not be applied now (None: the side is as the plan saw it)."""
        if action.kind is ActionKind.RECORD:
            return None
        tree = self.side(action.side)
        here = tree.get(action.path)
        if here != action.expected:
            return f"{action}: found {here}"
        parent = parent_of(action.path)
        if parent and (parent not in tree or tree[parent].kind is not Kind.DIR):
            return f"{action}: no parent directory"
        replaces_directory = here is not None and here.kind is Kind.DIR
        if action.kind is ActionKind.RENAME:
            if tree.get(action.origin) != action.entry:
                return f"{action}: the origin changed"
            return f"{action}: over a directory" if replaces_directory else None
        if action.kind is ActionKind.COPY:
            origin = self.side(action.side.other).get(action.origin)
            if origin != action.entry:
                return f"{action}: the origin holds {origin}"
        if replaces_directory and action.kind is not ActionKind.SET_ATTRIBUTES:
            inside = [key for key in tree if key != action.path and is_within(key, action.path)]
            if inside:
                return f"{action}: {action.path} still holds {inside}"
        return None

    def _apply(self, action: Action) -> int:
        """One checked action; the inode it left at its path (0 when nothing is there)."""
        tree = self.side(action.side)
        here = tree.get(action.path)
        if action.kind is ActionKind.RECORD:
            return 0
        if action.kind is ActionKind.DELETE:
            del tree[action.path]
            return 0
        assert action.entry is not None
        if action.kind is ActionKind.RENAME:
            for key in [key for key in tree if is_within(key, action.origin)]:
                tree[rebase(key, action.origin, action.path)] = tree.pop(key)
            return action.entry.inode
        if action.kind is ActionKind.SET_ATTRIBUTES:
            assert here is not None
            tree[action.path] = replace(action.entry, inode=here.inode)
            return here.inode
        inode = next(self.inodes)
        tree[action.path] = action.entry.with_inode(inode)
        return inode


def contents(tree: Mapping[str, Entry]) -> dict[str, Entry]:
    """The tree without inodes, for comparing sides and expectations."""
    return {path: entry.with_inode(0) for path, entry in tree.items()}


def equal_trees(left: Mapping[str, Entry], right: Mapping[str, Entry]) -> bool:
    """Same paths holding the same content (directories by kind and mode)."""
    return left.keys() == right.keys() and all(left[key].same(right[key]) for key in left)


def settled_ancestor(tree: Mapping[str, Entry], a: Tree, b: Tree) -> dict[str, Ancestor]:
    """The ancestor of two sides that agree on `tree` (each side's inodes)."""
    return {
        path: Ancestor(entry.with_inode(0), a[path].inode, b[path].inode)
        for path, entry in tree.items()
    }


def is_unchanged(known: Ancestor | None, entry: Entry | None) -> bool:
    """Whether a side's entry is still what the ancestor holds."""
    return same(known.entry if known is not None else None, entry)
