"""The status file, `pylsyncd health` / `status`, and PUID/PGID ownership in destinations."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import DaemonPool, clean_environment, daemon_args, wait_for_mirror, wait_until
from pylsyncd.config import ConfigError, load_config
from pylsyncd.status import (
    STALE_AFTER,
    DaemonStatus,
    PairState,
    PairStatus,
    describe_status,
    health_problems,
    read_status,
    write_status,
)

NOW = 1_800_000_000.0


def live_pair(**changes: object) -> PairStatus:
    fields: dict[str, object] = {
        "source": "/src",
        "destination": "/dst",
        "state": PairState.LIVE,
        "initial_sync_done": True,
    }
    fields.update(changes)
    return PairStatus(**fields)  # type: ignore[arg-type]


def daemon_status(
    *pairs: PairStatus, updated_at: float = NOW, pid: int | None = None
) -> DaemonStatus:
    return DaemonStatus(os.getpid() if pid is None else pid, NOW - 100, updated_at, pairs)


def pylsyncd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pylsyncd", *args],
        capture_output=True,
        text=True,
        env={**clean_environment(), **(env or {})},
        timeout=30,
    )


# --- health, decided from a status ---------------------------------------------------------


def test_every_pair_live_is_healthy() -> None:
    assert health_problems(daemon_status(live_pair(), live_pair(source="/b")), NOW, 60) == []


def test_a_pair_still_in_its_initial_sync_is_not_healthy() -> None:
    pair = live_pair(state=PairState.INITIAL_SYNC, initial_sync_done=False)
    assert health_problems(daemon_status(live_pair(), pair), NOW, 60) == [
        "/src -> /dst: initial sync not done yet"
    ]


def test_a_pair_failing_longer_than_the_threshold_is_not_healthy() -> None:
    failing = live_pair(state=PairState.FAILING, failing_since=NOW - 61, last_error="No space")
    problems = health_problems(daemon_status(failing), NOW, 60)
    assert problems == ["/src -> /dst: failing for 61 s: No space"]


def test_a_pair_failing_for_less_than_the_threshold_is_still_healthy() -> None:
    failing = live_pair(state=PairState.FAILING, failing_since=NOW - 59, last_error="No space")
    assert health_problems(daemon_status(failing), NOW, 60) == []


def test_a_target_lagging_longer_than_the_threshold_is_not_healthy() -> None:
    # Live and not failing, yet its oldest change has waited 61 s: a slow destination.
    slow = live_pair(destination="/slow", oldest_pending_at=NOW - 61, pending_events=3)
    keeping_up = live_pair(oldest_pending_at=NOW - 59)
    problems = health_problems(daemon_status(keeping_up, slow), NOW, 60)
    assert problems == ["/src -> /slow: lagging: its oldest change not applied waits for 61 s"]


def test_the_status_shows_each_targets_lag() -> None:
    text = describe_status(daemon_status(live_pair(oldest_pending_at=NOW - 5), live_pair()), NOW)
    assert text.count("  lag:            5 s") == 1


def test_a_status_not_rewritten_for_long_means_a_hung_daemon() -> None:
    status = daemon_status(live_pair(), updated_at=NOW - STALE_AFTER - 1)
    assert health_problems(status, NOW, 60) == [
        f"the daemon has not updated its status for {STALE_AFTER + 1:.0f} s"
    ]


def test_a_status_whose_daemon_is_gone_is_not_healthy() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert health_problems(daemon_status(live_pair(), pid=gone.pid), NOW, 60) == [
        f"the daemon (pid {gone.pid}) is not running"
    ]


def test_the_status_file_round_trips(tmp_path: Path) -> None:
    status = daemon_status(
        live_pair(last_batch_at=NOW - 1, last_batch_changes=3, last_error="x", watch="poll")
    )
    write_status(str(tmp_path / "status.json"), status)
    assert read_status(str(tmp_path / "status.json")) == status
    assert os.listdir(tmp_path) == ["status.json"]  # the temporary file was renamed away


def test_a_status_file_without_the_watch_reads_as_unknown(tmp_path: Path) -> None:
    # Written by a daemon from before the field existed: still readable, the watch left blank.
    write_status(str(tmp_path / "status.json"), daemon_status(live_pair()))
    document = json.loads((tmp_path / "status.json").read_text())
    del document["pairs"][0]["watch"]
    (tmp_path / "status.json").write_text(json.dumps(document))
    assert read_status(str(tmp_path / "status.json")).pairs[0].watch == ""


def test_status_shows_what_the_hybrid_learned() -> None:
    pair = live_pair(watch="inotify+poll (mount does not forward events)")
    text = describe_status(daemon_status(pair), NOW)
    assert "  watch:          inotify+poll (mount does not forward events)" in text.splitlines()


# --- the commands ----------------------------------------------------------------------------


def test_health_without_a_status_file_setting_is_a_one_line_error() -> None:
    result = pylsyncd("health")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "STATUS_FILE" in result.stderr


def test_health_rejects_a_relative_status_file(tmp_path: Path) -> None:
    result = pylsyncd("health", "--status-file", "status.json")
    assert result.returncode == 2
    assert "--status-file='status.json' is not valid" in result.stderr


def test_health_before_the_daemon_wrote_anything_is_unhealthy(tmp_path: Path) -> None:
    result = pylsyncd("health", env={"STATUS_FILE": str(tmp_path / "status.json")})
    assert result.returncode == 1
    assert "no status file" in result.stdout


@pytest.fixture(params=["direct", "rsync"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_health_turns_healthy_after_the_initial_sync_and_unhealthy_after_stop(
    tmp_path: Path, daemons: DaemonPool, backend: str
) -> None:
    src, dst, status_file = tmp_path / "src", tmp_path / "dst", tmp_path / "run" / "status.json"
    src.mkdir()
    (src / "file").write_text("content")
    daemon = daemons.start(daemon_args(src, dst, backend, "--status-file", str(status_file)))
    env = {"STATUS_FILE": str(status_file)}
    wait_until(lambda: pylsyncd("health", env=env).returncode == 0, timeout=20)
    assert (dst / "file").read_text() == "content"  # healthy means the replica is complete

    (src / "new").write_text("more")
    wait_until(lambda: read_status(str(status_file)).pairs[0].last_batch_changes >= 1, timeout=20)
    shown = pylsyncd("status", env=env)
    assert shown.returncode == 0
    assert f"{src} -> {dst}: live" in shown.stdout and shown.stdout.endswith("healthy\n")
    assert "  watch:          inotify\n" in shown.stdout  # a local filesystem: inotify alone

    daemon.stop(signal.SIGTERM)
    assert read_status(str(status_file)).pairs[0].state is PairState.STOPPED
    result = pylsyncd("health", env=env)
    assert result.returncode == 1 and result.stdout.startswith("unhealthy:")


@pytest.fixture
def read_only_destination(tmp_path: Path) -> Iterator[Path]:
    """A destination on a tmpfs that the test can remount read-only: a real write failure."""
    target = tmp_path / "dst"
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_a_failing_pair_shows_in_the_status_and_health_until_it_recovers(
    tmp_path: Path, daemons: DaemonPool, read_only_destination: Path
) -> None:
    src, dst, status_file = tmp_path / "src", read_only_destination, tmp_path / "status.json"
    src.mkdir()
    daemon = daemons.start(daemon_args(src, dst, "direct", "--status-file", str(status_file)))
    daemon.wait_ready()
    subprocess.run(["mount", "-o", "remount,ro", str(dst)], check=True)
    (src / "blocked").write_text("waits for a writable destination")

    def pair() -> PairStatus:
        return read_status(str(status_file)).pairs[0]

    wait_until(lambda: pair().state is PairState.FAILING, timeout=20)
    assert "Read-only file system" in (pair().last_error or "")
    health = ["health", "--status-file", str(status_file), "--failing-for", "0.1"]
    wait_until(lambda: pylsyncd(*health).returncode == 1, timeout=20)
    assert "failing for" in pylsyncd(*health).stdout

    subprocess.run(["mount", "-o", "remount,rw", str(dst)], check=True)
    wait_until(lambda: pair().state is PairState.LIVE, timeout=60)
    assert (dst / "blocked").read_text() == "waits for a writable destination"
    assert pylsyncd(*health).returncode == 0


# --- PUID / PGID ---------------------------------------------------------------------------


def owners(root: Path) -> dict[str, tuple[int, int]]:
    """(uid, gid) of the root and every entry below it, symlinks not followed."""
    found = {".": (root.lstat().st_uid, root.lstat().st_gid)}
    for directory, names, files in os.walk(root):
        for name in names + files:
            path = Path(directory, name)
            found[str(path.relative_to(root))] = (path.lstat().st_uid, path.lstat().st_gid)
    return found


def test_puid_and_pgid_own_everything_written_into_the_destination(
    tmp_path: Path, daemons: DaemonPool, backend: str
) -> None:
    src, dst = tmp_path / "src", tmp_path / "made" / "dst"
    (src / "dir").mkdir(parents=True)
    (src / "dir" / "initial").write_text("from the initial sync")
    os.symlink("dir/initial", src / "link")
    daemon = daemons.start(daemon_args(src, dst, backend, "--puid", "4321", "--pgid", "4322"))
    daemon.wait_ready()
    (src / "live").mkdir()
    (src / "live" / "file").write_text("written while live")
    wait_for_mirror(src, dst, daemon=daemon)
    assert set(owners(dst).values()) == {(4321, 4322)}, owners(dst)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (["--puid", "abc"], "--puid='abc' is not valid"),
        (["--pgid", "-1"], "--pgid='-1' is not valid"),
        (["--puid", str(2**32)], f"--puid='{2**32}' is not valid"),
    ],
)
def test_bad_puid_or_pgid_is_a_one_line_error(
    tmp_path: Path, setting: list[str], expected: str
) -> None:
    result = pylsyncd("check", str(tmp_path), str(tmp_path / "dst"), *setting)
    assert result.returncode == 2
    assert expected in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "dst").exists()


def test_puid_given_to_a_daemon_that_is_not_root_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The suite runs as root; the check asks the kernel who we are, so ask it to answer 1000.
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getegid", lambda: 1000)
    monkeypatch.setattr(os, "getgroups", lambda: [1000])
    (tmp_path / "src").mkdir()
    given = {"SOURCES": str(tmp_path / "src"), "DESTINATIONS": str(tmp_path / "dst")}
    with pytest.raises(ConfigError, match=r"^PUID=0 PGID=5: only root can give files"):
        load_config(None, {**given, "PUID": "0", "PGID": "5"})
    assert load_config(None, {**given, "PUID": "1000", "PGID": "1000"}).puid == 1000


def test_status_file_json_names_each_field(tmp_path: Path) -> None:
    write_status(str(tmp_path / "s.json"), daemon_status(live_pair()))
    document = json.loads((tmp_path / "s.json").read_text())
    assert set(document["pairs"][0]) == {
        "source", "destination", "state", "initial_sync_done", "pending_events",
        "last_batch_at", "last_batch_changes", "last_batch_ms", "last_error", "failing_since",
        "watch", "changes_total", "bytes_total", "failures_total", "oldest_pending_at",
        "sync_started_at", "sync_entries", "sync_total", "conflicts_total", "open_conflicts",
    }  # fmt: skip
    assert document["pairs"][0]["state"] == "live"
