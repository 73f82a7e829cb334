"""What an rsync batch adds to its changes: the extras of the directories it syncs on their own,
and the other names of the hard-linked files it copies (both read the local destination)."""

from __future__ import annotations

import stat

from pylsyncd.coalesce import Batch, Change, ChangeKind
from pylsyncd.excludes import ExcludeRules
from pylsyncd.transfer.destination import DestinationView
from pylsyncd.transfer.hardlinks import HardLinks
from pylsyncd.transfer.source import BatchLook, SourceChangedError


def extras(
    batch: Batch,
    source: BatchLook,
    destination_root: str,
    excludes: ExcludeRules,
    unsettled: set[str],
) -> tuple[Change, ...]:
    """Deletions of what the destination has and the source lacks, in the directories that
    the batch syncs on their own and in those of a failed run (`unsettled`), with deletions on.

    rsync deletes only what a rule includes, and a directory synced on its own includes none
    of its entries. The direct backend removes extras on every directory sync; this is the
    same for rsync: an entry that a transfer reading the source late copied, and that was
    then renamed or deleted, raises no event under the name the destination has.
    """
    directories = unsettled | {
        change.path
        for change in batch.changes
        if change.kind is ChangeKind.SYNC and source.is_dir(change.path)
    }
    if not directories:
        return ()
    # Both sides listed one component at a time, never through a symlink.
    destination = DestinationView(destination_root)
    extras: list[Change] = []
    try:
        for directory in sorted(directories):
            try:
                present = {entry.name for entry in source.children(directory)}
                found = destination.children(directory)
            except SourceChangedError:
                continue  # gone from the source (or not a directory): its own change says
            # PermissionError: an UnreadableSourceError, or a destination we may not list.
            except (PermissionError, FileNotFoundError, NotADirectoryError):
                continue  # unknown contents: remove nothing
            for name, is_dir in found.items():
                path = f"{directory}/{name}" if directory else name
                if name not in present and not excludes.excludes(path, is_dir):
                    extras.append(Change(path, ChangeKind.DELETE))
    finally:
        destination.close()
    return tuple(extras)


def other_names(
    batch: Batch, source: BatchLook, destination_root: str | None, hard_links: HardLinks
) -> tuple[Change, ...]:
    """Syncs of the other names of hard-linked files the batch copies: a change made through
    one name raised no event for the others.

    `destination_root` None: the destination cannot be read here (a remote one), so a name
    it may lack is taken as changed in place, and every other name is copied too; rsync's
    delta makes that a comparison when nothing changed."""
    destination = None if destination_root is None else DestinationView(destination_root)
    others: dict[str, None] = {}
    try:
        for change in batch.changes:
            # A tree sync of a file is the end of a rename rsync cannot replay: the file may
            # have changed before it was renamed, within the batch.
            if change.kind is ChangeKind.DELETE:
                continue
            try:
                status = source.lstat(change.path)
                if status is None:  # gone: a change made through it may not have reached
                    names = hard_links.others_of_vanished(change.path)  # the others
                elif status.st_nlink < 2 or not stat.S_ISREG(status.st_mode):
                    continue
                else:
                    changed = (
                        change.kind is ChangeKind.SYNC_TREE
                        or destination is None
                        or destination.lstat(change.path) is not None
                    )
                    names = hard_links.others(change.path, status, changed=changed)
            except OSError:
                continue  # rsync says what is wrong with it
            others.update(dict.fromkeys(names))
        # rsync copies every path of the batch (--ignore-times): found names included.
        others.update(dict.fromkeys(name for name, _ in hard_links.search()))
    finally:
        if destination is not None:
            destination.close()
    return tuple(Change(path, ChangeKind.SYNC) for path in others)
