"""The health marker beside the status file, and the image's HEALTHCHECK command that reads it.

The probe is the Dockerfile's own command line, run with `sh -c` as Docker runs a shell-form
HEALTHCHECK, against a real daemon's marker.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from helpers import DaemonPool, daemon_args, wait_until
from pylsyncd.status import (
    STALE_AFTER,
    PairState,
    PairStatus,
    StatusFile,
    health_marker,
)

REPO = Path(__file__).resolve().parent.parent


def healthcheck_command() -> str:
    """The shell command of the Dockerfile's HEALTHCHECK, continuation lines joined."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK .*? CMD (.*)$", text, re.MULTILINE)
    assert match, "the Dockerfile has no shell-form HEALTHCHECK"
    return match.group(1)


def probe(status_file: Path) -> subprocess.CompletedProcess[str]:
    """Run the image's probe as Docker does, with the image's STATUS_FILE."""
    return subprocess.run(
        ["sh", "-c", healthcheck_command()],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "STATUS_FILE": str(status_file)},
        timeout=10,
        check=False,
    )


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


def test_the_image_probe_passes_once_synced_fails_when_stale_and_after_stop(
    tmp_path: Path, daemons: DaemonPool
) -> None:
    src, dst, status_file = tmp_path / "src", tmp_path / "dst", tmp_path / "run" / "status.json"
    src.mkdir()
    (src / "file").write_text("content")
    assert probe(status_file).returncode == 1, "no daemon yet: unhealthy"
    daemon = daemons.start(daemon_args(src, dst, "direct", "--status-file", str(status_file)))
    wait_until(lambda: probe(status_file).returncode == 0, timeout=20)
    assert (dst / "file").read_text() == "content"  # healthy means the replica is complete

    # A hung daemon stops touching its marker: once it is older than STALE_AFTER, the probe
    # fails. Stopped for real, then the marker aged rather than waiting out 30 s.
    marker = Path(health_marker(str(status_file)))
    daemon.send(signal.SIGSTOP)
    try:
        old = time.time() - STALE_AFTER - 5
        os.utime(marker, (old, old))
        result = probe(status_file)
        assert result.returncode == 1 and result.stdout.startswith("unhealthy")
    finally:
        daemon.send(signal.SIGCONT)
    wait_until(lambda: probe(status_file).returncode == 0, timeout=20)  # the heartbeat touches it

    daemon.stop(signal.SIGTERM)
    assert not marker.exists()
    assert probe(status_file).returncode == 1
