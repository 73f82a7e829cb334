"""The one-way mirroring contract of tests/test_daemon.py, against a remote destination.

The tests imported below run here a second time, collected in this module, where `start` (and
`live`, built on it) starts the daemon with an `ssh://root@127.0.0.1:PORT/...` destination on a
real sshd (tests/sshd.py): the same tests, the same assertions, every byte through ssh and rsync.
The remote host is this one, so the tests read the destination as a local directory.

Left out: the tests that take `backend` themselves (they start the daemon with a local path),
and the 2,000-file volume tests (tests/test_remote.py renames a 10,000-file tree). Below them,
the cases of other modules whose tests start the daemon themselves, written for a remote with
their helpers: hard links, big files, GITIGNORE, and the names a shell or rsync would misread,
each created, renamed and deleted.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

import test_daemon
import test_gitignore_daemon
from helpers import DaemonPool, daemon_args, wait_until, write_file
from sshd import Sshd
from test_daemon import (  # noqa: F401  (the tests, collected here again)
    Mirror,
    Start,
    test_chmod,
    test_create,
    test_delete,
    test_delete_mode,
    test_directory_replaced_by_file,
    test_empty_directories,
    test_empty_source_does_not_empty_the_destination,
    test_empty_source_empties_the_destination_when_allowed,
    test_excluded_content_never_reaches_the_destination,
    test_excluded_entry_in_a_mirrored_directory_keeps_its_mtime_mirrored,
    test_excluded_paths_in_the_destination_are_left_alone,
    test_file_replaced_by_directory,
    test_initial_sync_replaces_what_differs_in_the_destination,
    test_modify,
    test_move_into_the_tree_from_outside,
    test_move_out_of_the_tree,
    test_no_init_leaves_existing_files_but_mirrors_live_changes,
    test_non_empty_source_does_not_warn,
    test_odd_names,
    test_rename_directory_with_contents,
    test_rename_file,
    test_restart_catches_up_with_changes_made_while_stopped,
    test_same_size_rewrite_within_the_same_mtime,
    test_stop_applies_pending_changes,
    test_symlinks,
    test_touch_changes_only_the_mtime,
)
from test_gitignore_daemon import DESTINATION_ONLY
from test_gitignore_daemon import _files as files
from test_gitignore_daemon import _git_files as git_files
from test_safety import NASTY_NAMES

# Fixtures of other modules, found here by pytest; test_daemon's `start` is replaced below.
src, dst, outside, live = test_daemon.src, test_daemon.dst, test_daemon.outside, test_daemon.live
repository = test_gitignore_daemon.repository


def remote_args(src: Path, dst: Path, server: Sshd, *extra: str, **options: str) -> list[str]:
    """The daemon's arguments for src -> the remote destination `dst` on `server`."""
    target = f"ssh://root@127.0.0.1:{server.port}{dst}"
    return daemon_args(src, target, "rsync", "--ssh-args", server.ssh_args, *extra, **options)


@pytest.fixture
def start(src: Path, dst: Path, sshd: Sshd, daemons: DaemonPool) -> Start:
    """test_daemon's `start`, with `dst` reached over ssh."""

    def start(*extra: str, delay: str = "0", ready: bool = True) -> Mirror:
        daemon = daemons.start(remote_args(src, dst, sshd, *extra, delay=delay))
        if ready:
            daemon.wait_ready()
        return Mirror(src, dst, daemon)

    return start


def test_a_change_through_one_name_reaches_every_name(live: Mirror) -> None:
    """A write through one name of a hard-linked file raises an event for that name only; the
    remote holds one copy per name, and every one must follow."""
    write_file(live.src / "original", "version 1")
    os.link(live.src / "original", live.src / "linked")
    live.wait()
    (live.src / "dir").mkdir()
    os.link(live.src / "original", live.src / "dir" / "linked-live")
    live.wait()
    for writer, content in [
        (live.src / "dir" / "linked-live", "version 2, longer"),
        (live.src / "linked", "version 3"),
        (live.src / "original", "version 4"),
    ]:
        writer.write_text(content)
        live.wait()
    (live.src / "original").chmod(0o600)
    live.wait()
    os.rename(live.src / "dir", live.src / "renamed")
    (live.src / "linked").write_text("version 5")
    live.wait()
    live.daemon.stop()
    assert (live.dst / "renamed" / "linked-live").read_text() == "version 5"


