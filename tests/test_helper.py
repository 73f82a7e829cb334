"""The direct backend's full sync shares subtrees with a helper process (transfer/helper/).

The helper starts in the background and the pair's process does not wait for it, so on a small
tree it often has nothing left to do. These tests hold the pair's process back until the helper
has synced a subtree of its own: a condition on the destination, not a timing.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helper_processes import ready, record_helpers
from helpers import assert_trees_equal, wait_until, write_file
from pylsyncd.coalesce import Change
from pylsyncd.excludes import ExcludeRules
from pylsyncd.git_excludes import GitExcludes
from pylsyncd.transfer import Outcome, helper_sharing, tree_sync
from pylsyncd.transfer.direct import DirectTransfer
from pylsyncd.transfer.helper import client as helper_module

OLD_MTIME_NS = 1_500_000_000_123_456_789
SUBTREES = [f"dir-{number:02}" for number in range(12)]


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    src, dst = tmp_path / "src", tmp_path / "dst"
    for number, name in enumerate(SUBTREES):
        for leaf in range(5):
            write_file(src / name / "sub" / f"file-{leaf}", f"{name} {leaf}", mode=0o640 + leaf)
        write_file(src / name / "top.txt", name, mtime_ns=OLD_MTIME_NS + number)
        os.symlink("top.txt", src / name / "link")
        (src / name / "empty").mkdir()
    write_file(os.fsencode(src / SUBTREES[-1]) + b"/raw-\xfe", b"a name that is not UTF-8")
    write_file(src / "root-file", "at the top")
    dst.mkdir()
    return src, dst


@pytest.fixture
def helpers_started(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[helper_module.Helper]]:
    started = record_helpers(monkeypatch, helper_sharing)
    yield started
    for helper in started:
        assert helper._process.poll() is not None, "the helper process outlived the sync"


def hold_back(monkeypatch: pytest.MonkeyPatch, *conditions: Callable[[], object]) -> None:
    """Make the pair's process wait before its first subtrees, the n-th until `conditions[n]`."""
    original = tree_sync.TreeSync.sync_tree
    waiting = list(conditions)

    def sync_tree(run: tree_sync.TreeSync, change: Change) -> None:
        if waiting:
            wait_until(waiting.pop(0), timeout=30, message="the helper did not get that far")
        original(run, change)

    monkeypatch.setattr(tree_sync.TreeSync, "sync_tree", sync_tree)


def test_the_helper_syncs_subtrees_and_the_replica_is_complete(
    tree: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    helpers_started: list[helper_module.Helper],
    caplog: pytest.LogCaptureFixture,
) -> None:
    src, dst = tree
    # Once ready, the helper is given subtrees from the end: the last one is its own.
    hold_back(
        monkeypatch, ready(helpers_started), lambda: (dst / SUBTREES[-1] / "top.txt").exists()
    )
    caplog.set_level(logging.DEBUG, logger="pylsyncd.transfer.full_sync")
    # The helper applies the pair's excludes too, in its own subtree.
    write_file(src / SUBTREES[-1] / ".git" / "HEAD", "excluded")
    outcome = DirectTransfer(str(src), str(dst), ExcludeRules([".git"]), delete=True).full_sync(
        delete=True
    )
    assert outcome.ok, outcome.error
    assert len(helpers_started) == 1
    assert not (dst / SUBTREES[-1] / ".git").exists()
    assert_trees_equal(src, dst, ignore=lambda path: ".git" in path.split("/"))
    helped = [r.message for r in caplog.records if "synced by the helper" in r.message]
    assert helped and not helped[0].startswith("full sync: 0 "), helped
    # Every file counted once, whichever process copied it.
    assert outcome.copied == 12 * 6 + 2


