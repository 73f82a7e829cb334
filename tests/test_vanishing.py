"""Source entries that go or change type while a transfer reads them: never a failure.

Each direct-backend case changes the real source tree at one exact step of the transfer (a hook
around one `SourceTree` call), so the race happens every time. rsync's own steps cannot be
hooked: there a helper thread changes entry types until rsync has met such a change, and the
batches it raced must all succeed. The emacs save (a lock symlink made and removed around the
write) runs 300 times through the daemon on both backends.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import DaemonPool, assert_trees_equal, daemon_args, wait_for_mirror, wait_until
from pylsyncd.coalesce import Batch, Change, ChangeKind, Move
from pylsyncd.excludes import ExcludeRules
from pylsyncd.transfer import Outcome
from pylsyncd.transfer.direct import DirectTransfer
from pylsyncd.transfer.rsync import RsyncTransfer
from pylsyncd.transfer.source import SourceTree

SYNC, TREE, DELETE = ChangeKind.SYNC, ChangeKind.SYNC_TREE, ChangeKind.DELETE
Mutation = Callable[[Path], None]


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def becomes_dir(path: Path) -> None:
    remove(path)
    path.mkdir()
    (path / "inside").write_text("a directory now")


def becomes_file(path: Path) -> None:
    remove(path)
    path.write_text("a file now")


def becomes_link(path: Path) -> None:
    remove(path)
    path.symlink_to("elsewhere")


def before_call(
    monkeypatch: pytest.MonkeyPatch, method: str, path: str, mutate: Callable[[], None]
) -> list[str]:
    """Run `mutate` once, just before the first `SourceTree.<method>(path)`; the returned list
    records that it ran (a case whose hook never fired proves nothing)."""
    fired: list[str] = []
    original = getattr(SourceTree, method)

    def hooked(tree: SourceTree, *args: object) -> object:
        if args and args[0] == path and not fired:
            fired.append(method)
            mutate()
        return original(tree, *args)

    monkeypatch.setattr(SourceTree, method, hooked)
    return fired


def after_call(
    monkeypatch: pytest.MonkeyPatch, method: str, path: str, mutate: Callable[[], None]
) -> list[str]:
    """Run `mutate` once, just after the first `SourceTree.<method>(path)` returned."""
    fired: list[str] = []
    original = getattr(SourceTree, method)

    def hooked(tree: SourceTree, *args: object) -> object:
        result = original(tree, *args)
        if args and args[0] == path and not fired:
            fired.append(method)
            mutate()
        return result

    monkeypatch.setattr(SourceTree, method, hooked)
    return fired


@pytest.fixture
def quiet(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The case logs nothing above debug: a vanished entry is not worth a warning."""
    caplog.set_level(logging.DEBUG, logger="pylsyncd")
    yield
    loud = [r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG]
    assert loud == []


def assert_clean(outcome: Outcome, src: Path, dst: Path) -> None:
    """The batch succeeded (nothing kept for a retry), and the destination is the source now."""
    assert outcome.ok, outcome.error
    assert not outcome.failed.changes and not outcome.failed.moves
    assert_trees_equal(src, dst)


def direct(src: Path, dst: Path) -> DirectTransfer:
    transfer = DirectTransfer(str(src), str(dst), ExcludeRules(()), delete=True)
    assert transfer.full_sync(delete=True).ok
    return transfer


def seed(src: Path) -> None:
    """One of each type, in a subdirectory; `d/link`'s target is a dangling name."""
    (src / "d" / "sub").mkdir(parents=True)
    (src / "d" / "file").write_text("a file")
    (src / "d" / "link").symlink_to(".#lock-target")
    (src / "d" / "sub" / "f").write_text("below sub")


MUTATIONS: dict[str, Mutation] = {
    "gone": remove,
    "now a directory": becomes_dir,
    "now a file": becomes_file,
    "now a symlink": becomes_link,
}
# (step, SourceTree method, entry) -> the step at which the entry changes.
STEPS = [
    ("lstat -> open", "open_file", "d/file"),
    ("lstat -> readlink", "readlink", "d/link"),
    ("lstat -> listing", "children", "d/sub"),
]


