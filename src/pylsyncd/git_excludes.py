"""A pair's excludes with GITIGNORE: EXCLUDES and EXCLUDE_FROM, plus what git ignores.

`GitExcludes` is an `ExcludeRules` to everything that walks the tree or applies a batch, so the
transfers, the helper process and the pair need nothing new to leave out what git ignores; a path
is excluded when either says so. The rsync backend, which reads only patterns, gets the ignored
paths themselves (`transfer.rsync_ignored`).

Live edits: the watcher's predicate never leaves out a ``.gitignore`` file, so an edit of one
(even of one that ignores itself) reaches the pair. A batch that touches the rules (`touches`)
makes the pair read them again, drop from the batch what they now leave out, and watch the
source afresh with a full comparison after it: newly ignored paths stay in the destination
(excluded entries are never deleted), newly included ones are copied and watched.
"""

from __future__ import annotations

from collections.abc import Sequence

from pylsyncd.coalesce import Batch, Change, ChangeKind
from pylsyncd.config import PairConfig
from pylsyncd.excludes import ExcludeRules
from pylsyncd.gitignore import GITIGNORE, INFO_EXCLUDE, GitIgnore
from pylsyncd.watch import ExcludePredicate

__all__ = ["GitExcludes", "pair_excludes"]


class GitExcludes(ExcludeRules):
    """rsync patterns plus the ignore files of the tree at `root`."""

    __slots__ = ("git",)

    def __init__(self, patterns: Sequence[str], root: str) -> None:
        super().__init__(patterns)
        self.git = GitIgnore(root)

    def __bool__(self) -> bool:
        return True  # the tree's ignore files may say something at any time

    def __repr__(self) -> str:
        return f"GitExcludes({list(self.patterns)!r}, {self.git.root!r})"

    def excludes(self, path: str, is_dir: bool) -> bool:
        """Whether `path` is excluded or ignored, assuming none of its ancestors is."""
        return super().excludes(path, is_dir) or self.git.ignores(path, is_dir)

    def excludes_path(self, path: str, is_dir: bool) -> bool:
        """Whether `path` or an ancestor of it is excluded or ignored."""
        return super().excludes_path(path, is_dir) or self.git.ignores_path(path, is_dir)

    def unwatched(self, path: str, is_dir: bool) -> bool:
        """The watcher's predicate: `excludes`, except that every ``.gitignore`` is seen."""
        if not is_dir and path.rpartition("/")[2] == GITIGNORE:
            return False
        return self.excludes(path, is_dir)

    def touches(self, batch: Batch) -> bool:
        """Whether `batch` changes the rules: an ignore file changed, or a directory holding
        one was moved or deleted."""
        return any(_is_rules_file(c.path) or self._moves_rules(c) for c in batch.changes) or any(
            _is_rules_file(m.source) or _is_rules_file(m.target) or self.git.holds_rules(m.source)
            for m in batch.moves
        )

    def reloaded(self, batch: Batch) -> Batch:
        """Read the rules again; `batch` without what they now leave out.

        A change does not say whether its path is a directory, so a path left out as either
        type is dropped: the full comparison that follows copies what should have stayed, while
        nothing could bring back what a dropped rule let the batch delete.
        """
        self.git.reload()
        moves = tuple(
            m for m in batch.moves if not self._either(m.source) and not self._either(m.target)
        )
        changes = tuple(c for c in batch.changes if not self._either(c.path))
        return Batch(moves, changes, batch.full_resync)

    def _either(self, path: str) -> bool:
        return self.excludes_path(path, False) or self.excludes_path(path, True)

    def _moves_rules(self, change: Change) -> bool:
        return change.kind is ChangeKind.DELETE and self.git.holds_rules(change.path)


def _is_rules_file(path: str) -> bool:
    return path == INFO_EXCLUDE or path.rpartition("/")[2] == GITIGNORE


def pair_excludes(config: PairConfig) -> tuple[ExcludeRules, ExcludePredicate]:
    """The pair's excludes, and the predicate its watchers leave paths out with."""
    if not config.gitignore:
        rules = ExcludeRules(config.excludes)
        return rules, rules.excludes
    excludes = GitExcludes(config.excludes, config.source)
    return excludes, excludes.unwatched
