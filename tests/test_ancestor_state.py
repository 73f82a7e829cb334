"""The persisted ancestor state: round trips, journal and compaction, every reason it cannot be
used (a crash mid-write is a clear reason or a dropped torn tail, never a wrong state), and the
STATE_DIR-inside-a-root refusal."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pylsyncd.entries import Ancestor, Entry, Kind
from pylsyncd.errors import ConfigError
from pylsyncd.plan import Record
from pylsyncd.state import (
    AncestorStore,
    PairIdentity,
    PairState,
    RootIdentity,
    StateProblem,
    Unusable,
    root_identity,
    state_path,
)
from pylsyncd.state import ancestor as ancestor_module
from pylsyncd.state.records import AncestorEntries

PAIR = PairIdentity("/src.mounted", "/src")
SOURCE_ROOT = RootIdentity(64, 2, 0x1234)
DESTINATION_ROOT = RootIdentity(65, 2, 0x5678)
ODD_NAMES = ["plain.txt", "with\nnewline", "tab\there", "é/ünïcode", os.fsdecode(b"bad-\xff-utf8")]


def sample_entries() -> dict[str, Ancestor]:
    entries = {
        "d": Ancestor(Entry(Kind.DIR, mode=0o755), 10, 20),
        "d/link": Ancestor(Entry(Kind.SYMLINK, 7, 1_000, 0o777, target="../t\nx"), 11, 21),
        "d/hashed": Ancestor(Entry(Kind.FILE, 5, 2_000, digest=b"\x00" * 32), 12, 22),
    }
    for index, name in enumerate(ODD_NAMES):
        entries[name] = Ancestor(Entry(Kind.FILE, index, -(2**40) + index, 0o600), 2**63, index)
    return entries


def new_state(entries: dict[str, Ancestor] | None = None) -> PairState:
    return PairState(PAIR, SOURCE_ROOT, DESTINATION_ROOT, AncestorEntries((entries or {}).items()))


def load(path: Path) -> PairState | Unusable:
    return AncestorStore(path).load(PAIR, SOURCE_ROOT, DESTINATION_ROOT)


def loaded(path: Path) -> PairState:
    state = load(path)
    assert isinstance(state, PairState), state
    return state


def unusable(path: Path, problem: StateProblem) -> str:
    state = load(path)
    assert isinstance(state, Unusable), state
    assert state.problem is problem, state
    assert "\n" not in state.reason and "union merge that deletes nothing" in state.reason
    return state.reason


def test_a_state_round_trips_every_kind_and_odd_names(tmp_path: Path) -> None:
    path = tmp_path / "pair.state"
    AncestorStore(path).save(new_state(sample_entries()))
    state = loaded(path)
    assert state.entries == sample_entries()
    assert (state.pair, state.source_root, state.destination_root) == (
        PAIR,
        SOURCE_ROOT,
        DESTINATION_ROOT,
    )
    assert sorted(os.listdir(tmp_path)) == ["pair.state", "pair.state.journal"]  # no temporary


def test_a_small_batch_appends_to_the_journal_without_rewriting_the_snapshot(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pair.state"
    store = AncestorStore(path)
    state = new_state({f"f{index}": sample_entries()["plain.txt"] for index in range(1_000)})
    store.save(state)
    snapshot = path.read_bytes()
    changed = Ancestor(Entry(Kind.FILE, 99, 9_000), 1, 2)
    store.append(state, [Record("f1", changed), Record("f2", None), Record("new", changed)])
    assert path.read_bytes() == snapshot
    again = loaded(path)
    assert again.entries == state.entries
    assert again.entries["f1"] == changed and "f2" not in again.entries and "new" in again.entries


def test_a_long_journal_is_folded_into_a_new_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "pair.state"
    store = AncestorStore(path)
    state = new_state()
    store.save(state)
    entry = Ancestor(Entry(Kind.FILE, 1, 1), 1, 2)
    for batch in range(200):
        store.append(state, [Record(f"dir/file-{batch}-{n}", entry) for n in range(20)])
    assert store.journal.stat().st_size < ancestor_module.MIN_JOURNAL_BYTES + 4_096
    assert loaded(path).entries == state.entries
    assert len(state.entries) == 4_000


def test_a_torn_journal_tail_drops_only_the_last_batch_and_later_writes_still_load(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pair.state"
    store = AncestorStore(path)
    state = new_state()
    store.save(state)
    entry = Ancestor(Entry(Kind.FILE, 1, 1), 1, 2)
    store.append(state, [Record("first", entry)])
    store.append(state, [Record("second", entry)])
    with open(store.journal, "r+b") as journal:  # a kill -9 in the middle of the second append
        journal.truncate(store.journal.stat().st_size - 3)
    reopened = AncestorStore(path)
    state = reopened.load(PAIR, SOURCE_ROOT, DESTINATION_ROOT)  # type: ignore[assignment]
    assert isinstance(state, PairState) and set(state.entries) == {"first"}
    reopened.append(state, [Record("third", entry)])
    assert set(loaded(path).entries) == {"first", "third"}


def test_damage_inside_the_journal_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "pair.state"
    store = AncestorStore(path)
    state = new_state()
    store.save(state)
    entry = Ancestor(Entry(Kind.FILE, 1, 1), 1, 2)
    store.append(state, [Record("first", entry)])
    store.append(state, [Record("second", entry)])
    data = bytearray(store.journal.read_bytes())
    data[len(ancestor_module.JOURNAL_MAGIC) + 20] ^= 0xFF  # inside the first frame
    store.journal.write_bytes(bytes(data))
    assert "journal frame" in unusable(path, StateProblem.CORRUPTED)


def test_a_journal_from_before_the_last_snapshot_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "pair.state"
    store = AncestorStore(path)
    state = new_state()
    store.save(state)
    entry = Ancestor(Entry(Kind.FILE, 1, 1), 1, 2)
    store.append(state, [Record("old", entry)])
    stale = store.journal.read_bytes()
    state.entries.pop("old")
    store.save(state)  # a compaction that crashed before the fresh journal replaced the old one
    store.journal.write_bytes(stale)
    assert not loaded(path).entries


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda data: data[: len(data) // 2], "checksum mismatch"),
        (lambda data: data[:10], "not a pylsyncd state file"),
        (lambda data: data[:-1] + bytes([data[-1] ^ 1]), "checksum mismatch"),
        (lambda data: b"\x00" * len(data), "not a pylsyncd state file"),
        (lambda data: b"", "not a pylsyncd state file"),
    ],
    ids=["cut in half", "cut in the magic", "last byte flipped", "zeroed", "empty"],
)
def test_a_damaged_snapshot_is_a_clear_reason_never_a_wrong_state(
    tmp_path: Path, damage: object, words: str
) -> None:
    path = tmp_path / "pair.state"
    AncestorStore(path).save(new_state(sample_entries()))
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    assert words in unusable(path, StateProblem.CORRUPTED)


def test_a_missing_state_says_so(tmp_path: Path) -> None:
    assert "no state yet" in unusable(tmp_path / "pair.state", StateProblem.MISSING)


def test_an_unreadable_state_says_why(tmp_path: Path) -> None:
    path = tmp_path / "pair.state"
    path.mkdir()  # readable by root too: chmod 000 would not stop root
    assert "directory" in unusable(path, StateProblem.UNREADABLE).lower()


def test_another_pairs_state_is_not_used(tmp_path: Path) -> None:
    path = tmp_path / "pair.state"
    other = PairState(PairIdentity("/elsewhere", "/src"), SOURCE_ROOT, DESTINATION_ROOT)
    AncestorStore(path).save(other)
    assert "/elsewhere -> /src" in unusable(path, StateProblem.OTHER_PAIR)


def test_a_recreated_root_changes_its_identity(tmp_path: Path) -> None:
    source, destination = tmp_path / "source", tmp_path / "destination"
    source.mkdir()
    destination.mkdir()
    before = (root_identity(source), root_identity(destination))
    path = tmp_path / "pair.state"
    store = AncestorStore(path)
    store.save(PairState(PAIR, *before))
    assert isinstance(store.load(PAIR, *before), PairState)
    holder = tmp_path / "holder"  # keeps the old inode busy so the new directory cannot reuse it
    destination.rename(holder)
    destination.mkdir()
    after = (root_identity(source), root_identity(destination))
    state = AncestorStore(path).load(PAIR, *after)
    assert isinstance(state, Unusable) and state.problem is StateProblem.ROOT_CHANGED
    assert "the destination root changed identity" in state.reason
    shutil.rmtree(holder)


def test_the_state_file_is_never_inside_a_root(tmp_path: Path) -> None:
    source, destination = tmp_path / "src.mounted", tmp_path / "src"
    pair = PairIdentity(str(source), str(destination))
    for inside in (destination / ".pylsyncd", source, source / "a" / "b"):
        with pytest.raises(ConfigError) as error:
            state_path(inside, pair)
        message = str(error.value)
        assert f"STATE_DIR={inside}" in message and "\n" not in message
    outside = state_path(tmp_path / "state", pair)
    assert outside.parent == tmp_path / "state" and outside.name.startswith("src-")
    other = state_path(tmp_path / "state", PairIdentity(str(source), str(tmp_path / "b" / "src")))
    assert other != outside


def test_a_directorys_known_subtree_is_listed_and_kept_up_to_date(tmp_path: Path) -> None:
    path = tmp_path / "pair.state"
    store = AncestorStore(path)
    store.save(new_state(sample_entries()))
    state = loaded(path)
    assert sorted(state.entries.within("d")) == ["d", "d/hashed", "d/link"]
    assert sorted(state.entries.within("")) == sorted(sample_entries())
    entry = Ancestor(Entry(Kind.FILE, 1, 1), 1, 2)
    store.append(state, [Record("d/new", entry), Record("d/link", None)])
    state.entries["d/deep"] = Ancestor(Entry(Kind.DIR), 3, 4)
    state.entries["d/deep/x"] = entry
    del state.entries["d/hashed"]
    assert sorted(state.entries.within("d")) == ["d", "d/deep", "d/deep/x", "d/new"]
    assert state.entries.within("d/deep/x") == ["d/deep/x"]
    assert state.entries.within("absent") == []