@pytest.mark.parametrize("mutation", list(MUTATIONS), ids=list(MUTATIONS))
@pytest.mark.parametrize(("step", "method", "entry"), STEPS, ids=[s[0] for s in STEPS])
def test_direct_an_entry_changed_before_a_step_is_synced_as_it_now_is(
    dirs: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    quiet: None,
    step: str,
    method: str,
    entry: str,
    mutation: str,
) -> None:
    src, dst = dirs
    seed(src)
    transfer = direct(src, dst)
    fired = before_call(monkeypatch, method, entry, lambda: MUTATIONS[mutation](src / entry))
    kind = TREE if method == "children" else SYNC
    outcome = transfer.apply(Batch((), (Change(entry, kind),)))
    assert fired, f"the {step} hook never ran"
    assert_clean(outcome, src, dst)


@pytest.mark.parametrize("mutation", list(MUTATIONS), ids=list(MUTATIONS))
def test_direct_an_entry_changed_between_the_listing_and_its_lstat(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, quiet: None, mutation: str
) -> None:
    """A tree sync lists `d`, then looks at each entry: one changes after the listing."""
    src, dst = dirs
    seed(src)
    transfer = direct(src, dst)
    (src / "d" / "file").write_text("changed")
    fired = after_call(monkeypatch, "children", "d", lambda: MUTATIONS[mutation](src / "d/file"))
    assert_clean(transfer.apply(Batch((), (Change("d", TREE),))), src, dst)
    assert fired


def test_direct_a_new_file_whose_directory_goes_before_it_is_made_in_the_destination(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, quiet: None
) -> None:
    """`new/deep/f` is found, then its directories go before the destination's are made: none
    is made, and nothing is left that the source lacks."""
    src, dst = dirs
    transfer = direct(src, dst)
    (src / "new" / "deep").mkdir(parents=True)
    (src / "new" / "deep" / "f").write_text("short-lived")
    fired = after_call(monkeypatch, "lstat", "new/deep/f", lambda: shutil.rmtree(src / "new"))
    assert_clean(transfer.apply(Batch((), (Change("new/deep/f", SYNC),))), src, dst)
    assert fired
    assert not (dst / "new").exists()


def test_direct_a_rename_whose_new_name_is_gone_again(dirs: tuple[Path, Path], quiet: None) -> None:
    """`a` was renamed to `b`, then `b` was removed before the transfer ran: the destination ends
    without either, and the batch succeeds."""
    src, dst = dirs
    (src / "a").mkdir()
    (src / "a" / "f").write_text("moved, then deleted")
    transfer = direct(src, dst)
    shutil.rmtree(src / "a")
    batch = Batch((Move("a", "b", is_dir=True),), (Change("a", DELETE), Change("b", TREE)))
    assert_clean(transfer.apply(batch), src, dst)


def test_direct_a_rename_whose_old_name_the_destination_lacks_and_the_source_too(
    dirs: tuple[Path, Path], quiet: None
) -> None:
    """The destination never had `a` (it was made and renamed within one batch) and the source
    has lost `b` as well: nothing to rename, nothing to copy, no failure."""
    src, dst = dirs
    transfer = direct(src, dst)
    batch = Batch((Move("a", "b", is_dir=False),), (Change("b", SYNC),))
    assert_clean(transfer.apply(batch), src, dst)


def test_direct_an_entry_that_keeps_changing_is_left_to_its_next_event(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, quiet: None
) -> None:
    """Every look finds `f` changed again (a file, a directory, a file...): the sync stops
    looking after a few tries, without a failure, and the next event's batch finishes it."""
    src, dst = dirs
    (src / "f").write_text("first")
    transfer = direct(src, dst)
    original = SourceTree.open_file
    flips: list[int] = []

    def flipping(tree: SourceTree, path: str) -> int:
        if path == "f" and len(flips) < 10:
            flips.append(1)
            (becomes_dir if (src / "f").is_file() else becomes_file)(src / "f")
        return original(tree, path)

    monkeypatch.setattr(SourceTree, "open_file", flipping)
    outcome = transfer.apply(Batch((), (Change("f", SYNC),)))
    assert outcome.ok and not outcome.failed.changes, outcome.error
    monkeypatch.setattr(SourceTree, "open_file", original)
    assert_clean(transfer.apply(Batch((), (Change("f", TREE),))), src, dst)


# -- rsync -------------------------------------------------------------------------------------


