"""The health marker beside the status file, and the image's HEALTHCHECK that reads it.

The probe is the image's own script (docker/healthcheck.sh, the Dockerfile's HEALTHCHECK), run
against a real daemon's marker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import DaemonPool, daemon_args, wait_until
from processes import command_name, descendants
from pylsyncd.status import (
    STALE_AFTER,
    PairState,
    PairStatus,
    StatusFile,
    health_marker,
    probe_flag,
)

REPO = Path(__file__).resolve().parent.parent


PROBE = REPO / "docker" / "healthcheck.sh"


def test_the_dockerfile_runs_the_probe_script() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "COPY docker/healthcheck.sh /usr/local/bin/pylsyncd-healthcheck\n" in dockerfile
    assert 'CMD ["/usr/local/bin/pylsyncd-healthcheck"]' in dockerfile


def start_probe(status_file: Path, watch_for: int = 600, step: int = 1) -> subprocess.Popen[str]:
    """The image's probe as Docker runs it, with the image's STATUS_FILE; it watches a healthy
    marker for `watch_for` seconds, looking every `step`, before it answers again."""
    return subprocess.Popen(
        [str(PROBE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={
            "PATH": os.environ["PATH"],
            "STATUS_FILE": str(status_file),
            "PROBE_WATCH_FOR": str(watch_for),
            "PROBE_STEP": str(step),
        },
    )


def probe(status_file: Path, **options: int) -> tuple[int, str]:
    """One probe to its end: exit status and output."""
    process = start_probe(status_file, **options)
    output, _ = process.communicate(timeout=30)
    return process.returncode, output


def pair(**changes: object) -> PairStatus:
    fields: dict[str, object] = {
        "source": "/src",
        "destination": "/dst",
        "state": PairState.LIVE,
        "initial_sync_done": True,
    }
    fields.update(changes)
    return PairStatus(**fields)  # type: ignore[arg-type]


def test_the_marker_follows_the_health_rules(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    current = [pair(state=PairState.INITIAL_SYNC, initial_sync_done=False)]
    now = [time.time()]
    status = StatusFile(str(path), lambda: tuple(current), failing_for=60, clock=lambda: now[0])
    marker = Path(health_marker(str(path)))

    status.update()
    assert path.exists() and not marker.exists(), "no marker before the initial sync is done"
    current[0] = pair()
    status.update()
    assert marker.exists()
    # Failing, but for less than the threshold: still healthy.
    current[0] = pair(state=PairState.FAILING, failing_since=now[0] - 10, last_error="x")
    status.update()
    assert marker.exists()
    # The same status, 55 s later: failing for 65 s now, with nothing in it changed.
    now[0] += 55
    status.update()
    assert not marker.exists(), "failing longer than the threshold removes the marker"
    current[0] = pair()
    status.update()
    assert marker.exists()
    current[0] = pair(state=PairState.STOPPED)
    status.update()
    assert not marker.exists(), "a stopped pair removes the marker"


def test_an_earlier_daemons_marker_is_removed_at_start(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    marker = Path(health_marker(str(path)))
    marker.touch()
    StatusFile(str(path), lambda: (pair(state=PairState.INITIAL_SYNC, initial_sync_done=False),))
    assert not marker.exists()


@pytest.fixture
def status_file(tmp_path: Path, daemons: DaemonPool) -> Path:
    """A live daemon's status file (src holds a file), before its first probe."""
    src, dst, status_file = tmp_path / "src", tmp_path / "dst", tmp_path / "run" / "status.json"
    src.mkdir()
    (src / "file").write_text("content")
    assert probe(status_file)[0] == 1, "no daemon yet: unhealthy"
    daemons.start(daemon_args(src, dst, "direct", "--status-file", str(status_file)))
    return status_file


def test_the_first_healthy_answer_is_at_once_then_a_probe_watches_the_marker(
    status_file: Path, daemons: DaemonPool
) -> None:
    # Each probe before the marker is fresh fails at once; the first after it passes at once.
    wait_until(lambda: probe(status_file, watch_for=600)[0] == 0, timeout=20)
    assert (status_file.parent.parent / "dst" / "file").read_text() == "content"
    # The next probe does not answer while the marker stays fresh...
    watching = start_probe(status_file, watch_for=600)
    with pytest.raises(subprocess.TimeoutExpired):
        watching.wait(timeout=1)
    # ...and says "unhealthy" as soon as it is stale: a hung daemon (stopped for real, its
    # marker aged rather than waiting out 30 s) no longer touches it.
    marker = Path(health_marker(str(status_file)))
    daemons.daemons[0].send(signal.SIGSTOP)
    try:
        old = time.time() - STALE_AFTER - 5
        os.utime(marker, (old, old))
        output, _ = watching.communicate(timeout=10)
        assert watching.returncode == 1 and output.startswith("unhealthy"), output
    finally:
        daemons.daemons[0].send(signal.SIGCONT)
    assert not Path(probe_flag(str(status_file))).exists()
    # Healthy again once the heartbeat touches the marker: at once, the flag being gone.
    wait_until(lambda: probe(status_file, watch_for=600)[0] == 0, timeout=20)


def test_a_watching_probe_fails_when_the_daemon_stops_and_a_new_one_answers_at_once(
    status_file: Path, daemons: DaemonPool, tmp_path: Path
) -> None:
    wait_until(lambda: probe(status_file)[0] == 0, timeout=20)
    watching = start_probe(status_file)
    # Stopped once the probe watches (its `sleep` runs), so it is the watch that sees the stop.
    wait_until(
        lambda: any(command_name(pid) == "sleep" for pid in descendants(watching.pid)),
        timeout=10,
        message="the probe never started watching the marker",
    )
    daemons.daemons[0].stop(signal.SIGTERM)  # the stopped pairs remove marker and flag
    output, _ = watching.communicate(timeout=10)
    assert watching.returncode == 1 and output.startswith("unhealthy")
    assert not Path(health_marker(str(status_file))).exists()
    # A daemon started again: its first healthy answer is not held back by the last one's.
    src, dst = tmp_path / "src", tmp_path / "dst"
    daemons.start(daemon_args(src, dst, "direct", "--status-file", str(status_file)))
    wait_until(lambda: probe(status_file)[0] == 0, timeout=20)


def test_a_flag_left_behind_is_removed_with_the_marker_at_start(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    Path(health_marker(str(path))).touch()
    Path(probe_flag(str(path))).touch()
    StatusFile(str(path), lambda: ())
    assert not Path(probe_flag(str(path))).exists()
