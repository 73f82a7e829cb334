"""Generated trees with nested ignore files, and what the real git decides about each path.

A `Case` is a tree of files and directories, ``.gitignore`` files in some of its directories and
a ``.git/info/exclude``. `git_decisions` writes it into a fresh repository and asks git twice:
``git ls-files --others --exclude-standard`` lists the files git would track (its real decision,
ancestors included), and ``git check-ignore --no-index -v -n --stdin`` answers for directories,
which git never lists (asked without a trailing "/", see `git_decisions`). Both must agree
with each other on files, or the case says so.

`PYTHONPATH=src:tests python tests/gitignore_oracle.py [CASES]` measures each candidate matcher
against git and prints the divergences per candidate (the figures README quotes); it needs
pathspec and dulwich (`pip install pathspec dulwich`), which neither the daemon nor the suite
does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hypothesis import strategies as st

if TYPE_CHECKING:
    from pathspec import GitIgnoreSpec

# Names that exercise git's escapes and wildcards when they appear in patterns.
NAMES = ["a", "b", "ab", "a.o", "b.o", "#c", "!c", "c ", " c", "x*", "[a]", "é", "a\\b", "d"]
# Segments of a pattern, each a way git's wildmatch can go wrong.
SEGMENTS = [
    "a",
    "b",
    "ab",
    "d",
    "*",
    "?",
    "**",
    "a*",
    "*.o",
    "*o",
    "[ab]",
    "[!a]",
    "[^b]",
    "[a-b]",
    "\\#c",
    "\\!c",
    "#c",
    "!c",
    "c\\ ",
    "\\ c",
    "x\\*",
    "\\[a]",
    "[[]a]",
    "é",
    "?",
    "a?",
    "[]a]",
    "a\\\\b",
    "[[:alpha:]]",
    "[[:digit:]]",
    "**a",
    "a**",
    "***",
    "[a",
]
TRAILERS = ["", "", "", " ", "  ", "\\ ", "\t", "\r"]

Decide = Callable[[str, bool], bool]  # (path, is_dir) -> ignored, ancestors included


@dataclass(frozen=True)
class Case:
    """A tree and its ignore files; `dirs` holds every directory, ancestors of files included."""

    files: tuple[str, ...]
    dirs: tuple[str, ...]
    gitignores: dict[str, tuple[str, ...]] = field(default_factory=dict)  # dir -> lines
    info_exclude: tuple[str, ...] = ()

    def paths(self) -> list[tuple[str, bool]]:
        """Every path with its type (the ignore files themselves included)."""
        return [(d, True) for d in self.dirs] + [(f, False) for f in self.all_files()]

    def all_files(self) -> list[str]:
        return [*self.files, *(f"{d}/.gitignore" if d else ".gitignore" for d in self.gitignores)]


@st.composite
def patterns(draw: st.DrawFn) -> str:
    """One line of an ignore file."""
    kind = draw(st.integers(0, 19))
    if kind == 0:
        return "#" + draw(st.sampled_from(NAMES))
    if kind == 1:
        return ""
    segments = draw(st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3))
    line = "/".join(segments)
    if draw(st.integers(0, 3)) == 0:
        line = "/" + line
    if draw(st.integers(0, 3)) == 0:
        line += "/"
    if draw(st.integers(0, 3)) == 0:
        line = "!" + line
    return line + draw(st.sampled_from(TRAILERS))


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """A tree up to three levels deep with ignore files in some of its directories."""
    raw = draw(
        st.lists(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3), min_size=1, max_size=12)
    )
    dirs: set[str] = {""}
    leaves: dict[str, bool] = {}
    for parts in raw:
        for end in range(1, len(parts)):
            dirs.add("/".join(parts[:end]))
        leaves["/".join(parts)] = draw(st.booleans())
    files = sorted(p for p, is_dir in leaves.items() if not is_dir and p not in dirs)
    dirs.update(p for p, is_dir in leaves.items() if is_dir)
    dirs.update(p for p in leaves if p in dirs)
    homes = draw(st.lists(st.sampled_from(sorted(dirs)), max_size=4, unique=True))
    gitignores = {home: tuple(draw(st.lists(patterns(), min_size=1, max_size=6))) for home in homes}
    info = tuple(draw(st.lists(patterns(), max_size=3)))
    return Case(tuple(files), tuple(sorted(d for d in dirs if d)), gitignores, info)


def write_case(root: str, case: Case) -> None:
    """The case as a real repository at `root` (an empty directory)."""
    subprocess.run(["git", "init", "-q", root], check=True)
    for directory in case.dirs:
        os.makedirs(os.path.join(root, directory), exist_ok=True)
    for path in case.files:
        with open(os.path.join(root, path), "wb") as file:
            file.write(b"x")
    for home, lines in case.gitignores.items():
        with open(os.path.join(root, home, ".gitignore"), "wb") as file:
            file.write("\n".join(lines).encode() + b"\n")
    with open(os.path.join(root, ".git", "info", "exclude"), "wb") as file:
        file.write("\n".join(case.info_exclude).encode() + b"\n")


def _git(root: str, *args: str, stdin: bytes = b"") -> bytes:
    # No user or system configuration: core.excludesFile and the like must not take part.
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    done = subprocess.run(
        ["git", "-C", root, *args], input=stdin, capture_output=True, env=env, check=False
    )
    # check-ignore's 1 says "nothing ignored", even with -n.
    if done.returncode not in (0, 1):
        raise subprocess.CalledProcessError(done.returncode, args, done.stdout, done.stderr)
    return done.stdout


def git_decisions(root: str, case: Case) -> dict[tuple[str, bool], bool]:
    """What git ignores among the case's paths (written at `root`): (path, is_dir) -> ignored."""
    tracked = {
        os.fsdecode(p)
        for p in _git(root, "ls-files", "-z", "--others", "--exclude-standard").split(b"\0")
        if p
    }
    paths = case.paths()
    # A directory is asked for without a trailing "/": git then finds its type with lstat. With
    # the "/", check-ignore also reads the directory's own .gitignore, and "**" there would
    # make it call the directory itself ignored (git status does not).
    queries = b"".join(os.fsencode(p) + b"\0" for p, _ in paths)
    out = _git(root, "check-ignore", "--no-index", "-z", "-v", "-n", "--stdin", stdin=queries)
    fields = out.split(b"\0")
    decisions: dict[tuple[str, bool], bool] = {}
    for index, (path, is_dir) in enumerate(paths):
        source, _, pattern = fields[4 * index : 4 * index + 3]
        by_check = bool(source) and not pattern.startswith(b"!")
        if not is_dir:
            by_listing = path not in tracked
            if by_listing != by_check:
                raise AssertionError(f"git disagrees with itself on {path!r}")
        decisions[(path, is_dir)] = by_check
    return decisions


