"""The watch table's compact maps, against the plain dicts they replace."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pylsyncd.watch.watch_maps import PathsByWatch, WatchesByPath

PATHS = [f"d{i}" for i in range(12)] + ["", "d1/x", "d1/x/y"]
OPERATIONS = st.lists(
    st.tuples(st.sampled_from(["put", "discard"]), st.integers(1, 40), st.sampled_from(PATHS)),
    max_size=300,
)


@settings(max_examples=300, deadline=None)
@given(OPERATIONS)
def test_watches_by_path_answer_as_a_dict_would(operations: list[tuple[str, int, str]]) -> None:
    """Put and taken out as the watch table does (a wd is taken out before its path changes):
    every lookup and the listing equal a dict's, through collisions, deletions and growth."""
    paths = PathsByWatch()
    index = WatchesByPath(paths)
    model: dict[str, int] = {}
    for operation, wd, path in operations:
        current = paths.get(wd)
        if current is not None:  # the rule: out from under its old path first
            index.discard(current, wd)
            if model.get(current) == wd:
                del model[current]
        if operation == "put":
            paths[wd] = path
            index.put(path, wd)  # takes the path from whichever wd had it
            model[path] = wd
        else:
            paths.pop(wd)
        for name in PATHS:
            assert index.get(name) == model.get(name), name
        assert sorted(index.items()) == sorted(model.items())


def test_a_wd_that_lost_its_name_to_another_is_not_found_by_it() -> None:
    """A new directory took the name while the old watch's records are still queued: the name
    finds the new watch, and forgetting the old one leaves the new one alone."""
    paths = PathsByWatch()
    index = WatchesByPath(paths)
    paths[1] = "a"
    index.put("a", 1)
    paths[2] = "a"
    index.put("a", 2)
    assert index.get("a") == 2 and list(index.items()) == [("a", 2)]
    index.discard("a", 1)
    assert index.get("a") == 2


def test_many_watches_grow_the_table_and_keep_every_one() -> None:
    paths = PathsByWatch()
    index = WatchesByPath(paths)
    for wd in range(1, 20_001):
        paths[wd] = f"g{wd // 100}/d{wd}"
        index.put(paths.get(wd) or "", wd)
    for wd in range(1, 20_001, 2):
        index.discard(f"g{wd // 100}/d{wd}", wd)
        paths.pop(wd)
    assert all(index.get(f"g{wd // 100}/d{wd}") == wd for wd in range(2, 20_001, 2))
    assert all(index.get(f"g{wd // 100}/d{wd}") is None for wd in range(1, 20_001, 2))
    assert len(list(index.items())) == 10_000
