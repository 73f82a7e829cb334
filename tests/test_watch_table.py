"""The watch table alone, without a kernel: what each watch descriptor stands for, and back."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pylsyncd.watch.watch_maps import PathsByWatch
from pylsyncd.watch.watch_table import WatchTable

Step = Callable[[WatchTable], object]


def add(wd: int, path: str) -> Step:
    return lambda table: table.add(wd, path)


def forget(wd: int) -> Step:
    return lambda table: table.forget(wd)


def rename(old: str, new: str) -> Step:
    """Rename what is watched at and below `old` now, the way a paired rename does."""
    return lambda table: table.rename(table.watches_below(old), old, new)


def by_wd(table: WatchTable) -> dict[int, str]:
    paths = {wd: table.path_of(wd) for wd in table.wds()}
    return {wd: path for wd, path in paths.items() if path is not None}


def by_path(table: WatchTable) -> dict[str, int]:
    return table.watches_below("")


# name, steps, then the table both ways: wd -> path, and path -> wd.
CASES: list[tuple[str, list[Step], dict[int, str], dict[str, int]]] = [
    ("empty", [], {}, {}),
    ("root and a child", [add(1, ""), add(2, "a")], {1: "", 2: "a"}, {"": 1, "a": 2}),
    ("the same watch again", [add(1, "a"), add(1, "a")], {1: "a"}, {"a": 1}),
    ("forgotten", [add(1, "a"), add(2, "b"), forget(1)], {2: "b"}, {"b": 2}),
    ("forgotten twice", [add(1, "a"), forget(1), forget(1)], {}, {}),
    (
        # A new directory took the name while the old one's records are still queued: the name
        # is the new watch's, and forgetting the old watch leaves the name alone.
        "a name taken again",
        [add(1, "a"), add(2, "a")],
        {1: "a", 2: "a"},
        {"a": 2},
    ),
    (
        "a name taken again, old watch forgotten",
        [add(1, "a"), add(2, "a"), forget(1)],
        {2: "a"},
        {"a": 2},
    ),
    (
        # Listed under a new name (after an overflow, or ahead of its rename's records): the
        # watches below go along.
        "the same directory under a new name",
        [add(1, "a"), add(2, "a/b"), add(3, "a/b/c"), add(4, "x"), add(1, "y")],
        {1: "y", 2: "y/b", 3: "y/b/c", 4: "x"},
        {"y": 1, "y/b": 2, "y/b/c": 3, "x": 4},
    ),
    (
        # Its old name belongs to a newer directory now: nothing to carry.
        "a watch listed anew whose old name was taken",
        [add(1, "a"), add(2, "a/b"), add(3, "a"), add(1, "y")],
        {1: "y", 2: "a/b", 3: "a"},
        {"y": 1, "a/b": 2, "a": 3},
    ),
    (
        "a subtree renamed",
        [add(1, ""), add(2, "a"), add(3, "a/b"), add(4, "a/b/c"), add(5, "ab"), rename("a", "z/a")],
        {1: "", 2: "z/a", 3: "z/a/b", 4: "z/a/b/c", 5: "ab"},
        {"": 1, "z/a": 2, "z/a/b": 3, "z/a/b/c": 4, "ab": 5},
    ),
    (
        "a subdirectory renamed to the top",
        [add(1, "a"), add(2, "a/b"), add(3, "a/b/c"), rename("a/b", "b")],
        {1: "a", 2: "b", 3: "b/c"},
        {"a": 1, "b": 2, "b/c": 3},
    ),
    (
        "renamed back and forth",
        [add(1, "a"), add(2, "a/b"), rename("a", "c"), rename("c", "a")],
        {1: "a", 2: "a/b"},
        {"a": 1, "a/b": 2},
    ),
]


@pytest.mark.parametrize(
    ("steps", "expected_by_wd", "expected_by_path"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_lookup_both_ways(
    steps: list[Step], expected_by_wd: dict[int, str], expected_by_path: dict[str, int]
) -> None:
    table = WatchTable()
    for step in steps:
        step(table)
    assert by_wd(table) == expected_by_wd
    assert by_path(table) == expected_by_path
    assert len(table) == len(expected_by_wd)
    assert table.wds() == set(expected_by_wd)
    for path, wd in expected_by_path.items():
        assert table.wd_of(path) == wd
        assert table.is_watched(path)
    for gone in {"a", "a/b", "y", "z"} - set(expected_by_path):
        assert table.wd_of(gone) is None
        assert not table.is_watched(gone)


def test_lookup_of_unknown_watches_and_paths() -> None:
    table = WatchTable()
    table.add(1, "a")
    assert table.path_of(2) is None
    assert table.wd_of("b") is None
    assert table.wd_of("a/") is None


def test_watches_below_is_by_component_not_by_prefix() -> None:
    table = WatchTable()
    for wd, path in enumerate(["", "a", "a/b", "ab", "ab/c", "b"], start=1):
        table.add(wd, path)
    assert table.watches_below("a") == {"a": 2, "a/b": 3}
    assert table.watches_below("ab") == {"ab": 4, "ab/c": 5}
    assert table.watches_below("a/b") == {"a/b": 3}
    assert table.watches_below("c") == {}
    assert len(table.watches_below("")) == 6


def test_rename_returns_the_watches_at_their_new_paths() -> None:
    table = WatchTable()
    table.add(1, "a")
    table.add(2, "a/b")
    assert table.rename(table.watches_below("a"), "a", "c") == {"c": 1, "c/b": 2}


def test_rename_skips_watches_dropped_or_moved_meanwhile() -> None:
    table = WatchTable()
    for wd, path in [(1, "a"), (2, "a/b"), (3, "a/c")]:
        table.add(wd, path)
    left = table.watches_below("a")  # taken when the directory left; its arrival is read later
    table.forget(2)  # the kernel dropped it meanwhile (IN_IGNORED)
    table.add(3, "x")  # listed elsewhere meanwhile: it is no longer below "a"
    assert table.rename(left, "a", "n") == {"n": 1}
    assert by_wd(table) == {1: "n", 3: "x"}
    assert by_path(table) == {"n": 1, "x": 3}


def test_rename_keeps_a_name_taken_again() -> None:
    table = WatchTable()
    table.add(1, "a")
    table.add(2, "a/b")
    left = table.watches_below("a")
    table.add(3, "a")  # a new directory took the name before the rename's records were read
    table.rename(left, "a", "n")
    assert by_wd(table) == {1: "n", 2: "n/b", 3: "a"}
    assert by_path(table) == {"n": 1, "n/b": 2, "a": 3}


def test_drop_returns_what_the_kernel_must_remove() -> None:
    table = WatchTable()
    for wd, path in [(1, ""), (2, "a"), (3, "a/b"), (4, "a/c")]:
        table.add(wd, path)
    table.exclude("a/cache")
    table.exclude("other/cache")
    left = table.watches_below("a")
    excluded = table.excluded_below("a")
    table.forget(4)  # dropped by the kernel meanwhile: nothing left to remove
    assert sorted(table.drop(left, excluded)) == [2, 3]
    assert by_path(table) == {"": 1}
    assert table.excluded_below("") == ["other/cache"]
    assert table.drop(left, excluded) == []  # dropping twice removes nothing more


def test_drop_spares_a_watch_renamed_meanwhile() -> None:
    table = WatchTable()
    table.add(1, "a")
    table.add(2, "a/b")
    left = table.watches_below("a")
    table.add(2, "elsewhere")  # listed under another name since
    assert table.drop(left, []) == [1]
    assert by_path(table) == {"elsewhere": 2}


def test_excluded_directories() -> None:
    table = WatchTable()
    for path in ["cache", "a/cache", "a/b/cache", "ab/cache"]:
        table.exclude(path)
    table.exclude("cache")  # seen twice: still one
    assert sorted(table.excluded_below("a")) == ["a/b/cache", "a/cache"]
    assert sorted(table.excluded_below("")) == ["a/b/cache", "a/cache", "ab/cache", "cache"]
    table.include("a/cache", "never/seen")
    assert sorted(table.excluded_below("a")) == ["a/b/cache"]
    table.include()
    assert len(table.excluded_below("")) == 3
    assert len(table) == 0  # excluded directories are not watched


def test_unwatched_directories_are_taken_once() -> None:
    table = WatchTable()
    assert table.take_unwatched_below("") == []
    for path in ["a/b", "a/b/c", "ab", "x"]:
        table.mark_unwatched(path)
    assert sorted(table.take_unwatched_below("a")) == ["a/b", "a/b/c"]
    assert table.take_unwatched_below("a") == []
    assert sorted(table.take_unwatched_below("")) == ["ab", "x"]
    assert table.take_unwatched_below("") == []


def test_a_watch_added_at_last_is_no_longer_unwatched() -> None:
    table = WatchTable()
    table.mark_unwatched("a")
    table.mark_unwatched("a/b")
    table.add(7, "a")
    assert table.take_unwatched_below("") == ["a/b"]


def test_carried_watches_are_told_once_per_listing() -> None:
    table = WatchTable()
    table.add(1, "a")
    table.add(2, "a/b")
    table.add(3, "x")
    table.begin_listing()
    table.add(1, "y")  # the same directory under a new name carries its subdirectories along
    assert table.carried_to(2) == "y/b"
    assert table.carried_to(2) is None  # asked once
    assert table.carried_to(3) is None  # not carried
    table.begin_listing()
    assert table.carried_to(1) is None  # a new listing forgets what the last one carried


def test_forget_notes_keeps_the_watches() -> None:
    table = WatchTable()
    table.add(1, "a")
    table.exclude("cache")
    table.mark_unwatched("b")
    table.forget_notes()
    assert table.excluded_below("") == []
    assert table.take_unwatched_below("") == []
    assert by_path(table) == {"a": 1}


def test_clear_forgets_everything() -> None:
    table = WatchTable()
    table.add(1, "a")
    table.add(2, "a/b")
    table.exclude("cache")
    table.mark_unwatched("c")
    table.begin_listing()
    table.add(1, "n")
    table.clear()
    assert len(table) == 0
    assert table.wds() == set()
    assert by_path(table) == {}
    assert table.excluded_below("") == []
    assert table.take_unwatched_below("") == []
    assert table.carried_to(2) is None


NAMES = st.sampled_from(["", "a", "a/b", "a/b/c", "b", "b/a", "c"])
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(1, 6), NAMES),
        st.tuples(st.just("forget"), st.integers(1, 6), NAMES),
        st.tuples(st.just("rename"), NAMES, NAMES),
        st.tuples(st.just("drop"), NAMES, NAMES),
    ),
    max_size=30,
)


@given(OPERATIONS)
def test_a_path_always_names_a_watch_that_names_it_back(
    operations: list[tuple[str, int | str, str]],
) -> None:
    """Whatever happens, a path's watch names that path: a record about it is reported there."""
    table = WatchTable()
    for operation, first, second in operations:
        if operation == "add" and isinstance(first, int):
            table.add(first, second)
        elif operation == "forget" and isinstance(first, int):
            table.forget(first)
        elif operation == "rename" and isinstance(first, str):
            # A directory cannot move below itself.
            if first and not (second + "/").startswith(first + "/"):
                table.rename(table.watches_below(first), first, second)
        elif operation == "drop" and isinstance(first, str):
            table.drop(table.watches_below(first), [])
            assert table.watches_below(first) == {}
        for path, wd in table.watches_below("").items():
            assert table.path_of(wd) == path
        assert len(table) == len(table.wds())


def test_paths_by_watch_keep_every_entry_when_holes_make_them_a_dict() -> None:
    paths = PathsByWatch()
    for wd in range(1, 101):
        paths[wd] = f"d{wd}"
    for wd in range(1, 100):
        assert paths.pop(wd) == f"d{wd}"
    assert paths.get(-1) is None and paths.get(10**6) is None  # an overflow's wd; beyond
    far = 10**6  # many directories came and went: the list would be mostly holes
    paths[far] = "far"
    assert paths.get(far) == "far" and paths.get(100) == "d100"
    assert len(paths) == 2 and paths.wds() == {100, far}
    assert paths.pop(100) == "d100" and paths.pop(100) is None and len(paths) == 1
