"""Fan-out: one source, several destinations, one watch; a dead destination holds up no other.

On the real daemon: three remote destinations on three real sshds (127.0.0.1) and three local
ones on tmpfs mounts. One of the three goes away (its sshd stopped, its tmpfs made read-only);
every edit made meanwhile reaches the other two, the one that is away is `failing` with the
error said once, and it converges when it is back, from its queue or, past QUEUE_LIMIT, with a
full comparison.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from helpers import DaemonPool, run_cli, wait_for_mirror, wait_until, write_file
from pylsyncd.coalesce import Batch, Change, ChangeKind, Move
from pylsyncd.config import Backend, PairConfig, WatchMode, load_config
from pylsyncd.pair.fan_out import grouped
from pylsyncd.pair.observer import ResyncReason
from pylsyncd.pair.target_queue import Queued, TargetQueue
from sshd import Sshd
from test_metrics import scrape, value

REFUSED = r"ssh: connect to host 127\.0\.0\.1 port \d+: Connection refused"


def _config_file(tmp_path: Path, pairs: list[dict[str, object]]) -> Path:
    """A TOML file with one [[pair]] table per dict (JSON's strings, numbers and arrays are
    TOML's too)."""
    lines = []
    for pair in pairs:
        lines.append("[[pair]]")
        for key, given in pair.items():
            lines.append(f"{key} = {json.dumps(given)}")
    path = tmp_path / "pylsyncd.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _daemon_args(config: Path, status: Path) -> list[str]:
    return [
        "--config", str(config), "--delay", "0", "--log-level", "debug",
        "--status-file", str(status),
    ]  # fmt: skip


def _target(status: Path, destination: str) -> dict[str, object]:
    """The status file's entry for one destination; empty before the file is written."""
    try:
        pairs = json.loads(status.read_text())["pairs"]
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return next((dict(pair) for pair in pairs if pair["destination"] == destination), {})


def _unhealthy(status: Path) -> subprocess.CompletedProcess[str] | None:
    """`pylsyncd health --failing-for 1`, when it says unhealthy."""
    result = run_cli(
        "health", "--status-file", str(status), "--failing-for", "1", cwd=status.parent
    )
    return result if result.returncode == 1 else None


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Sshd]]:
    """Three running sshds, each with its own keys and port."""
    started = [Sshd(tmp_path / f"sshd{i}") for i in range(3)]
    try:
        for server in started:
            server.start()
        yield started
    finally:
        for server in started:
            server.stop()


class Tmpfs:
    """tmpfs mounts made by one test, unmounted at its end whatever happened."""

    def __init__(self) -> None:
        self.mounted: list[Path] = []

    def mount(self, where: Path) -> None:
        where.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(where)], check=True
        )
        self.mounted.append(where)

    def remount(self, where: Path, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(where)], check=True)

    def close(self) -> None:
        for where in reversed(self.mounted):
            subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def tmpfs() -> Iterator[Tmpfs]:
    mounts = Tmpfs()
    try:
        yield mounts
    finally:
        mounts.close()


