"""Exclude patterns, checked case by case and against the real rsync, which is the oracle."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pylsyncd.excludes import ExcludeRules

# Tree: relative path -> is_dir. Every ancestor of a path is in the tree as a directory.
Tree = dict[str, bool]

# (pattern, path, is_dir, excluded). No row has an excluded ancestor, so excludes() and
# excludes_path() must agree with the row, and so must rsync (test_cases_agree_with_rsync).
CASES: list[tuple[str, str, bool, bool]] = [
    # A pattern without "/" matches the last component, at any depth.
    ("*.o", "main.o", False, True),
    ("*.o", "src/lib/main.o", False, True),
    ("*.o", "main.c", False, False),
    ("foo", "x/foo", True, True),
    ("foo", "xfoo", False, False),
    ("foo", "foo.c", False, False),
    # A leading "/" anchors at the transfer root.
    ("/foo", "foo", False, True),
    ("/foo", "x/foo", False, False),
    ("/a/b", "a/b", False, True),
    ("/a/b", "x/a/b", False, False),
    ("/*.c", "x/y.c", False, False),
    # A trailing "/" matches directories only.
    ("build/", "build", True, True),
    ("build/", "build", False, False),
    ("build/", "x/build", True, True),
    ("/build/", "x/build", True, False),
    ("a//", "a", True, False),
    # An unanchored pattern with "/" matches the tail at a component boundary.
    ("foo/bar", "foo/bar", False, True),
    ("foo/bar", "x/foo/bar", False, True),
    ("foo/bar", "xfoo/bar", False, False),
    ("a/*", "x/a/b", False, True),
    ("*/b", "x/a/b", False, True),
    ("x[/a]", "xa", False, False),
    # "*" stops at "/", "**" does not.
    ("a*", "ab", False, True),
    ("/a*b", "a/b", False, False),
    ("/a**b", "a/b", False, True),
    ("**/foo", "foo", False, True),
    ("**/foo", "x/y/foo", False, True),
    ("**/foo", "xfoo", False, False),
    ("**foo", "x/yfoo", False, True),
    ("foo/**", "foo", True, False),
    ("foo/**", "foo/x", False, True),
    ("foo/**", "y/foo/x", False, True),
    ("a/**/b", "a/b", False, False),
    ("a/**/b", "a/x/b", False, True),
    ("a/**/b", "a/x/y/b", False, True),
    ("/**/x", "x", False, False),
    ("/**/x", "a/x", False, True),
    ("**", "a", True, True),
    # "?" is one byte other than "/": "é" is two bytes in UTF-8.
    ("?", "a", False, True),
    ("?", "ab", False, False),
    ("a?c", "abc", False, True),
    ("/a?c", "a/c", False, False),
    ("?", "é", False, False),
    ("??", "é", False, True),
    # Character classes.
    ("[ab]", "a", False, True),
    ("[ab]", "c", False, False),
    ("[!ab]", "c", False, True),
    ("[^ab]", "a", False, False),
    ("[a-c]x", "bx", False, True),
    ("[]]", "]", False, True),
    ("[]a]", "a", False, True),
    ("[!]]", "]", False, False),
    ("[a-]", "-", False, True),
    ("[z-a]", "z", False, True),
    ("[z-a]", "m", False, False),
    ("[[:alpha:]]", "Q", False, True),
    ("[[:alpha:]]", "1", False, False),
    ("[[:digit:]]*", "9lives", False, True),
    ("[[:space:]]", " ", False, True),
    ("[[:upper:][:digit:]]", "7", False, True),
    ("[[:alpha]", "p", False, True),
    ("[[:alpha:]][[:alpha:]]", "é", False, False),
    ("[!a][!a]", "é", False, True),
    # A backslash escapes a wildcard only in a pattern that has one.
    ("\\*", "*", False, True),
    ("\\*", "a", False, False),
    ("a\\?", "a?", False, True),
    ("a\\?", "ab", False, False),
    ("\\[a]", "[a]", False, True),
    ("\\[a]", "a", False, False),
    ("a\\b", "a\\b", False, True),
    ("a\\b", "ab", False, False),
    ("a\\b*", "ab", False, True),
    ("a\\b*", "a\\b", False, False),
    # "dir/***" is the directory itself and everything in it.
    ("dir/***", "dir", True, True),
    ("dir/***", "dir", False, False),
    ("dir/***", "x/dir", True, True),
    ("/dir/***", "x/dir", True, False),
    ("***", "a", False, True),
    # Unusual names; "- " and "!" are part of the name, not rule syntax.
    ("*.txt", "ünïcödé.txt", False, True),
    ("naïve", "naïve", False, True),
    ("naïve", "naive", False, False),
    ("a b", "a b", False, True),
    ("* *", "a b", False, True),
    ("* *", "ab", False, False),
    (" a", " a", False, True),
    ("a ", "a", False, False),
    ("a\nb", "a\nb", False, True),
    ("a*b", "a\nb", False, True),
    ("-a", "-a", False, True),
    ("-*", "-rf", False, True),
    ("- a", "- a", False, True),
    ("- a", "a", False, False),
    ("+ a", "+ a", False, True),
    ("!", "!", False, True),
    # Bytes that are not UTF-8 arrive as surrogate escapes from os.fsdecode().
    ("?", "\udcff", False, True),
    ("\udcff*", "\udcffz", False, True),
]


def _case_id(case: tuple[str, str, bool, bool]) -> str:
    pattern, path, is_dir, excluded = case
    kind = "dir" if is_dir else "file"
    return f"{pattern!r} {'excludes' if excluded else 'keeps'} {kind} {path!r}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_cases(case: tuple[str, str, bool, bool]) -> None:
    pattern, path, is_dir, excluded = case
    rules = ExcludeRules([pattern])
    assert rules.excludes(path, is_dir) is excluded
    assert rules.excludes_path(path, is_dir) is excluded


def test_cases_agree_with_rsync() -> None:
    """Every row of CASES is what rsync itself does."""

    def disagrees(case: tuple[str, str, bool, bool]) -> bool:
        pattern, path, is_dir, excluded = case
        tree = _with_ancestors({path: is_dir})
        transferred = _rsync_transfers([pattern], tree)
        # The rows promise that no ancestor is excluded; rsync checks that promise too.
        return (path in transferred) is excluded or not set(tree) - {path} <= transferred

    # Each rsync run spends most of its time in rsync's own 20 ms exit polling, so run several.
    with ThreadPoolExecutor(max_workers=8) as pool:
        wrong = [case for case, bad in zip(CASES, pool.map(disagrees, CASES), strict=True) if bad]
    assert wrong == []


def test_excludes_path_tests_ancestors_as_directories() -> None:
    rules = ExcludeRules(["a/*", "build/"])
    # "a/b" is excluded as a directory, which hides everything below it.
    assert not rules.excludes("a/b/c", False)
    assert rules.excludes_path("a/b/c", False)
    assert rules.excludes_path("x/build/deep/er/file", False)
    assert not rules.excludes_path("x/build", False)
    assert not rules.excludes_path("a", True)


def test_wild3_excludes_the_directory_and_its_contents() -> None:
    rules = ExcludeRules(["/cache/***"])
    assert rules.excludes_path("cache", True)
    assert not rules.excludes_path("cache", False)
    assert rules.excludes_path("cache/x/y", True)
    assert not rules.excludes_path("x/cache/y", False)


def test_several_patterns() -> None:
    rules = ExcludeRules(["*.o", "/node_modules/", ".git/***"])
    assert rules.patterns == ("*.o", "/node_modules/", ".git/***")
    assert rules.excludes_path("src/x.o", False)
    assert rules.excludes_path("node_modules/pkg/index.js", False)
    assert rules.excludes_path("sub/.git/HEAD", False)
    assert not rules.excludes_path("sub/node_modules/pkg", True)
    assert not rules.excludes_path("src/x.c", False)


def test_truthiness() -> None:
    assert not ExcludeRules([])
    assert not ExcludeRules([]).excludes_path("a", False)
    assert ExcludeRules(["x[/a]"])  # a pattern that can never match is still a pattern


@pytest.mark.parametrize("path", ["a", "a/b", "a/b/c"], ids=["top level", "nested", "deep"])
def test_never_matching_patterns(path: str) -> None:
    rules = ExcludeRules(["/", "//", "a//", "x[/a]"])
    assert not rules.excludes_path(path, True)
    assert not rules.excludes_path(path, False)


@pytest.mark.parametrize(
    "pattern",
    ["[", "a[b", "[!", "[]", "[!]", "[a-", "[\\", "[[:alpha:]", "[[:foo:]]", "*\\", "", "a\0b"],
)
def test_malformed_pattern_is_named(pattern: str) -> None:
    with pytest.raises(ValueError, match="malformed exclude pattern") as info:
        ExcludeRules(["ok", pattern])
    assert repr(pattern) in str(info.value)


def test_literal_trailing_backslash_is_fine() -> None:
    # Without a wildcard the backslash is an ordinary character, in rsync too.
    assert ExcludeRules(["a\\"]).excludes("a\\", False)


# --- Property test against the real rsync --------------------------------------------------

# Few, colliding names: prefixes of each other, dot files, a leading dash, a space, a two-byte
# character, and wildcard characters and a backslash inside names.
NAMES = ["a", "b", "ab", "a.c", ".x", "-a", "é", "a b", "a*", "\\b"]

_class_item = st.sampled_from(
    ["a", "b", "c", ".", "-", "é", "/", "a-b", "b-a", ".-b", "[:alpha:]", "[:punct:]"]
)
_char_class = st.builds(
    lambda first, negation, items: "[" + negation + first + "".join(items) + "]",
    st.sampled_from(["", "", "]"]),
    st.sampled_from(["", "", "!", "^"]),
    st.lists(_class_item, min_size=1, max_size=3),
)
_atom = st.one_of(
    st.sampled_from(["a", "b", "c", ".", "-", "x", " ", "é"]),
    st.sampled_from(["*", "**", "***", "?"]),
    _char_class,
    st.sampled_from(["\\*", "\\?", "\\[", "\\a", "\\\\"]),
)
_segment = st.one_of(
    st.sampled_from(NAMES),
    st.sampled_from(["*", "**", "***"]),
    st.lists(_atom, min_size=1, max_size=4).map("".join),
)
_pattern = st.builds(
    lambda anchor, segments, trailing: anchor + "/".join(segments) + trailing,
    st.sampled_from(["", "", "/"]),
    st.lists(_segment, min_size=1, max_size=3),
    st.sampled_from(["", "", "/"]),
)
_entries = st.lists(
    st.tuples(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3), st.booleans()),
    min_size=1,
    max_size=8,
)


def _tree_from(entries: list[tuple[list[str], bool]]) -> Tree:
    """Turn (components, is_dir) entries into a tree; a file that is also a parent is a dir."""
    return _with_ancestors({"/".join(parts): is_dir for parts, is_dir in entries})


# Ways to loosen one component of a real path, so that derived patterns often match something.
_EDITS = ["as is", "as is", "?", "[c]", "[!c]", "[c-z]", "\\c", "c*", "*", "**", "***"]


@st.composite
def _pattern_from(draw: st.DrawFn, tree: Tree) -> str:
    """A pattern made from the tail of a path in ``tree``, with some components loosened."""
    parts = draw(st.sampled_from(sorted(tree))).split("/")
    start = draw(st.integers(0, len(parts) - 1))
    loosened = []
    for name in parts[start:]:
        edit = draw(st.sampled_from(_EDITS))
        at = draw(st.integers(0, len(name) - 1))
        head, c, tail = name[:at], name[at], name[at + 1 :]
        in_class = "\\\\" if c == "\\" else c  # a lone backslash would escape the "]"
        loosened.append(
            {
                "as is": name,
                "?": head + "?" + tail,
                "[c]": head + "[" + in_class + "]" + tail,
                "[!c]": head + "[!" + in_class + "]" + tail,
                "[c-z]": head + "[" + in_class + "-z]" + tail,
                "\\c": head + "\\" + c + tail,
                "c*": head + c + "*",
            }.get(edit, edit)
        )
    anchor = draw(st.sampled_from(["", "/"] if start == 0 else ["", "", "/"]))
    return anchor + "/".join(loosened) + draw(st.sampled_from(["", "", "/"]))


@st.composite
def _tree_and_patterns(draw: st.DrawFn) -> tuple[Tree, list[str]]:
    tree = _tree_from(draw(_entries))
    patterns = draw(st.lists(st.one_of(_pattern, _pattern_from(tree)), min_size=1, max_size=3))
    return tree, patterns


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_tree_and_patterns())
def test_agrees_with_rsync(tree_and_patterns: tuple[Tree, list[str]]) -> None:
    tree, patterns = tree_and_patterns
    rules = ExcludeRules(patterns)
    ours = {path for path, is_dir in tree.items() if not rules.excludes_path(path, is_dir)}
    assert ours == _rsync_transfers(patterns, tree)


@settings(max_examples=300, deadline=None)
@given(_tree_and_patterns())
def test_excludes_path_is_excludes_on_each_ancestor(
    tree_and_patterns: tuple[Tree, list[str]],
) -> None:
    """The single-regex ancestor check equals testing every ancestor as a directory."""
    tree, patterns = tree_and_patterns
    rules = ExcludeRules(patterns)
    for path, is_dir in tree.items():
        parts = path.split("/")
        ancestors = ["/".join(parts[:i]) for i in range(1, len(parts))]
        expected = any(rules.excludes(a, True) for a in ancestors) or rules.excludes(path, is_dir)
        assert rules.excludes_path(path, is_dir) is expected, path


# --- rsync driver ----------------------------------------------------------------------------


def _with_ancestors(declared: Tree) -> Tree:
    """Add every ancestor as a directory; a path declared as a file may be another's parent."""
    tree = dict(declared)
    for path in declared:
        parts = path.split("/")
        for i in range(1, len(parts)):
            tree["/".join(parts[:i])] = True
    return tree


