"""The helper process of a direct full sync: `python -m pylsyncd.transfer.helper`.

It reads its settings, then syncs each subtree named on stdin (or each part of a live batch:
`ChangedEntries`) and reports each on stdout. This module is only ever run, never imported, so
it is loaded once; it needs none of the client side.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from pylsyncd import LOG_FORMAT
from pylsyncd.coalesce import Change, ChangeKind
from pylsyncd.excludes import ExcludeRules
from pylsyncd.git_excludes import GitExcludes
from pylsyncd.transfer import Ownership
from pylsyncd.transfer.helper.protocol import ChangedEntries, Settings, SubtreeReport
from pylsyncd.transfer.run import TransferState
from pylsyncd.transfer.tree_sync import TreeSync


class ChangedEntriesSync(TreeSync):
    """Files and symlinks of a live batch, each synced as `Replay.change` syncs one: looked at,
    then copied even when its size and mtime match. What it finds gone is reported (`vanished`)
    for the pair's process to remember, as its own replay would."""

    def __init__(self, state: TransferState, *, delete: bool) -> None:
        super().__init__(state, delete=delete)
        self.vanished: list[str] = []

    def change(self, change: Change) -> None:
        found = self.source_tree.lstat(change.path)
        if found is None:
            self.vanished.append(change.path)
        self.sync(change.path, recursive=False, forced=True, found=found)


def sync_subtree(state: TransferState, path: str, *, delete: bool) -> SubtreeReport:
    """One subtree of a full sync, synced with the same code as the pair's process uses."""
    run = TreeSync(state, delete=delete)
    change = Change(path, ChangeKind.SYNC_TREE)
    return _report(state, run, path, lambda: run.attempt(run.sync_tree, change))


def sync_changed(state: TransferState, part: ChangedEntries, *, delete: bool) -> SubtreeReport:
    """Part of a live batch, synced with the same code as the pair's process uses."""
    run = ChangedEntriesSync(state, delete=delete)

    def sync_all() -> None:
        for path in part.paths:
            run.trim_descriptors("")
            run.attempt(run.change, Change(path, ChangeKind.SYNC))

    report = _report(state, run, part.key, sync_all)
    report.vanished = run.vanished
    return report


def _report(
    state: TransferState, run: TreeSync, path: str, work: Callable[[], None]
) -> SubtreeReport:
    reported = set(state.reported_unreadable)
    try:
        work()
    finally:
        run.finish()
    outcome = run.outcome
    return SubtreeReport(
        path,
        run.entries,
        outcome.copied,
        outcome.bytes,
        outcome.dirs,
        outcome.links,
        outcome.deleted,
        [(change.path, change.kind.value) for change in outcome.failed.changes],
        outcome.error,
        sorted(state.reported_unreadable - reported),
    )


def serve() -> None:
    """The helper's side: sync each subtree read from stdin, report each on stdout."""
    settings = Settings(**json.loads(sys.stdin.readline()))
    logging.basicConfig(stream=sys.stderr, format=LOG_FORMAT)
    logging.getLogger("pylsyncd").setLevel(settings.log_level)
    state = TransferState(
        settings.source,
        settings.destination,
        (
            GitExcludes(settings.excludes, settings.source)
            if settings.gitignore
            else ExcludeRules(settings.excludes)
        ),
        Ownership(settings.uid, settings.gid, settings.preserve),
        in_place_size=settings.in_place_size,
        create_only=settings.create_only,
    )
    state.reported_unreadable.update(settings.reported_unreadable)

    def reply(message: Any) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    reply("ready")
    for line in sys.stdin:
        message = json.loads(line)
        if isinstance(message, dict):
            part = ChangedEntries(**message)
            reply(asdict(sync_changed(state, part, delete=settings.delete)))
        else:
            reply(asdict(sync_subtree(state, message, delete=settings.delete)))


if __name__ == "__main__":
    # No SIGINT handling: the pair's process starts us in a session of our own, so a Ctrl-C in
    # a terminal does not reach us. It decides when we stop: it sends TERM (whose default action
    # ends us at once), or it goes away, and our stdin ends.
    try:
        serve()
    except BrokenPipeError:
        sys.exit(1)  # the pair's process went away: nothing to report to
