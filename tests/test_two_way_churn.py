"""Seeded random churn on both sides of a two-way pair at once; once quiet, nothing is lost.

One thread interleaves operations on both roots while the daemon runs (the daemon's reads and
writes race them, which is what the compare-and-swap is for): new files, same-size rewrites,
renames over files, deletions, chmods, symlinks, file/directory swaps. Once quiet:
- both sides hold the same tree (conflict copies included);
- for every path, when the last operation on it (on either side) wrote a version (a new file, a
  rewrite, a symlink), that version exists: at the path, or in a conflict copy of it. Nothing
  later could have replaced it. (A rename is not a write: what it moves may be a version this
  side got from the other, which the other then replaced.)

Hard links are left out: two-way copies each name as a separate file, and a write through one
name raises no event for the others (README, "Two-way sync", limits).

The same churn also runs from the first start on, while a union merge copies the trees only one
side holds (writes into them on both sides race the copies). Three seeds of 2 s each run in the
suite; at scale:
`TWO_WAY_CHURN_SEEDS=1-100 TWO_WAY_CHURN_SECONDS=10 ./dev test tests/test_two_way_churn.py`.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import Daemon, DaemonPool, diff_snapshots, tree_snapshot, wait_until

SECONDS = float(os.environ.get("TWO_WAY_CHURN_SECONDS", "2"))
DIRECTORIES = ("d0", "d1", "d2")  # never removed: the versions in them are checked
NAMES = tuple(f"{d}/f{i}" for d in DIRECTORIES for i in range(6))
SWAPS = tuple(f"swap/s{i}" for i in range(4))  # turned into files and directories


def seeds() -> list[int]:
    spec = os.environ.get("TWO_WAY_CHURN_SEEDS", "1-3")
    first, _, last = spec.partition("-")
    return list(range(int(first), int(last or first) + 1))


@dataclass
class Churn:
    """The operations of one seed, and the last version each path was given (None: removed)."""

    roots: tuple[Path, Path]
    rng: random.Random
    seed: int
    counter: int = 0
    last: dict[str, str | None] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    names: tuple[str, ...] = NAMES

    def version(self, size: int | None = None) -> str:
        self.counter += 1
        text = f"seed {self.seed} version {self.counter:06d};"
        return text if size is None else (text * (size // len(text) + 1))[:size]

    def step(self) -> None:
        root = self.rng.choice(self.roots)
        side = root.name
        path, other = self.rng.choice(self.names), self.rng.choice(self.names)
        target = root / path
        kind = self.rng.choice(
            ("write", "write", "rewrite", "delete", "rename", "chmod", "symlink", "swap")
        )
        try:
            if kind == "write":
                content = self.version() * self.rng.randint(1, 40)
                _replace_with_file(target, content)
                self.last[path] = content
            elif kind == "rewrite" and target.is_file() and not target.is_symlink():
                size = target.stat().st_size
                content = self.version(max(size, 1))
                _write(target, content, 0)  # in place, same size
                self.last[path] = content
            elif kind == "delete" and (target.is_file() or target.is_symlink()):
                target.unlink()
                self.last[path] = None
            elif kind == "rename" and (target.is_file() or target.is_symlink()):
                if other != path:
                    # Not a write: the version moved may be one this side got from the other,
                    # which the other then replaced (renamed away and back is no change at all).
                    os.replace(target, root / other)
                    self.last[other] = self.last[path] = None
            elif kind == "chmod" and target.is_file() and not target.is_symlink():
                os.chmod(target, self.rng.choice((0o600, 0o644, 0o640, 0o755)))
            elif kind == "symlink":
                link = f"link-{self.version()}"
                if target.is_symlink() or target.is_file():
                    target.unlink()
                target.symlink_to(link)
                self.last[path] = "->" + link
            elif kind == "swap":
                self._swap(root)
            else:
                return
        except OSError:
            return  # the daemon changed the tree under this operation: a race, not a failure
        self.log.append(f"{side}: {kind} {path}: {str(self.last.get(path))[:30]!r}")
        if kind == "rename":
            self.log.append(f"{side}: renamed onto {other}")

    def _swap(self, root: Path) -> None:
        target = root / self.rng.choice(SWAPS)
        target.parent.mkdir(exist_ok=True)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
            target.write_text(self.version())
        else:
            target.unlink(missing_ok=True)
            target.mkdir()
            (target / "inside").write_text(self.version())


def _replace_with_file(target: Path, content: str) -> None:
    if target.is_symlink():
        target.unlink()
    _write(target, content, os.O_CREAT | os.O_TRUNC)


def _write(target: Path, content: str, flags: int) -> None:
    """Write without following a symlink: the daemon may have put one there since the look."""
    fd = os.open(target, os.O_WRONLY | os.O_NOFOLLOW | flags, 0o644)
    try:
        os.write(fd, content.encode())
    finally:
        os.close(fd)


def _content(root: Path, path: str) -> str | None:
    full = root / path
    if full.is_symlink():
        return "->" + os.readlink(full)
    if full.is_file():
        return full.read_text()
    return None


def _view(root: Path) -> dict[str, object]:
    return {
        path: entry._replace(mtime_ns=0) if entry.kind == "dir" else entry
        for path, entry in tree_snapshot(root).items()
    }


@pytest.mark.parametrize("seed", seeds())
def test_two_sided_churn_loses_no_version(tmp_path: Path, daemons: DaemonPool, seed: int) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        for directory in DIRECTORIES:
            (root / directory).mkdir(parents=True)
    daemon = _start(tmp_path, daemons)
    daemon.wait_ready()
    _churn_then_check(daemon, Churn((a, b), random.Random(seed), seed))


@pytest.mark.parametrize("seed", seeds())
def test_churn_during_a_union_merge_of_one_sided_trees_loses_no_version(
    tmp_path: Path, daemons: DaemonPool, seed: int
) -> None:
    """The first start copies the trees only one side holds while both sides are churned,
    inside those trees too: writes into the originals being copied, and into the copies as
    they are written on the other side (while that side's new directories are not watched yet
    and their events are dropped). Once quiet, nothing is lost and both sides are equal."""
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        for directory in DIRECTORIES:
            (root / directory).mkdir(parents=True)
    one_sided = []
    for root, top in ((a, "only-a"), (b, "only-b")):
        for n in range(3):
            (root / top / f"d{n}").mkdir(parents=True)
            one_sided += [f"{top}/d{n}/f{i}" for i in range(6)]
            for i in range(6):
                (root / top / f"d{n}" / f"f{i}").write_text(f"{top} original {i}")
        filler = root / top / "filler"
        filler.mkdir()
        for i in range(2000):  # the copy lasts long enough for the churn to land in it
            (filler / f"k{i}").write_text(f"{top} {i}")
    churn = Churn((a, b), random.Random(seed), seed, names=NAMES + tuple(one_sided))
    daemon = _start(tmp_path, daemons)
    _churn_then_check(daemon, churn)  # from the spawn on: the merge runs meanwhile


def _start(tmp_path: Path, daemons: DaemonPool) -> Daemon:
    a, b = tmp_path / "a", tmp_path / "b"
    return daemons.start(
        [str(a), str(b), "--mode", "two-way", "--state-dir", str(tmp_path / "state"),
         "--delay", "0", "--log-level", os.environ.get("TWO_WAY_CHURN_LOG_LEVEL", "info")]
    )  # fmt: skip


def _churn_then_check(daemon: Daemon, churn: Churn) -> None:
    """Churn both sides for SECONDS, then wait for both to be equal, with every last version
    on disk (at its path or as a conflict copy of it)."""
    a, b = churn.roots
    seed = churn.seed
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        churn.step()
        if churn.rng.random() < 0.2:
            time.sleep(churn.rng.random() * 0.01)  # let a batch run now and then
    last_diff = ""

    def equal() -> bool:
        nonlocal last_diff
        try:
            left, right = _view(a), _view(b)
        except OSError as error:
            last_diff = str(error)
            return False
        last_diff = diff_snapshots(left, right)  # type: ignore[arg-type]
        differing = {
            path for path in left.keys() | right.keys() if left.get(path) != right.get(path)
        }
        last_diff += "\n" + "\n".join(
            line
            for line in churn.log
            if any(f" {path}:" in line or line.endswith(f" {path}") for path in differing)
        )
        return left == right

    wait_until(
        equal,
        30,
        message=lambda: (
            f"seed {seed}: the sides differ:\n{last_diff}\n"
            + "\n".join(churn.log[-30:])
            + "\n"
            + daemon.report()
        ),
    )
    lost = []
    for path, version in churn.last.items():
        if version is None:
            continue
        directory, _, name = path.rpartition("/")
        kept = [_content(a, path)] + [
            _content(a, f"{directory}/{other}")
            for other in os.listdir(a / directory)
            if other.startswith(f"{name}.sync-conflict-")
        ]
        if version not in kept:
            lost.append(f"{path}: {version[:40]!r}, found {[k and k[:40] for k in kept]}")
            lost.extend(f"    {line}" for line in churn.log if f" {path}:" in line)
    assert not lost, f"seed {seed}: lost versions:\n" + "\n".join(lost) + "\n" + daemon.report()
    daemon.stop()