def _rsync_binary() -> str:
    rsync = shutil.which("rsync")
    if rsync is None:
        pytest.fail("rsync is not installed: these tests use the real rsync as their oracle")
    return rsync


def _rsync_transfers(patterns: list[str], tree: Tree) -> set[str]:
    """Copy ``tree`` with rsync and return the relative paths that arrived."""
    with tempfile.TemporaryDirectory() as scratch:
        source, destination = Path(scratch, "src"), Path(scratch, "dst")
        source.mkdir()
        for path, is_dir in sorted(tree.items()):
            if is_dir:
                (source / path).mkdir()
            else:
                (source / path).touch()
        # "--filter=- PAT" takes the pattern as is; "--exclude" would read "- a" or "!" as rules.
        command = [_rsync_binary(), "-r", *(f"--filter=- {p}" for p in patterns)]
        command += ["--", f"{source}/", f"{destination}/"]
        # The C locale fixes what [[:alpha:]] and friends mean to rsync.
        subprocess.run(command, check=True, capture_output=True, env={**os.environ, "LC_ALL": "C"})
        arrived: set[str] = set()
        for root, dirs, files in os.walk(destination):
            relative = Path(root).relative_to(destination)
            arrived.update(str(relative / name) for name in [*dirs, *files])
        return arrived