def divergences(decisions: dict[tuple[str, bool], bool], decide: Decide) -> list[str]:
    """The paths on which `decide` differs from git's `decisions`."""
    return [
        f"{'dir ' if is_dir else 'file'} {path!r}: git {'ignores' if ignored else 'keeps'} it"
        for (path, is_dir), ignored in decisions.items()
        if decide(path, is_dir) != ignored
    ]


def _ours(root: str) -> Decide:
    from pylsyncd.gitignore import GitIgnore

    return GitIgnore(root).ignores_path


def _pathspec(root: str) -> Decide:
    """pathspec's GitIgnoreSpec per file, nested the way git nests them."""

    specs: dict[str, GitIgnoreSpec | None] = {}

    def spec(directory: str) -> GitIgnoreSpec | None:
        if directory not in specs:
            name = os.path.join(root, directory, ".gitignore")
            specs[directory] = _pathspec_file(name) if os.path.isfile(name) else None
        return specs[directory]

    info_name = os.path.join(root, ".git", "info", "exclude")
    info = _pathspec_file(info_name)

    def own(path: str, is_dir: bool) -> bool:
        parts = path.split("/")
        text = path + ("/" if is_dir else "")
        for depth in range(len(parts) - 1, -1, -1):
            found = spec("/".join(parts[:depth]))
            if found is not None:
                result = found.check_file(text.split("/", depth)[-1] if depth else text)
                if result.include is not None:
                    return bool(result.include)
        result = info.check_file(text)
        return bool(result.include)

    return _with_ancestors(own)


def _pathspec_file(name: str) -> GitIgnoreSpec:
    from pathspec import GitIgnoreSpec

    with open(name, encoding="utf-8", errors="surrogateescape") as file:
        return GitIgnoreSpec.from_lines(file)


def _dulwich(root: str) -> Decide:
    """dulwich's IgnoreFilterManager, which nests files and knows the ancestor rule itself."""
    from dulwich.ignore import IgnoreFilterManager
    from dulwich.repo import Repo

    manager = IgnoreFilterManager.from_repo(Repo(root))

    def decide(path: str, is_dir: bool) -> bool:
        return bool(manager.is_ignored(path + "/" if is_dir else path))

    return decide


def _with_ancestors(own: Decide) -> Decide:
    def decide(path: str, is_dir: bool) -> bool:
        parts = path.split("/")
        return any(own("/".join(parts[:e]), True) for e in range(1, len(parts))) or own(
            path, is_dir
        )

    return decide


CANDIDATES: dict[str, Callable[[str], Decide]] = {
    "pylsyncd.gitignore": _ours,
    "pathspec GitIgnoreSpec": _pathspec,
    "dulwich.ignore": _dulwich,
}


def main(count: int) -> None:
    """Measure every candidate on `count` generated cases; print the divergences of each."""
    import tempfile
    import warnings

    from hypothesis import HealthCheck, given, settings

    paths = {name: 0 for name in CANDIDATES}
    cases_with = {name: 0 for name in CANDIDATES}
    examples: dict[str, list[str]] = {name: [] for name in CANDIDATES}
    totals = {"cases": 0, "paths": 0}

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(cases())
    def run(case: Case) -> None:
        with tempfile.TemporaryDirectory() as root:
            write_case(root, case)
            decisions = git_decisions(root, case)
            totals["cases"] += 1
            totals["paths"] += len(case.paths())
            for name, build in CANDIDATES.items():
                try:
                    found = divergences(decisions, build(root))
                except Exception as error:  # a library that crashes on a case diverges there
                    found = [f"raised {type(error).__name__}: {error}"]
                paths[name] += len(found)
                cases_with[name] += bool(found)
                if found and len(examples[name]) < 3:
                    examples[name].append(f"{case!r}: {found[0]}")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pathspec's regexes warn about "[[" sets
        run()
    print(f"{totals['cases']} cases, {totals['paths']} paths")
    for name in CANDIDATES:
        print(f"{name}: {paths[name]} divergent paths in {cases_with[name]} cases")
        for example in examples[name]:
            print(f"    e.g. {example}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
