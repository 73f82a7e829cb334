"""A one-way destination changed beneath the running daemon is repaired without a restart.

Real mounts (a fresh tmpfs over the destination, as a remount would leave it), a destination
emptied or edited behind the daemon's back, and VERIFY_INTERVAL's periodic comparison.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import DaemonPool, daemon_args, run_cli, wait_for_mirror, write_file


@pytest.fixture
def mounted() -> Iterator[list[Path]]:
    """Where the test mounted a tmpfs; each is unmounted at its end, whatever happened."""
    where: list[Path] = []
    try:
        yield where
    finally:
        for path in reversed(where):
            subprocess.run(["umount", "-l", str(path)], check=False)


def _tree(src: Path) -> None:
    write_file(src / "kept", "kept")
    write_file(src / "sub" / "deep", "deep")
    (src / "empty").mkdir()


@pytest.mark.parametrize("backend", ["direct", "rsync"])
def test_a_tmpfs_mounted_over_the_destination_is_filled_again(
    daemons: DaemonPool, dirs: tuple[Path, Path], mounted: list[Path], backend: str
) -> None:
    src, dst = dirs
    _tree(src)
    daemon = daemons.start(daemon_args(src, dst, backend))
    daemon.wait_ready()
    wait_for_mirror(src, dst, daemon=daemon)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(dst)], check=True)
    mounted.append(dst)
    wait_for_mirror(src, dst, daemon=daemon)
    said = daemon.wait_for_log(r"WARNING .*is another directory than before.*comparing the whole")
    assert str(dst) in said.string
    write_file(src / "after", "still arrives")
    wait_for_mirror(src, dst, daemon=daemon)


def test_an_emptied_destination_is_filled_again(
    daemons: DaemonPool, dirs: tuple[Path, Path]
) -> None:
    src, dst = dirs
    _tree(src)
    daemon = daemons.start(daemon_args(src, dst, "direct"))
    daemon.wait_ready()
    wait_for_mirror(src, dst, daemon=daemon)
    for entry in dst.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    daemon.wait_for_log(r"WARNING .*was emptied: comparing the whole tree")
    wait_for_mirror(src, dst, daemon=daemon)
    assert daemon.log_text().count("was emptied") == 1


def test_a_file_removed_behind_the_daemons_back_is_back_within_verify_interval(
    daemons: DaemonPool, dirs: tuple[Path, Path]
) -> None:
    src, dst = dirs
    _tree(src)
    daemon = daemons.start(daemon_args(src, dst, "rsync", "--verify-interval", "1"))
    daemon.wait_ready()
    wait_for_mirror(src, dst, daemon=daemon)
    (dst / "sub" / "deep").unlink()
    write_file(dst / "kept", "changed by someone else")
    wait_for_mirror(src, dst, daemon=daemon)  # within a few intervals, no event needed
    daemon.wait_for_log(r"INFO .*VERIFY_INTERVAL: comparing the whole tree")


def test_without_verify_interval_nothing_is_compared_periodically(
    daemons: DaemonPool, dirs: tuple[Path, Path]
) -> None:
    src, dst = dirs
    _tree(src)
    daemon = daemons.start(daemon_args(src, dst, "direct", "--status-file", str(src.parent / "s")))
    daemon.wait_ready()
    wait_for_mirror(src, dst, daemon=daemon)
    (dst / "kept").unlink()
    write_file(src / "marker", "a batch after the removal")
    wait_for_mirror(src, dst, ignore=lambda path: path == "kept", daemon=daemon)
    assert not (dst / "kept").exists()  # one-way trusts the replica unless asked otherwise
    assert "comparing the whole tree" not in daemon.log_text()


@pytest.mark.parametrize(
    ("given", "named"),
    [
        (("--verify-interval", "0"), "--verify-interval='0'"),
        (("--verify-interval", "soon"), "--verify-interval='soon'"),
        (("--queue-limit", "0"), "--queue-limit='0'"),
        (("--queue-limit", "1.5"), "--queue-limit='1.5'"),
    ],
)
def test_bad_values_exit_2_with_one_line(
    dirs: tuple[Path, Path], given: tuple[str, str], named: str
) -> None:
    src, dst = dirs
    result = run_cli("check", str(src), str(dst / "new"), *given, cwd=src)
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and named in result.stderr, result.stderr
    assert not (dst / "new").exists()


def test_bad_values_from_the_environment_exit_2(dirs: tuple[Path, Path]) -> None:
    src, dst = dirs
    result = run_cli(str(src), str(dst), cwd=src, env={"VERIFY_INTERVAL": "-5"})
    assert result.returncode == 2 and "VERIFY_INTERVAL='-5'" in result.stderr, result.stderr
