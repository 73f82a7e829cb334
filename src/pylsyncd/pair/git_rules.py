"""GITIGNORE in a pair's live loop: a batch that changes the ignore rules has them read again,
the source watched afresh and the whole tree compared (see `pylsyncd.git_excludes`).

A two-way pair reads the rules from its source's ignore files only: they are synchronised like
any file, so an edit made on the destination reaches the source, whose event reloads them."""

from __future__ import annotations

import logging

from pylsyncd.coalesce import Batch
from pylsyncd.git_excludes import GitExcludes
from pylsyncd.pair.source_watch import SourceWatch

log = logging.getLogger("pylsyncd")


class GitRules:
    """Follows a pair's ignore rules through its batches: `source` is the root whose ignore
    files make them; `also` are watches of other roots that leave out what they leave out (a
    two-way pair's other side), watched afresh with it."""

    def __init__(
        self, name: str, excludes: GitExcludes, source: SourceWatch, *also: SourceWatch
    ) -> None:
        self.name = name
        self.excludes = excludes
        self._source = source
        self._also = also
        self._changed = False  # the rules changed: the next full comparison is for them

    def batch(self, batch: Batch) -> Batch:
        """`batch` as the rules have it; a change of the rules starts a rewatch and a full
        comparison, and until that comparison batches go without what the rules leave out
        (the old watches may still report it)."""
        if self.follow(batch):
            batch = Batch(batch.moves, batch.changes)  # compared once watched afresh
        return self.excludes.without_ignored(batch) if self._changed else batch

    def follow(self, batch: Batch) -> bool:
        """Take in a batch of the source's: True when it changed the rules (or lost events,
        which may have been an ignore file's edit): then they were read again, and every watch
        is renewed, each ending with a full comparison."""
        excludes = self.excludes
        lost = batch.full_resync and not self._changed
        if not excludes.rules_changed(batch) and not lost:
            return False
        log.info(
            "%s: %s: reading the ignore rules again, watching afresh, comparing the tree",
            self.name,
            "the kernel dropped events" if lost else "ignore rules changed",
        )
        excludes.reload()
        # Read again once the old watches are gone too: an edit they did not report yet is
        # then in the rules that the new watches and the comparison follow.
        self._source.rewatch(before=excludes.reload)
        for watch in self._also:
            watch.rewatch(before=_nothing)
        self._changed = True
        return True

    def comparing(self) -> bool:
        """A full comparison starts: whether it is the one new rules asked for."""
        asked, self._changed = self._changed, False
        return asked


def _nothing() -> None:
    """A rewatch that reads nothing between the old watcher and the new one."""
