"""What must never happen, whatever the source does: a write outside the destination, a name read
as an option or split on a newline, a torn file, an empty source wiping a destination at start.
Both backends, the real daemon.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from helpers import DaemonPool, Entry, daemon_args, tree_snapshot, wait_for_mirror, write_file

BACKENDS = ["direct", "rsync"]
SWAPS = 150
OLD_MTIME_NS = 1_500_000_000_123_456_789
NOT_UTF8 = os.fsdecode(b"not-utf8-\xe9\xff")
NASTY_NAMES = [
    "-",
    "-e",
    "--delete",
    "--rsh=touch pwned",
    "new\nline",
    "\nleading-newline",
    "trailing-newline\n",
    "+ include-rule",
    "- exclude-rule",
    "star*",
    "[class]",
    "back\\slash",
    "***",
    NOT_UTF8,
]


def ctimes(root: Path) -> dict[str, int]:
    """The change time of `root` and of everything below it: any write, create, rename or
    delete there moves one of them, and no one can set a ctime back."""
    found = {"": os.lstat(root).st_ctime_ns}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            found[os.path.relpath(path, root)] = os.lstat(path).st_ctime_ns
    return found


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_directory_swapped_for_a_symlink_to_outside_never_leads_to_a_write_there(
    tmp_path: Path, daemons: DaemonPool, backend: str
) -> None:
    src, dst, sentinel = tmp_path / "src", tmp_path / "dst", tmp_path / "sentinel"
    src.mkdir()
    # Same names as the files written in the swapped directory: a write through the link, or a
    # read through the source's link, would meet them.
    for name in ("f0", "f1", "f2", "sub"):
        write_file(sentinel / name, "sentinel: must never change")
    before = ctimes(sentinel)
    daemon = daemons.start(daemon_args(src, dst, backend, log_level="info"))
    daemon.wait_ready()

    # Both targets lead to the sentinel from src/d and from dst/d alike.
    targets = [str(sentinel), "../sentinel"]
    swapped = src / "d"
    for swap in range(SWAPS):
        # A real directory whose files are being written...
        swapped.mkdir()
        for number in range(3):
            (swapped / f"f{number}").write_bytes(b"inside %d" % swap)
        if swap % 2:
            (swapped / "sub").mkdir()
            (swapped / "sub" / "deep").write_bytes(b"deeper")
        # ...replaced by a symlink to outside while its events are pending or being applied.
        shutil.rmtree(swapped)
        swapped.symlink_to(targets[swap % 2])
        swapped.unlink()
    swapped.symlink_to(targets[0])

    wait_for_mirror(src, dst, timeout=30, daemon=daemon)
    daemon.stop()
    assert ctimes(sentinel) == before, "something was written through a symlink"
    assert os.readlink(dst / "d") == targets[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_names_like_options_patterns_and_non_utf8_are_created_renamed_and_deleted(
    tmp_path: Path, daemons: DaemonPool, backend: str
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    for number, name in enumerate(NASTY_NAMES):
        write_file(src / name, os.fsencode(name), mtime_ns=OLD_MTIME_NS + number)
        write_file(src / f"dir {number}" / name / name, b"nested")
    daemon = daemons.start(daemon_args(src, dst, backend))
    daemon.wait_ready()
    wait_for_mirror(src, dst, daemon=daemon)  # the initial sync

    # Live: every name renamed to the next one's (over an existing file, half the time), each
    # directory renamed to a nasty name, then a few deleted.
    for number, name in enumerate(NASTY_NAMES):
        os.rename(src / name, src / f"{NASTY_NAMES[(number + 1) % len(NASTY_NAMES)]}.renamed")
        os.rename(src / f"dir {number}", src / f"{name} dir")
    wait_for_mirror(src, dst, daemon=daemon)
    for name in NASTY_NAMES[::2]:
        shutil.rmtree(src / f"{name} dir")
        (src / f"{name}.renamed").unlink()
    wait_for_mirror(src, dst, daemon=daemon)
    daemon.stop()


@pytest.mark.parametrize("keep_mtime", [False, True], ids=["new-mtime", "same-mtime"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_file_rewritten_while_it_is_copied_is_whole_once_quiet(
    tmp_path: Path, daemons: DaemonPool, backend: str, keep_mtime: bool
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    chunk, chunks = 64 * 1024, 16  # 1 MiB, rewritten in place chunk by chunk
    target = write_file(src / "busy.bin", bytes(chunk * chunks), mtime_ns=OLD_MTIME_NS)
    daemon = daemons.start(daemon_args(src, dst, backend, log_level="info"))
    daemon.wait_ready()

    def rewrite(version: int) -> None:
        # In place, no truncation: a copy made meanwhile mixes two versions.
        with open(target, "r+b") as file:
            for _ in range(chunks):
                file.write(bytes([version % 256]) * chunk)
        if keep_mtime:  # same size and mtime every time: only the events tell
            os.utime(target, ns=(OLD_MTIME_NS, OLD_MTIME_NS))

    for version in range(1, 120):
        rewrite(version)

    wait_for_mirror(src, dst, timeout=30, daemon=daemon)
    daemon.stop()
    assert (dst / "busy.bin").read_bytes() == bytes([119]) * (chunk * chunks)


# -- the empty-source rule at start ------------------------------------------------------------


def populate_destination(dst: Path) -> dict[str, Entry]:
    write_file(dst / "precious.txt", "keep me")
    write_file(dst / "dir" / "precious.txt", "keep me too")
    return tree_snapshot(dst)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_source_holding_only_excluded_entries_counts_as_empty(
    tmp_path: Path, daemons: DaemonPool, backend: str
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_file(src / ".git" / "HEAD", "excluded, so nothing to mirror")
    before = populate_destination(dst)
    daemon = daemons.start(daemon_args(src, dst, backend, "--exclude", ".git"))
    daemon.wait_ready()
    daemon.wait_for_log(r"source is empty but the destination is not", timeout=1)
    assert tree_snapshot(dst) == before
    daemon.stop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_empty_destination_with_an_empty_source_needs_no_warning(
    tmp_path: Path, daemons: DaemonPool, backend: str
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    write_file(dst / ".git" / "HEAD", "excluded: a delete would leave it anyway")
    daemon = daemons.start(daemon_args(src, dst, backend, "--exclude", ".git"))
    daemon.wait_ready()  # the warning, if any, comes before the initial sync, so before "ready"
    assert "source is empty but the destination is not" not in daemon.log_text()
    assert (dst / ".git" / "HEAD").read_text() == "excluded: a delete would leave it anyway"
    daemon.stop()
    assert "source is empty" not in daemon.log_text()
    assert (dst / ".git" / "HEAD").read_text() == "excluded: a delete would leave it anyway"
