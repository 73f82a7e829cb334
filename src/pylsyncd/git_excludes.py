"""A pair's excludes with GITIGNORE: EXCLUDES and EXCLUDE_FROM, plus what git ignores.

`GitExcludes` is an `ExcludeRules` to everything that walks the tree or applies a batch, so the
transfers, the helper process and the pair need nothing new to leave out what git ignores; a path
is excluded when either says so. The rsync backend, which reads only patterns, gets the ignored
paths themselves (`transfer.rsync_ignored`).

Live edits: the watcher's predicate never leaves out a ``.gitignore`` file, so an edit of one
(even of one that ignores itself) reaches the pair. A batch that changes the rules
(`rules_changed`) makes the pair read them again and watch the source afresh, with a full
comparison once it does; until then its batches go without what the rules now leave out (the
old watches may still report it). Newly ignored paths stay in the destination (excluded entries
are never deleted), newly included ones are copied and watched.
"""

from __future__ import annotations

from collections.abc import Sequence

from pylsyncd.coalesce import Batch, ChangeKind
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

    def rules_changed(self, batch: Batch) -> bool:
        """Take `batch` in: forget what was read in the directories it deleted or moved away;
        True when it changes the rules (an ignore file changed, or a directory holding one was
        moved or deleted): then `reload`, and watch and compare the tree afresh."""
        changed = False
        gone = [c.path for c in batch.changes if c.kind is ChangeKind.DELETE]
        for path in [*gone, *(m.source for m in batch.moves)]:
            changed = changed or self.git.holds_rules(path)
            self.git.forget(path)
        return (
            changed
            or any(_is_rules_file(c.path) for c in batch.changes)
            or any(_is_rules_file(m.source) or _is_rules_file(m.target) for m in batch.moves)
        )

    def reload(self) -> None:
        """Read every ignore file again."""
        self.git.reload()

    def without_ignored(self, batch: Batch) -> Batch:
        """`batch` without what the rules leave out, ancestors included.

        A change does not say whether its path is a directory, so a path left out as either
        type is dropped: the full comparison that follows a reload copies what should have
        stayed, while nothing could bring back what a dropped rule let the batch delete.
        """
        moves = tuple(m for m in batch.moves if not self._either(m.source, m.target))
        changes = tuple(c for c in batch.changes if not self._either(c.path))
        return Batch(moves, changes, batch.full_resync)

    def _either(self, *paths: str) -> bool:
        return any(self.excludes_path(p, False) or self.excludes_path(p, True) for p in paths)


def _is_rules_file(path: str) -> bool:
    return path == INFO_EXCLUDE or path.rpartition("/")[2] == GITIGNORE


def pair_excludes(config: PairConfig) -> tuple[ExcludeRules, ExcludePredicate]:
    """The pair's excludes, and the predicate its watchers leave paths out with."""
    if not config.gitignore:
        rules = ExcludeRules(config.excludes)
        return rules, rules.excludes
    excludes = GitExcludes(config.excludes, config.source)
    return excludes, excludes.unwatched
