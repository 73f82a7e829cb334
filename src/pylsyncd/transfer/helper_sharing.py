"""Work shared with a helper process: it takes pieces from the end while we take them from the
front, until none is left. Used by a full sync (subtrees, `full_sync`) and by a big live batch
(parts of its changed files, `batch_sharing`).

- The pair never waits for the helper to start: when the work is done first, it is stopped.
- A helper that dies has its unreported pieces done here, with one warning.
- A cancel (the shutdown grace ran out) stops the helper from another thread (`holder.helper`),
  and the run fails as cancelled.
"""

from __future__ import annotations

import errno
import logging
from collections import deque
from collections.abc import Callable
from typing import Protocol, TypeVar

from pylsyncd.coalesce import Change, ChangeKind
from pylsyncd.git_excludes import GitExcludes
from pylsyncd.transfer.helper.client import Helper, can_help
from pylsyncd.transfer.helper.protocol import Settings, SubtreeReport
from pylsyncd.transfer.run import Run, TransferState
from pylsyncd.watch.first_walk import FirstWalk

log = logging.getLogger(__name__)

Piece = TypeVar("Piece")
# While the source's first walk goes on: how often to look whether it covered more pieces.
_WALK_WAIT = 0.02


class HelperHolder(Protocol):
    """Where the helper of a run is kept while it runs: a cancel stops it from there."""

    helper: Helper | None


def start_helper(state: TransferState, *, delete: bool, nice: int = 0) -> Helper | None:
    """A helper process with the same settings as `state`'s transfer, at niceness `nice` above
    ours; None when it cannot run beside us (one core) or would not start."""
    if not can_help():
        return None
    settings = Settings(
        state.source,
        state.destination,
        list(state.excludes.patterns),
        delete,
        state.ownership.uid,
        state.ownership.gid,
        state.ownership.preserve,
        sorted(state.reported_unreadable),
        logging.getLogger("pylsyncd").getEffectiveLevel(),
        state.in_place_size,
        gitignore=isinstance(state.excludes, GitExcludes),
        create_only=state.create_only,
        nice=nice,
    )
    try:
        return Helper(settings)
    except OSError as error:
        log.debug("no helper process: %s", error)
        return None


def share_work(
    run: Run,
    holder: HelperHolder,
    work: deque[Piece],
    *,
    key: Callable[[Piece], str],
    give: Callable[[Helper, Piece], None],
    do_here: Callable[[Piece], None],
    reported: Callable[[SubtreeReport], None] | None = None,
    walk: FirstWalk | None = None,
) -> int:
    """Do `work` here and in `holder.helper` (None: all here); the helper's reports are counted
    as `run`'s (and passed to `reported`), each naming its piece by `key`. Returns how many
    pieces the helper did. The helper is closed at the end.

    While `walk` (the source's first walk) goes on, nothing is done here, and the helper is
    given only the pieces it covers: this thread would contend with the walking one."""
    helper = holder.helper
    given: dict[str, Piece] = {}  # to the helper, not reported yet
    helped = 0
    try:
        while work or given:
            here = walk is None or walk.whole
            if helper is not None:
                try:
                    for report in helper.reports(_report_wait(bool(work), here)):
                        given.pop(report.path, None)
                        count_report(run, report)
                        if reported is not None:
                            reported(report)
                        helped += 1
                    while (
                        helper.wants_work()
                        and len(work) > (1 if here else 0)
                        and (here or walk is None or walk.covers(key(work[-1])))
                    ):
                        piece = work.pop()
                        given[key(piece)] = piece
                        give(helper, piece)
                except ChildProcessError as error:
                    if run.state.cancelled.is_set():  # a cancel stopped it
                        raise InterruptedError(errno.EINTR, "cancelled at shutdown") from None
                    log.warning("%s; syncing its part here", error)
                    helper.close()
                    helper = holder.helper = None
                    work.extend(given[name] for name in sorted(given))
                    given.clear()
                if not work and helper is not None and not helper.ready:
                    break  # it is not even started: the work was small, we are done
            elif not here and walk is not None:
                walk.wait(_WALK_WAIT)
            if run.state.cancelled.is_set():
                raise InterruptedError(errno.EINTR, "cancelled at shutdown")
            if work and here:
                do_here(work.popleft())
    except InterruptedError as error:
        run.fail(Change("", ChangeKind.SYNC_TREE), error)
    finally:
        if helper is not None:
            helper.close()
            holder.helper = None
    return helped


def _report_wait(work_left: bool, here: bool) -> float:
    """How long to wait for the helper's reports: not at all while there is work to do here."""
    if not here:
        return _WALK_WAIT  # the helper's next report, or the walk's next subtree
    return 0 if work_left else 0.1


def count_report(run: Run, report: SubtreeReport) -> None:
    """Count what the helper process did in one piece of `run`'s work as done by `run`."""
    run.outcome.copied += report.copied
    run.outcome.bytes += report.bytes
    run.outcome.dirs += report.dirs
    run.outcome.links += report.links
    run.outcome.deleted += report.deleted
    run.failed += report.failed_changes()
    if run.outcome.error is None:
        run.outcome.error = report.error
    run.state.reported_unreadable.update(report.unreadable)
    run.entries += report.entries
    if run.progress is not None:
        run.progress(run.entries)
