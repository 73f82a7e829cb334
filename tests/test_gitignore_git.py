"""The GITIGNORE matcher, checked against the real git on generated trees (the oracle).

GITIGNORE_CASES sets how many trees hypothesis generates (300 here; 2,000 or more by hand, e.g.
GITIGNORE_CASES=2000); they are derandomized and no example database is kept, so a run is the
same on every machine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from gitignore_oracle import Case, cases, divergences, git_decisions, write_case
from pylsyncd.coalesce import Batch, Change, ChangeKind, Move
from pylsyncd.git_excludes import GitExcludes
from pylsyncd.gitignore import GitIgnore

CASES = int(os.environ.get("GITIGNORE_CASES", "300"))


@pytest.fixture(scope="module", autouse=True)
def real_git() -> None:
    assert shutil.which("git"), "git is needed (apt-get install git; ./dev test installs it)"


def _walked(root: str, ignore: GitIgnore) -> set[str]:
    """The files a walk that never enters an ignored directory keeps, as the transfers walk."""
    kept: set[str] = set()
    stack = [""]
    while stack:
        directory = stack.pop()
        with os.scandir(os.path.join(root, directory)) as entries:
            for entry in entries:
                path = f"{directory}/{entry.name}" if directory else entry.name
                if path == ".git":
                    continue
                is_dir = entry.is_dir(follow_symlinks=False)
                if ignore.ignores(path, is_dir):
                    continue
                if is_dir:
                    stack.append(path)
                else:
                    kept.add(path)
    return kept


# A case takes about 50 ms (a repository and two git runs), up to four times that on a busy
# machine: the suite's 120 s per test would stop a run of thousands.
@pytest.mark.timeout(60 + CASES // 2)
@settings(
    max_examples=CASES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(cases())
def test_every_generated_path_decided_as_git_does(case: Case) -> None:
    with tempfile.TemporaryDirectory() as root:
        write_case(root, case)
        decisions = git_decisions(root, case)
        ignore = GitIgnore(root)
        assert divergences(decisions, ignore.ignores_path) == [], case
        # A walk that asks only about each entry (its ancestors were not ignored, or it would
        # not be there) keeps exactly the files git would track.
        tracked = {
            path for (path, is_dir), ignored in decisions.items() if not is_dir and not ignored
        }
        assert _walked(root, ignore) == tracked, case


def _tree(root: Path, files: dict[str, str]) -> GitIgnore:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return GitIgnore(str(root))


def test_deeper_file_wins_and_last_line_wins(tmp_path: Path) -> None:
    ignore = _tree(
        tmp_path,
        {
            ".gitignore": "*.log\n",
            "sub/.gitignore": "!keep.log\n",
            "other/.gitignore": "x\n!x\nx\n",
        },
    )
    assert ignore.ignores("a.log", False)
    assert not ignore.ignores("sub/keep.log", False)
    assert ignore.ignores("sub/other.log", False)
    assert ignore.ignores("other/x", False)


def test_a_file_below_an_ignored_directory_cannot_be_included_again(tmp_path: Path) -> None:
    ignore = _tree(tmp_path, {".gitignore": "build/\n!build/keep\n"})
    assert ignore.ignores("build", True)
    assert ignore.ignores_path("build/keep", False)


def test_info_exclude_comes_after_every_gitignore(tmp_path: Path) -> None:
    ignore = _tree(tmp_path, {".git/info/exclude": "*.tmp\nsecret\n", ".gitignore": "!a.tmp\n"})
    assert ignore.ignores("b.tmp", False)
    assert not ignore.ignores("a.tmp", False)
    assert ignore.ignores("x/secret", False)


def test_reload_reads_changed_files_again(tmp_path: Path) -> None:
    ignore = _tree(tmp_path, {"sub/.gitignore": "a\n"})
    assert ignore.ignores("sub/a", False)
    assert ignore.holds_rules("sub") and ignore.holds_rules("")
    assert not ignore.holds_rules("other")
    (tmp_path / "sub/.gitignore").write_text("b\n")
    assert ignore.ignores("sub/a", False), "read once per directory until reloaded"
    ignore.reload()
    assert not ignore.ignores("sub/a", False)
    assert ignore.ignores("sub/b", False)


def test_a_symlinked_gitignore_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "rules").write_text("*\n")
    (tmp_path / ".gitignore").symlink_to("rules")
    assert not GitIgnore(str(tmp_path)).ignores("anything", False)


def test_crlf_line_ends_and_a_bom(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_bytes(b"\xef\xbb\xbfa\r\nb \r\n")
    ignore = GitIgnore(str(tmp_path))
    assert ignore.ignores("a", False)
    assert ignore.ignores("b", False)


def _fresh(root: Path) -> GitExcludes:
    excludes = GitExcludes((), str(root))
    assert excludes.excludes("sub/a", False) and not excludes.excludes("other/x", False)
    return excludes


def _changes(*changes: tuple[str, ChangeKind]) -> Batch:
    return Batch((), tuple(Change(path, kind) for path, kind in changes))


def test_what_changes_the_rules(tmp_path: Path) -> None:
    _tree(tmp_path, {"sub/.gitignore": "a\n", "other/x": "", ".git/info/exclude": ""})
    sync, delete = ChangeKind.SYNC, ChangeKind.DELETE
    assert not _fresh(tmp_path).rules_changed(_changes(("other/x", sync), ("other", delete)))
    assert _fresh(tmp_path).rules_changed(_changes(("sub/.gitignore", sync)))
    assert _fresh(tmp_path).rules_changed(_changes(("new/.gitignore", delete)))
    assert _fresh(tmp_path).rules_changed(_changes((".git/info/exclude", sync)))
    # A directory holding an ignore file, deleted or moved: its rules went with it.
    assert _fresh(tmp_path).rules_changed(_changes(("sub", delete)))
    assert _fresh(tmp_path).rules_changed(Batch((Move("sub", "elsewhere", True),), ()))
    assert _fresh(tmp_path).rules_changed(Batch((Move("x", "d/.gitignore", False),), ()))


def test_a_directory_deleted_and_made_again_is_read_again(tmp_path: Path) -> None:
    _tree(tmp_path, {"sub/.gitignore": "a\n", "other/x": ""})
    excludes = _fresh(tmp_path)
    shutil.rmtree(tmp_path / "other")
    _tree(tmp_path, {"other/.gitignore": "x\n"})
    assert not excludes.excludes("other/x", False), "read once until something says otherwise"
    excludes.rules_changed(_changes(("other", ChangeKind.DELETE)))
    assert excludes.excludes("other/x", False)


def test_batches_go_without_what_the_rules_leave_out(tmp_path: Path) -> None:
    _tree(tmp_path, {".gitignore": "build/\n*.o\n"})
    excludes = GitExcludes(("*.tmp",), str(tmp_path))
    batch = Batch(
        (Move("a", "b.o", False), Move("c", "d", False)),
        tuple(
            Change(path, ChangeKind.SYNC) for path in ("build/x", "y.o", "z.tmp", "src/build", "k")
        ),
    )
    kept = excludes.without_ignored(batch)
    assert kept.moves == (Move("c", "d", False),)
    assert [c.path for c in kept.changes] == ["k"], "either type counts: src/build may be a dir"
    # The watcher sees every ignore file, even one its own rules would leave out.
    _tree(tmp_path, {"sub/.gitignore": ".gitignore\n"})
    assert excludes.excludes("sub/.gitignore", False)
    assert not excludes.unwatched("sub/.gitignore", False) and excludes.unwatched("x.o", False)


def test_a_double_star_after_a_literal_head_spans_directories(tmp_path: Path) -> None:
    """git matches an anchored line's literal head on its own and wildmatches the rest as a
    pattern of its own, so "a**/x" is "a" then "**/x" (found by the generated cases)."""
    ignore = _tree(tmp_path, {".gitignore": "a**/x\n?**/y\n"})
    assert ignore.ignores("ab/c/x", False) and ignore.ignores("ax", False)
    assert not ignore.ignores("ba/x", False)
    assert ignore.ignores("b/y", False) and not ignore.ignores("b/c/y", False)
