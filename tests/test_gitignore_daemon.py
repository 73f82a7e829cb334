"""GITIGNORE through the real daemon, both backends: a repository mirrored as git sees it.

The oracle is git itself: the replica holds exactly the files `git ls-files --others --cached
--exclude-standard` lists, and what git ignores in the destination is never deleted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import Daemon, DaemonPool, daemon_args, run_cli, wait_until, write_file

SOURCE_FILES = {
    ".gitignore": "*.log\nbuild/\n/secret.txt\n!keep.log\ndoc/*.html\n",
    "app.py": "print()\n",
    "keep.log": "kept by a negation\n",
    "debug.log": "ignored\n",
    "secret.txt": "anchored at the root\n",
    "lib/secret.txt": "not at the root: kept\n",
    "build/out.o": "ignored directory\n",
    "build/sub/x": "below an ignored directory\n",
    "doc/index.html": "ignored: doc/*.html is anchored at the root\n",
    "doc/readme.md": "kept\n",
    "lib/doc/page.html": "kept: the pattern has a slash, so it is anchored\n",
    "sub/.gitignore": "!debug.log\n*.tmp\n/local/\n",
    "sub/debug.log": "re-included by the deeper file\n",
    "sub/a.tmp": "ignored by the deeper file\n",
    "sub/local/x": "ignored: anchored at sub\n",
    "sub/deep/local/y": "kept: /local/ is anchored at sub\n",
    "quiet/.gitignore": "*\n!.gitignore\n",
    "quiet/noise": "ignored, the file itself kept\n",
}
# What the destination already holds that git ignores, and the source lacks or has otherwise.
DESTINATION_ONLY = {
    "stale.log": "ignored: never deleted",
    "build/old.o": "in an ignored directory: never deleted",
    "sub/a.tmp": "the source's is ignored: this one stays as it is",
}


@pytest.fixture(params=["direct", "rsync"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _git_files(src: Path) -> set[str]:
    """The files git would track in `src` (none are committed: all are "others")."""
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    out = subprocess.run(
        ["git", "-C", str(src), "ls-files", "-z", "--others", "--cached", "--exclude-standard"],
        capture_output=True,
        check=True,
        env=env,
    ).stdout
    return {os.fsdecode(path) for path in out.split(b"\0") if path}


def _files(root: Path) -> set[str]:
    """Every file below `root` but in `.git`, relative."""
    found = set()
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = [d for d in subdirs if d != ".git"]
        found.update(os.path.relpath(os.path.join(directory, n), root) for n in names)
    return found


def _read(root: Path, path: str) -> str:
    return (root / path).read_text()


def _save(path: Path, text: str) -> None:
    """Write `path` whole at once, as editors save (a new file renamed over it). A file written
    in place is seen half written too: a daemon may copy it empty, and once its new rules
    ignore it, the destination keeps that copy as it is."""
    new = path.with_name(path.name + ".new")
    new.write_text(text)
    new.rename(path)


@pytest.fixture
def repository(tmp_path: Path) -> tuple[Path, Path]:
    assert shutil.which("git"), "git is needed (apt-get install git; ./dev test installs it)"
    src, dst = tmp_path / "src", tmp_path / "dst"
    subprocess.run(["git", "init", "-q", str(src)], check=True)
    (src / ".git" / "info" / "exclude").write_text("*.swp\n")
    for path, text in {**SOURCE_FILES, "notes.swp": "ignored by .git/info/exclude\n"}.items():
        write_file(src / path, text)
    for path, text in DESTINATION_ONLY.items():
        write_file(dst / path, text)
    return src, dst


def _start(daemons: DaemonPool, src: Path, dst: Path, backend: str) -> Daemon:
    # .git: git never lists it; EXCLUDES=.git is how a user leaves it out (see README).
    daemon = daemons.start(daemon_args(src, dst, backend, "--gitignore", "--exclude", ".git"))
    daemon.wait_ready()
    return daemon


def _mirrors_git(src: Path, dst: Path, daemon: Daemon) -> None:
    """Wait until the replica holds what git tracks, plus the ignored files it already had."""
    kept = set(DESTINATION_ONLY)

    def matches() -> bool:
        return _files(dst) - kept == _git_files(src) and _files(dst) >= kept

    wait_until(
        matches,
        message=lambda: (
            f"replica minus git: {sorted(_files(dst) - kept - _git_files(src))}\n"
            f"git minus replica: {sorted(_git_files(src) - _files(dst))}\n{daemon.report()}"
        ),
    )


def test_the_replica_holds_what_git_tracks(
    repository: tuple[Path, Path], backend: str, daemons: DaemonPool
) -> None:
    src, dst = repository
    daemon = _start(daemons, src, dst, backend)
    _mirrors_git(src, dst, daemon)
    assert "lib/doc/page.html" in _files(dst) and "sub/deep/local/y" in _files(dst)
    assert not (dst / "sub" / "local").exists() and not (dst / "quiet" / "noise").exists()
    for path, text in DESTINATION_ONLY.items():
        assert _read(dst, path) == text, f"{path}: an ignored destination entry was touched"

    # Live changes follow the same rules: an ignored file written, deleted or made is left alone.
    write_file(src / "new.log", "ignored")
    write_file(src / "sub" / "b.tmp", "ignored")
    (src / "sub" / "a.tmp").unlink()
    write_file(src / "lib" / "new.py", "tracked")
    _mirrors_git(src, dst, daemon)
    assert _read(dst, "sub/a.tmp") == DESTINATION_ONLY["sub/a.tmp"]


def test_a_live_edit_of_a_gitignore_includes_and_excludes(
    repository: tuple[Path, Path], backend: str, daemons: DaemonPool
) -> None:
    src, dst = repository
    daemon = _start(daemons, src, dst, backend)
    _mirrors_git(src, dst, daemon)

    # build/ is no longer ignored, doc/ now is: build's files come, doc's stay as they are.
    (src / ".gitignore").write_text("*.log\n/secret.txt\n!keep.log\ndoc/\n")
    wait_until(
        lambda: (dst / "build" / "sub" / "x").exists() and (dst / "build" / "out.o").exists(),
        message=daemon.report,
    )
    assert (dst / "doc" / "readme.md").exists(), "a newly ignored path stays in the destination"
    write_file(src / "doc" / "readme.md", "changed, but ignored now")
    write_file(src / "doc" / "new.md", "ignored")
    # The new directory is watched: a file made in it after the edit is copied too.
    write_file(src / "build" / "sub" / "later", "watched now")
    wait_until(lambda: (dst / "build" / "sub" / "later").exists(), message=daemon.report)
    assert _read(dst, "doc/readme.md") == SOURCE_FILES["doc/readme.md"]
    assert not (dst / "doc" / "new.md").exists()

    # A deeper file's edit, and one that ignores itself: both read again at once.
    _save(src / "sub" / ".gitignore", "!debug.log\n/local/\n.gitignore\n")
    wait_until(
        lambda: (
            (dst / "sub" / "a.tmp").exists()
            and _read(dst, "sub/a.tmp") != (DESTINATION_ONLY["sub/a.tmp"])
        ),
        message=daemon.report,
    )
    assert _read(dst, "sub/.gitignore") == SOURCE_FILES["sub/.gitignore"], (
        "an ignore file that ignores itself is not copied any more"
    )
    _save(src / "sub" / ".gitignore", "!debug.log\n.gitignore\n")
    wait_until(lambda: (dst / "sub" / "local" / "x").exists(), message=daemon.report)

    # Removing a .gitignore is an edit too.
    (src / "quiet" / ".gitignore").unlink()
    wait_until(lambda: (dst / "quiet" / "noise").exists(), message=daemon.report)
    assert _read(dst, "stale.log") == DESTINATION_ONLY["stale.log"]
    # build/ is not ignored any more: what the source lacks there is an extra like any other.
    assert not (dst / "build" / "old.o").exists()


def test_rsync_dir_merge_of_gitignore_is_not_git(tmp_path: Path) -> None:
    """Why the rsync backend lists ignored paths instead of `--filter=':- .gitignore'`: rsync
    reads the files as rsync patterns, and leaves out two files git keeps."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    subprocess.run(["git", "init", "-q", str(src)], check=True)
    for path in ("lib/doc/page.html", "doc/index.html", "keep.log", "a.log"):
        write_file(src / path, "x")
    write_file(src / ".gitignore", "doc/*.html\n*.log\n!keep.log\n")
    subprocess.run(
        ["rsync", "-a", "--exclude=.git", "--filter=:- .gitignore", f"{src}/", f"{dst}/"],
        check=True,
    )
    assert _git_files(src) == {".gitignore", "keep.log", "lib/doc/page.html"}
    assert _files(dst) == {".gitignore"}