def test_rsync_entries_changing_type_under_it_are_no_failure(
    dirs: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """A helper turns entries into files, directories and symlinks in turn while batches run;
    rsync exits 23 when it meets one (a file become a symlink, a directory become a file).
    Batches run until rsync has met such a change several times: none of them failed."""
    src, dst = dirs
    names = [f"e{index}" for index in range(40)]
    for name in names:
        (src / name).write_text("x" * 4096)
    transfer = RsyncTransfer(str(src), str(dst), ExcludeRules(()), delete=True)
    assert transfer.full_sync(delete=True).ok
    caplog.set_level(logging.DEBUG, logger="pylsyncd.transfer")
    stop = threading.Event()

    def churn() -> None:
        turn = 0
        while not stop.is_set():
            turn += 1
            for index, name in enumerate(names):
                path = src / name
                (becomes_file, becomes_dir, becomes_link)[(turn + index) % 3](path)

    batch = Batch((), tuple(Change(name, TREE) for name in names))
    apply_while(
        transfer, batch, churn, stop, caplog,
        lambda _: caplog.text.count("the source changed under rsync:") >= 5,
    )  # fmt: skip
    assert_clean(transfer.apply(batch), src, dst)


def apply_while(
    transfer: RsyncTransfer,
    batch: Batch,
    race: Callable[[], None],
    stop: threading.Event,
    caplog: pytest.LogCaptureFixture,
    raced_enough: Callable[[list[Outcome]], bool],
) -> None:
    """Apply `batch` again and again while `race` runs on a thread (until `stop`), until
    `raced_enough` says rsync met the race often enough: no batch failed, nothing was logged
    above debug."""
    helper = threading.Thread(target=race)
    helper.start()
    outcomes: list[Outcome] = []

    def enough() -> bool:
        outcomes.append(transfer.apply(batch))
        return raced_enough(outcomes)

    try:
        wait_until(enough, timeout=60, interval=0, message="rsync never met the race")
    finally:
        stop.set()
        helper.join()
    failed = [outcome.error for outcome in outcomes if not outcome.ok or outcome.failed.changes]
    assert failed == []
    assert [r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG] == []


# -- the emacs save, end to end ----------------------------------------------------------------

SAVES = 300


@pytest.mark.parametrize("backend", ["direct", "rsync"])
def test_emacs_saves_with_a_lock_symlink_never_fail_a_batch(
    daemons: DaemonPool, dirs: tuple[Path, Path], backend: str
) -> None:
    """Emacs saves `main.py`: lock symlink `.#main.py` made, `main.py` renamed to `main.py~`,
    `main.py` written, the lock removed. With DELAY=0 a batch often sees the lock in a listing
    and finds it gone at readlink. Each save must arrive without a failed batch or a warning."""
    src, dst = dirs
    (src / "main.py").write_text("v0\n")
    daemon = daemons.start(daemon_args(src, dst, backend))
    daemon.wait_ready()
    for save in range(1, SAVES + 1):
        os.symlink("user@host.1234:1700000000", src / ".#main.py")
        os.rename(src / "main.py", src / "main.py~")
        (src / "main.py").write_text(f"v{save}\n")
        os.unlink(src / ".#main.py")
        wait_until(
            lambda: _read(dst / "main.py") == f"v{save}\n",  # noqa: B023 (called in the loop)
            timeout=10,
            interval=0.001,
            message=daemon.report,
        )
    wait_for_mirror(src, dst, daemon=daemon)  # `main.py~` may come in the batch after
    loud = [line for line in daemon.lines if " ERROR " in line or " WARNING " in line]
    assert loud == []


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def test_rsync_a_file_truncated_while_it_reads_it_is_no_failure(
    dirs: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """A helper shrinks and regrows a file while batches copy it: rsync's sender meets a short
    read ("read errors mapping ...: No data available (61)", exit 23) and the batch is not
    failed for it; batches run until that happened several times."""
    src, dst = dirs
    big = src / "big"
    size = 32 << 20
    big.write_bytes(b"\1" * size)
    transfer = RsyncTransfer(str(src), str(dst), ExcludeRules(()), delete=True)
    caplog.set_level(logging.DEBUG, logger="pylsyncd.transfer")
    stop = threading.Event()

    def shrink_and_regrow() -> None:
        while not stop.is_set():
            os.truncate(big, 1 << 20)
            os.truncate(big, size)

    def read_short(outcomes: list[Outcome]) -> bool:
        failures = sum("read errors mapping" in (outcome.error or "") for outcome in outcomes)
        return caplog.text.count("read errors mapping") + failures >= 3

    batch = Batch((), (Change("big", SYNC),))
    apply_while(transfer, batch, shrink_and_regrow, stop, caplog, read_short)
    assert_clean(transfer.apply(batch), src, dst)