def test_big_files_are_sent_by_their_delta(start: Start) -> None:
    """Past IN_PLACE_SIZE a big file's append, page rewrite and cut arrive, each as the bytes
    that changed (rsync's delta over ssh), not the whole file again."""
    m = start("--in-place-size", "1M")
    size = 8 << 20
    path = write_file(m.src / "big.bin", os.urandom(size))
    m.wait(timeout=30)
    edits = [
        ("append", lambda file: (file.seek(0, os.SEEK_END), file.write(os.urandom(4096)))),
        ("page", lambda file: (file.seek(size // 2), file.write(os.urandom(4096)))),
        ("cut", lambda file: file.truncate(size - 1000)),
    ]
    for what, edit in edits:
        # Every rsync so far has said what it sent (its line may come just after the mirror
        # matches): the next such line is the edit's.
        wait_until(lambda: _rsyncs_running(m) == 0, message=m.daemon.report)
        mark = m.daemon.mark()
        with path.open("r+b") as file:
            edit(file)
        m.wait(timeout=30)
        sent = m.daemon.wait_for_log(r"rsync: Total bytes sent: ([\d,]+)", since=mark)
        assert int(sent.group(1).replace(",", "")) < size // 10, f"{what}: {sent.group()}"
    m.daemon.stop()


def _rsyncs_running(m: Mirror) -> int:
    """How many rsyncs the daemon started have not said what they sent yet."""
    log = m.daemon.log_text()
    return log.count("DEBUG running ['rsync'") - log.count("rsync: Total bytes sent:")


def test_names_a_shell_or_rsync_would_misread_are_created_renamed_and_deleted(
    start: Start,
) -> None:
    """Newlines, a leading `-`, non-UTF-8 bytes (tests/test_safety.py's names): a file and a
    directory of each name made, each renamed to another name and replayed as a rename on
    the remote, then half of them deleted."""
    m = start()
    for number, name in enumerate(NASTY_NAMES):
        write_file(m.src / name, os.fsencode(name))
        write_file(m.src / f"dir {number}" / name / name, b"nested")
    m.wait()
    m.daemon.stop()
    # Restarted: the names come from the initial sync, not from events, so their renames are
    # those of quiet files (a rename right after a batch named it copies its new name again).
    m = start()
    inodes = {name: os.lstat(m.dst / name).st_ino for name in NASTY_NAMES}
    mark = m.daemon.mark()
    for number, name in enumerate(NASTY_NAMES):
        os.rename(m.src / name, m.src / f"{NASTY_NAMES[(number + 1) % len(NASTY_NAMES)]}.renamed")
        os.rename(m.src / f"dir {number}", m.src / f"{name} dir")
    m.wait()
    # The replica may be equal before the daemon has logged the replay (it logs once the remote
    # command has ended): wait for the line, then read them all.
    m.daemon.wait_for_log(r"renamed \d+ \(\d+ refused\)", since=mark)
    replayed = re.findall(r"renamed (\d+) \((\d+) refused\)", "\n".join(m.daemon.lines[mark:]))
    assert replayed and all(refused == "0" for _, refused in replayed), replayed
    for number, name in enumerate(NASTY_NAMES):
        renamed = m.dst / f"{NASTY_NAMES[(number + 1) % len(NASTY_NAMES)]}.renamed"
        assert os.lstat(renamed).st_ino == inodes[name], f"{name!r} was copied, not renamed"
    for name in NASTY_NAMES[::2]:
        shutil.rmtree(m.src / f"{name} dir")
        (m.src / f"{name}.renamed").unlink()
    m.wait()
    m.daemon.stop()


def test_gitignore_to_a_remote_leaves_what_git_ignores_there_alone(
    repository: tuple[Path, Path], sshd: Sshd, daemons: DaemonPool
) -> None:
    """GITIGNORE (tests/test_gitignore_daemon.py's repository): the remote replica holds what
    git tracks, and what git ignores in the destination is never deleted: at start, nor when
    the source deletes the directory that holds it."""
    src, dst = repository
    kept = {*DESTINATION_ONLY, "lib/local.log"}
    write_file(dst / "lib" / "local.log", "ignored, in a directory the source deletes")
    daemon = daemons.start(remote_args(src, dst, sshd, "--gitignore", "--exclude", ".git"))
    daemon.wait_ready()

    def mirrors_git() -> bool:
        return files(dst) - kept == git_files(src) and files(dst) >= kept

    wait_until(mirrors_git, message=daemon.report)
    shutil.rmtree(src / "lib")
    write_file(src / "later.py", "tracked")
    wait_until(mirrors_git, message=daemon.report)
    daemon.stop()
    assert not (dst / "lib" / "secret.txt").exists()
    assert (dst / "lib" / "local.log").read_text() == "ignored, in a directory the source deletes"
    for path, text in DESTINATION_ONLY.items():
        assert (dst / path).read_text() == text, f"{path}: an ignored destination entry was touched"