def test_a_dead_remote_target_holds_up_no_other_and_catches_up(
    daemons: DaemonPool, tmp_path: Path, servers: list[Sshd]
) -> None:
    src = tmp_path / "src"
    write_file(src / "before", "before")
    dsts = [tmp_path / f"dst{i}" for i in range(3)]
    targets = [f"ssh://root@127.0.0.1:{s.port}{d}" for s, d in zip(servers, dsts, strict=True)]
    config = _config_file(
        tmp_path,
        [
            {"source": str(src), "destination": target, "ssh_args": shlex.split(server.ssh_args)}
            for target, server in zip(targets, servers, strict=True)
        ],
    )
    status = tmp_path / "status.json"
    daemon = daemons.start(_daemon_args(config, status))
    daemon.wait_ready(timeout=60)
    daemon.wait_for_log(rf"{src}: one watch for 3 destinations")
    for dst in dsts:
        wait_for_mirror(src, dst, daemon=daemon)

    servers[2].stop()
    for i in range(5):
        write_file(src / f"edit{i}", f"while the third is away {i}")
        for dst in dsts[:2]:
            wait_for_mirror(src, dst, daemon=daemon)
    # ssh's own line, once: later attempts (each one ssh's own try) back off silently.
    wait_until(lambda: _target(status, targets[2]).get("state") == "failing", 20)
    wait_until(lambda: re.fullmatch(REFUSED, str(_target(status, targets[2])["last_error"])), 20)
    wait_until(lambda: len(re.findall(f"no master connection.*{REFUSED}", daemon.log_text())) >= 3)
    said = [line for line in daemon.lines if " ERROR " in line and targets[2] in line]
    assert len(said) == 1, said
    assert re.search(REFUSED, said[0]), said
    assert all(_target(status, t)["state"] == "live" for t in targets[:2])
    assert _target(status, targets[2])["oldest_pending_at"] is not None  # its lag shows
    # Once the live two are idle (a batch in flight lags too), only the dead one is unhealthy.
    wait_until(lambda: all(_target(status, t)["oldest_pending_at"] is None for t in targets[:2]))
    health = wait_until(lambda: _unhealthy(status), 20, interval=0.5)
    assert f"{targets[2]}: failing for" in health.stdout, health
    assert all(target not in health.stdout for target in targets[:2]), health.stdout

    servers[2].start()
    wait_for_mirror(src, dsts[2], timeout=60, daemon=daemon)
    wait_until(lambda: _target(status, targets[2]).get("state") == "live", 20)
    assert _target(status, targets[2])["oldest_pending_at"] is None


def test_a_read_only_local_target_holds_up_no_other_and_catches_up(
    daemons: DaemonPool, tmp_path: Path, tmpfs: Tmpfs
) -> None:
    src = tmp_path / "src"
    write_file(src / "before", "before")
    dsts = [tmp_path / f"dst{i}" for i in range(3)]
    for dst in dsts:
        tmpfs.mount(dst)
    config = _config_file(tmp_path, [{"source": str(src), "destination": str(d)} for d in dsts])
    status = tmp_path / "status.json"
    daemon = daemons.start([*_daemon_args(config, status), "--metrics-addr", "127.0.0.1:0"])
    port = int(daemon.wait_for_log(r"metrics on http://127\.0\.0\.1:(\d+)/metrics").group(1))
    daemon.wait_ready()
    for dst in dsts:
        wait_for_mirror(src, dst, daemon=daemon)

    tmpfs.remount(dsts[1], "ro")
    for i in range(5):
        write_file(src / "sub" / f"edit{i}", f"while the second is read-only {i}")
        for dst in (dsts[0], dsts[2]):
            wait_for_mirror(src, dst, daemon=daemon)
    wait_until(lambda: _target(status, str(dsts[1])).get("state") == "failing", 20)
    assert "Read-only file system" in str(_target(status, str(dsts[1]))["last_error"])
    wait_until(lambda: len(re.findall(rf"{dsts[1]}: .*failed from", daemon.log_text())) >= 3)
    said = [line for line in daemon.lines if " ERROR " in line and str(dsts[1]) in line]
    assert len(said) == 1, said
    # Each destination's own series: the read-only one's errors are its own.
    samples = scrape(port)
    names = [f"{src} -> {dst}" for dst in dsts]
    errors = [value(samples, "pylsyncd_errors_total", pair=n, kind="apply") for n in names]
    assert errors[0] == errors[2] == 0 and errors[1] >= 3, errors
    applied = [value(samples, "pylsyncd_batches_total", pair=n, result="applied") for n in names]
    assert applied[0] >= 5 and applied[2] >= 5, applied

    tmpfs.remount(dsts[1], "rw")
    wait_for_mirror(src, dsts[1], daemon=daemon)
    wait_until(lambda: _target(status, str(dsts[1])).get("state") == "live", 20)
    assert not re.search(rf"{dsts[1]}: .*comparing the whole tree", daemon.log_text())