def test_the_helper_leaves_out_what_git_ignores(
    tree: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    helpers_started: list[helper_module.Helper],
    caplog: pytest.LogCaptureFixture,
) -> None:
    src, dst = tree
    hold_back(
        monkeypatch, ready(helpers_started), lambda: (dst / SUBTREES[-1] / "top.txt").exists()
    )
    caplog.set_level(logging.DEBUG, logger="pylsyncd.transfer.full_sync")
    write_file(src / ".gitignore", "link\n")  # read by both processes
    write_file(src / SUBTREES[-1] / ".gitignore", "sub/\n")  # in the helper's own subtree
    excludes = GitExcludes((), str(src))
    outcome = DirectTransfer(str(src), str(dst), excludes, delete=True).full_sync(delete=True)
    assert outcome.ok, outcome.error
    helped = [r.message for r in caplog.records if "synced by the helper" in r.message]
    assert helped and not helped[0].startswith("full sync: 0 "), helped
    assert (dst / SUBTREES[-1] / "top.txt").exists()
    assert not (dst / SUBTREES[-1] / "sub").exists() and not (dst / SUBTREES[-1] / "link").exists()
    assert (dst / SUBTREES[0] / "sub").is_dir() and not (dst / SUBTREES[0] / "link").exists()


def test_a_helper_that_dies_leaves_its_subtrees_to_the_pair(
    tree: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    helpers_started: list[helper_module.Helper],
    caplog: pytest.LogCaptureFixture,
) -> None:
    src, dst = tree

    def killed_when_given_work(helper: helper_module.Helper, path: str) -> None:
        helper._process.kill()
        helper._process.wait()
        helper.in_flight += 1

    monkeypatch.setattr(helper_module.Helper, "give", killed_when_given_work)
    hold_back(monkeypatch, ready(helpers_started))
    outcome = DirectTransfer(str(src), str(dst), ExcludeRules(()), delete=True).full_sync(
        delete=True
    )
    assert outcome.ok, outcome.error
    assert_trees_equal(src, dst)
    assert any("syncing its part here" in r.message for r in caplog.records)


def test_a_cancelled_full_sync_stops_the_helper(
    tree: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    helpers_started: list[helper_module.Helper],
) -> None:
    src, dst = tree
    transfer = DirectTransfer(str(src), str(dst), ExcludeRules(()), delete=True)

    def cancel() -> bool:
        transfer.cancel()  # as the shutdown grace running out does, from another thread
        return True

    # Cancelled while the helper works on its first subtrees.
    hold_back(monkeypatch, ready(helpers_started), cancel)
    outcome = transfer.full_sync(delete=True)
    assert not outcome.ok
    assert "cancelled" in (outcome.error or "")
    assert outcome.failed.changes  # retried in full by the next attempt
    # The fixture checks that the helper process is gone.


def test_a_cancel_from_another_thread_stops_the_helper_with_term_and_reaps_it(
    tree: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    helpers_started: list[helper_module.Helper],
) -> None:
    """As the shutdown does when its grace runs out: the pair's thread may be stuck, so the
    cancel itself stops the helper, in its own session (a terminal's Ctrl-C never reached it)."""
    src, dst = tree
    transfer = DirectTransfer(str(src), str(dst), ExcludeRules(()), delete=True)
    # The pair's thread waits in its second subtree until cancelled: the helper has work by then.
    hold_back(monkeypatch, ready(helpers_started), transfer.state.cancelled.is_set)
    outcomes: list[Outcome] = []
    pair = threading.Thread(target=lambda: outcomes.append(transfer.full_sync(delete=True)))
    pair.start()
    try:
        wait_until(
            lambda: helpers_started and helpers_started[0].in_flight,
            timeout=30,
            message="the helper was given no subtree",
        )
        process = helpers_started[0]._process
        assert os.getsid(process.pid) == process.pid
        transfer.cancel()
        assert process.returncode == -signal.SIGTERM  # TERM was enough, and it is reaped
    finally:
        pair.join(60)
    assert not pair.is_alive()
    assert not outcomes[0].ok
    assert "cancelled" in (outcomes[0].error or "")
