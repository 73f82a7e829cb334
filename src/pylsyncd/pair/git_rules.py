"""GITIGNORE in a pair's live loop: a batch that changes the ignore rules has them read again,
the source watched afresh and the whole tree compared (see `pylsyncd.git_excludes`)."""

from __future__ import annotations

import logging

from pylsyncd.coalesce import Batch
from pylsyncd.git_excludes import GitExcludes
from pylsyncd.pair.source_watch import SourceWatch

log = logging.getLogger("pylsyncd")


class GitRules:
    """Follows a pair's ignore rules through its batches."""

    def __init__(self, name: str, excludes: GitExcludes, source: SourceWatch) -> None:
        self.name = name
        self.excludes = excludes
        self._source = source
        self._changed = False  # the rules changed: the next full comparison is for them

    def batch(self, batch: Batch) -> Batch:
        """`batch` as the rules have it; a change of the rules starts a rewatch and a full
        comparison, and until that comparison batches go without what the rules leave out
        (the old watches may still report it)."""
        excludes = self.excludes
        lost = batch.full_resync and not self._changed  # an ignore file's edit among them, maybe
        if excludes.rules_changed(batch) or lost:
            log.info(
                "%s: %s: reading the ignore rules again, watching afresh, comparing the tree",
                self.name,
                "the kernel dropped events" if lost else "ignore rules changed",
            )
            excludes.reload()
            # Read again once the old watches are gone too: an edit they did not report yet is
            # then in the rules that the new watches and the comparison follow.
            self._source.rewatch(before=excludes.reload)
            self._changed = True
            batch = Batch(batch.moves, batch.changes)  # compared once watched afresh
        return excludes.without_ignored(batch) if self._changed else batch

    def comparing(self) -> bool:
        """A full comparison starts: whether it is the one new rules asked for."""
        asked, self._changed = self._changed, False
        return asked