def test_an_ignore_file_created_then_renamed_away(
    repository: tuple[Path, Path], backend: str, daemons: DaemonPool
) -> None:
    src, dst = repository
    daemon = _start(daemons, src, dst, backend)
    _mirrors_git(src, dst, daemon)
    write_file(src / "lib" / ".gitignore", "*.py\n")
    wait_until(lambda: (dst / "lib" / ".gitignore").exists(), message=daemon.report)
    write_file(src / "lib" / "new.py", "ignored from its start")
    write_file(src / "lib" / "after.txt", "kept")  # written last: once it is there, so is new.py
    wait_until(lambda: (dst / "lib" / "after.txt").exists(), message=daemon.report)
    assert not (dst / "lib" / "new.py").exists()
    (src / "lib" / ".gitignore").rename(src / "lib" / "gitignore.off")
    wait_until(lambda: (dst / "lib" / "new.py").exists(), message=daemon.report)
    _mirrors_git(src, dst, daemon)


def test_gitignore_takes_a_boolean(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    done = run_cli(
        "check",
        str(tmp_path / "src"),
        str(tmp_path / "dst"),
        cwd=tmp_path,
        env={"GITIGNORE": "maybe"},
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "GITIGNORE='maybe'" in done.stderr, done.stderr
    assert not (tmp_path / "dst").exists()
