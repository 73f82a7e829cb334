"""A target's initial sync: the whole tree compared once, beside the source's first walk."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from functools import partial

from pylsyncd.config import PairConfig
from pylsyncd.excludes import ExcludeRules
from pylsyncd.pair.observer import FailureKind
from pylsyncd.pair.progress import PairProgress, ProgressReporter, describe
from pylsyncd.pair.retry import Retry
from pylsyncd.transfer import Outcome, Transfer
from pylsyncd.watch.first_walk import FirstWalk

log = logging.getLogger("pylsyncd")


def initial_sync(
    name: str,
    config: PairConfig,
    excludes: ExcludeRules,
    transfer: Transfer,
    *,
    walk: FirstWalk,
    found: Callable[[], int | None],
    progress: PairProgress,
    retry: Retry,
    stopping: threading.Event,
) -> None:
    """Compare the whole tree and copy what differs, retried with backoff until it succeeds or
    `stopping` is set. It may begin before the source's first `walk` is over (`first_walk`);
    `found` tells how many entries that walk found, once it knows."""
    delete = config.delete.at_startup
    if delete and not config.allow_empty_source and empty_source_would_wipe(config, excludes):
        log.warning(
            "%s: the source is empty but the destination is not: syncing without deleting, "
            "so nothing is lost. If the source really is meant to be empty, set "
            "ALLOW_EMPTY_SOURCE=true (--allow-empty-source).",
            name,
        )
        delete = False
    log.info("%s: initial sync", name)
    started = time.monotonic()
    reporter = ProgressReporter(name, config.source, excludes, progress, found, walk)
    sync = partial(transfer.full_sync, delete=delete, progress=reporter, walk=walk)
    try:
        outcome = _until_done(name, sync, retry, stopping)
        if outcome is not None and walk.abandoned:
            # The walk ran out of watches after the sync began: what was read before was watched
            # by watches now gone, so the whole tree is compared again, under the polling.
            log.info("%s: the source is polled now: comparing the whole tree again", name)
            outcome = _until_done(name, sync, retry, stopping)
    finally:
        reporter.close()
    if outcome is not None:
        elapsed = time.monotonic() - started
        log.info("%s: initial sync done: %s in %.1f s", name, describe(outcome), elapsed)


def _until_done(
    name: str, sync: Callable[[], Outcome], retry: Retry, stopping: threading.Event
) -> Outcome | None:
    """Run `sync` until it succeeds (its outcome) or `stopping` is set (None)."""
    while not (outcome := guarded(name, sync)).ok:
        retry.failed("initial sync", outcome.error, FailureKind.INITIAL_SYNC)
        if stopping.wait(retry.backoff):
            return None
    retry.succeeded()
    return outcome


def guarded(name: str, step: Callable[[], Outcome]) -> Outcome:
    """Run a transfer step; an unexpected error fails the step instead of the target."""
    try:
        return step()
    except Exception as error:
        log.debug("%s: unexpected error", name, exc_info=True)
        return Outcome(error=f"unexpected {type(error).__name__}: {error}")


def empty_source_would_wipe(config: PairConfig, excludes: ExcludeRules) -> bool:
    """Whether the source has nothing to mirror while the destination has something to lose
    (excluded entries count on neither side: a delete leaves them alone)."""

    def has_entries(path: str) -> bool:
        with os.scandir(path) as entries:
            return any(
                not excludes.excludes(e.name, e.is_dir(follow_symlinks=False)) for e in entries
            )

    # A remote destination cannot be listed here: an empty source is taken to have one to lose.
    remote = config.remote is not None
    return not has_entries(config.source) and (remote or has_entries(config.destination))