def test_past_queue_limit_a_target_catches_up_with_a_full_comparison(
    daemons: DaemonPool, tmp_path: Path, tmpfs: Tmpfs
) -> None:
    src = tmp_path / "src"
    write_file(src / "before", "before")
    live, away = tmp_path / "live", tmp_path / "away"
    tmpfs.mount(away)
    config = _config_file(
        tmp_path,
        [
            {"source": str(src), "destination": str(live)},
            {"source": str(src), "destination": str(away), "queue_limit": 5},
        ],
    )
    status = tmp_path / "status.json"
    daemon = daemons.start(_daemon_args(config, status))
    daemon.wait_ready()
    wait_for_mirror(src, away, daemon=daemon)

    tmpfs.remount(away, "ro")
    for i in range(12):  # each its own batch: the live target has them one by one
        write_file(src / f"edit{i}", str(i))
        wait_for_mirror(src, live, daemon=daemon)
    (src / "before").unlink()
    wait_for_mirror(src, live, daemon=daemon)
    daemon.wait_for_log(rf"{away}: more than QUEUE_LIMIT=5 changes waited: comparing")
    tmpfs.remount(away, "rw")
    wait_for_mirror(src, away, daemon=daemon)
    wait_until(lambda: _target(status, str(away)).get("state") == "live", 20)
    assert f"{live}: more than QUEUE_LIMIT" not in daemon.log_text()


# -- which pairs share a watch, and the queue alone --------------------------------------------


def test_a_source_repeated_in_sources_shares_one_watch(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    environ = {
        "SOURCES": f"{tmp_path}/src:{tmp_path}/src",
        "DESTINATIONS": f"{tmp_path}/a:{tmp_path}/b",
    }
    config = load_config(None, environ)
    assert [(p.source, p.destination) for p in config.pairs] == [
        (f"{tmp_path}/src", f"{tmp_path}/a"),
        (f"{tmp_path}/src", f"{tmp_path}/b"),
    ]
    assert len(grouped(config.pairs)) == 1


def test_pairs_share_a_watch_only_with_the_same_source_side_settings() -> None:
    base = PairConfig(source="/s", destination="/a")
    configs = [
        base,
        replace(base, destination="/b", backend=Backend.RSYNC, init=False, queue_limit=9),
        replace(base, destination="/c", excludes=("*.tmp",)),
        replace(base, destination="/d", delay=1.0),
        replace(base, destination="/e", watch=WatchMode.POLL),
        replace(base, source="/t", destination="/f"),
        replace(base, destination="/g", verify_interval=60.0),
    ]
    assert [[pair.destination for pair in group] for group in grouped(configs)] == [
        ["/a", "/b", "/g"],
        ["/c"],
        ["/d"],
        ["/e"],
        ["/f"],
    ]


def _changes(*paths: str) -> Batch:
    return Batch((), tuple(Change(path, ChangeKind.SYNC) for path in paths))


def test_a_queue_past_its_limit_is_dropped_for_a_full_comparison() -> None:
    queue = TargetQueue(limit=3)
    assert queue.put(Queued(_changes("a", "b"), 2, 1.0))
    assert not queue.put(Queued(_changes("c", "d"), 2, 2.0))
    assert queue.dropped == 1
    assert queue.put(Queued(_changes("e"), 1, 3.0))
    taken = queue.take()
    assert taken.reason is ResyncReason.QUEUE_DROPPED
    assert taken.gathered.batch == Batch((), (Change("e", ChangeKind.SYNC),), full_resync=True)
    assert taken.gathered.since == 1.0  # its lag runs from the oldest change dropped


def test_failed_changes_count_towards_the_limit() -> None:
    queue = TargetQueue(limit=3)
    queue.put(Queued(_changes("a", "b"), 2, 1.0))
    failed = queue.take().gathered
    queue.requeue(failed.batch, failed.since)
    assert len(queue) == 2
    queue.put(Queued(_changes("c", "d"), 2, 2.0))
    assert queue.dropped == 1
    assert queue.take().reason is ResyncReason.QUEUE_DROPPED


def test_a_batch_with_renames_goes_alone_and_a_repeated_batch_is_queued_once() -> None:
    queue = TargetQueue(limit=100)
    renamed = Batch((Move("old", "new", is_dir=False),), ())
    queue.put(Queued(_changes("a"), 1, 1.0))
    queue.put(Queued(_changes("a"), 1, 2.0))  # the same save again
    queue.put(Queued(renamed, 2, 3.0))
    queue.put(Queued(_changes("b"), 1, 4.0))
    queue.put(Queued(_changes("c"), 1, 5.0))
    assert queue.take().gathered.batch == _changes("a")
    assert queue.take().gathered.batch == renamed  # replayed as a rename, not merged away
    assert queue.take().gathered.batch == _changes("b", "c")
    assert len(queue) == 0 and queue.oldest() == 4.0  # the batch in flight still lags
    queue.applied()
    assert queue.oldest() is None
