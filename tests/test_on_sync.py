"""ON_SYNC: real commands (sh scripts that record their stdin and environment, sleep, one that
ignores TERM) run by a real daemon after its batches."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import DaemonPool, daemon_args, wait_for_mirror, wait_until, write_file
from test_metrics import scrape, value

# Records one run: its stdin (NUL-separated paths) in runs/N.paths, its environment in
# runs/N.env; then sleeps for $1 seconds, so batches that land meanwhile find it running.
RECORDER = """\
#!/bin/sh
runs="$RUNS"
n=$(ls "$runs" | grep -c '\\.env$')
cat > "$runs/$n.paths.partial"
env | grep '^PYLSYNCD_' | sort > "$runs/$n.env"
mv "$runs/$n.paths.partial" "$runs/$n.paths"
sleep "${1:-0}"
"""


def recorder(tmp_path: Path) -> tuple[Path, Path]:
    """The recording script and the directory of its runs."""
    script, runs = tmp_path / "record.sh", tmp_path / "runs"
    script.write_text(RECORDER)
    script.chmod(0o755)
    runs.mkdir()
    return script, runs


def run_paths(runs: Path) -> list[list[str]]:
    """Each finished recording's paths, in the order of the runs."""
    found = sorted(runs.glob("*.paths"), key=lambda path: int(path.name.split(".")[0]))
    return [[p for p in path.read_bytes().decode().split("\0") if p] for path in found]


def test_a_hundred_edits_in_50_ms_give_one_or_two_runs_holding_every_path(
    dirs: tuple[Path, Path], daemons: DaemonPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst = dirs
    script, runs = recorder(tmp_path)
    monkeypatch.setenv("RUNS", str(runs))  # the daemon passes its environment on to the command
    daemon = daemons.start(
        daemon_args(src, dst, "direct", "--delay", "0.02", f"--on-sync={script} 0.5")
    )
    daemon.wait_ready()
    # A hundred saves in a burst (well within 50 ms here): the first batch starts a run, which
    # sleeps 0.5 s; every later one merges into the one run queued behind it.
    for number in range(100):
        (src / f"file-{number:03}").write_text(f"{number}\n")
    names = {f"file-{number:03}" for number in range(100)}
    wait_until(lambda: {p for run in run_paths(runs) for p in run} >= names, timeout=20)
    wait_for_mirror(src, dst, daemon=daemon)
    recorded = run_paths(runs)
    assert 1 <= len(recorded) <= 2, recorded
    assert {p for run in recorded for p in run} == names
    environment = (runs / "0.env").read_text().splitlines()
    assert f"PYLSYNCD_SOURCE={src}" in environment
    assert f"PYLSYNCD_DESTINATION={dst}" in environment
    assert f"PYLSYNCD_CHANGED={len(recorded[0])}" in environment


def test_nothing_runs_before_the_initial_sync_ends_nor_for_it(
    tmp_path: Path, daemons: DaemonPool
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    for number in range(300):
        write_file(src / "tree" / f"{number % 10}" / f"file-{number}", "initial\n")
    script, runs = tmp_path / "count.sh", tmp_path / "runs"
    runs.mkdir()
    # Each run records how much of the replica it finds: all of it, if it comes after the sync.
    script.write_text(
        f'#!/bin/sh\nfind "$PYLSYNCD_DESTINATION/tree" -type f | wc -l >> {runs}/seen\n'
    )
    script.chmod(0o755)
    daemon = daemons.start(daemon_args(src, dst, "direct", f"--on-sync={script}"))
    (src / "early").write_text("written while the daemon starts")  # before or during the sync
    daemon.wait_ready()
    (src / "late").write_text("written once live")
    wait_until(lambda: (dst / "late").exists(), timeout=20)
    wait_until(lambda: (runs / "seen").exists() and (runs / "seen").read_text(), timeout=20)
    seen = [int(line) for line in (runs / "seen").read_text().split()]
    assert seen and all(count == 300 for count in seen), seen


def test_restart_terms_a_sleeping_command_and_kills_one_that_ignores_term(
    dirs: tuple[Path, Path], daemons: DaemonPool, tmp_path: Path
) -> None:
    src, dst = dirs
    log = tmp_path / "log"
    polite = tmp_path / "polite.sh"
    polite.write_text(
        f"#!/bin/sh\ntrap 'echo term $$ >> {log}; exit 143' TERM\n"
        f"echo start $$ >> {log}\nsleep 60 &\nwait\n"
    )
    stubborn = tmp_path / "stubborn.sh"
    stubborn.write_text(f"#!/bin/sh\ntrap '' TERM\necho start $$ >> {log}\nsleep 60\n")
    for script in (polite, stubborn):
        script.chmod(0o755)

    def lines() -> list[str]:
        return log.read_text().splitlines() if log.exists() else []

    def arrive(name: str) -> None:
        """A file renamed into the source: one event, so one batch and one run (a file written
        in place may come as two batches, its creation and its close, and two runs)."""
        (tmp_path / name).write_text(name)
        (tmp_path / name).rename(src / name)

    daemon = daemons.start(
        daemon_args(src, dst, "direct", f"--on-sync={polite}", "--on-sync-busy=restart")
    )
    daemon.wait_ready()
    arrive("one")
    wait_until(lambda: len(lines()) == 1)
    arrive("two")
    wait_until(lambda: len(lines()) == 3, message=lambda: str(lines()))
    first = lines()[0].split()[1]
    assert lines()[:2] == [f"start {first}", f"term {first}"]
    assert lines()[2].startswith("start ")
    daemon.stop()

    log.unlink()
    daemon = daemons.start(
        daemon_args(
            src, dst, "direct", f"--on-sync={stubborn}", "--on-sync-busy=restart",
            "--on-sync-stop-timeout=0.5",
        )
    )  # fmt: skip
    daemon.wait_ready()
    arrive("three")
    wait_until(lambda: len(lines()) == 1)
    pid = int(lines()[0].split()[1])
    arrive("four")
    wait_until(lambda: len(lines()) == 2, timeout=10)
    assert not Path(f"/proc/{pid}").exists(), "the command that ignored TERM was killed"
    daemon.stop()  # the running one too, within its stop timeout
    second = int(lines()[1].split()[1])
    assert not Path(f"/proc/{second}").exists()


def test_a_failing_or_hanging_command_never_delays_the_next_batch(
    dirs: tuple[Path, Path], daemons: DaemonPool, tmp_path: Path
) -> None:
    src, dst = dirs
    failing = tmp_path / "fail"
    failing.touch()
    script = tmp_path / "check.sh"
    script.write_text(f"#!/bin/sh\ntest ! -e {failing}\n")
    script.chmod(0o755)
    daemon = daemons.start(
        daemon_args(src, dst, "direct", f"--on-sync={script}", "--metrics-addr=127.0.0.1:0")
    )
    port = int(daemon.wait_for_log(r"metrics on http://127\.0\.0\.1:(\d+)/").group(1))
    daemon.wait_ready()
    (src / "a").write_text("a")
    daemon.wait_for_log(r"ON_SYNC \S+ failed: exit status 1")
    (src / "b").write_text("b")
    wait_for_mirror(src, dst, daemon=daemon)
    failing.unlink()
    mark = daemon.mark()
    (src / "c").write_text("c")
    daemon.wait_for_log(r"ON_SYNC \S+ succeeds again", since=mark)
    said = [line for line in daemon.log_text().splitlines() if "ON_SYNC" in line]
    assert len([line for line in said if "failed" in line]) == 1, "said once, not at each run"
    samples = scrape(port)
    failed = value(samples, "pylsyncd_on_sync_runs_total", result="failed")
    assert failed >= 1 and value(samples, "pylsyncd_errors_total", kind="on_sync") == failed
    assert value(samples, "pylsyncd_on_sync_runs_total", result="ok") >= 1
    daemon.stop()

    pid_file = tmp_path / "hanging.pid"
    hanging = tmp_path / "hang.sh"
    hanging.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 3600\n")
    hanging.chmod(0o755)
    daemon = daemons.start(daemon_args(src, dst, "direct", f"--on-sync={hanging}"))
    daemon.wait_ready()
    (src / "d").write_text("d")
    wait_until(pid_file.exists)
    for name in ("e", "f", "g"):  # each one mirrored while the command still hangs
        (src / name).write_text(name)
        wait_until(lambda name=name: (dst / name).exists(), timeout=5)  # type: ignore[misc]
    pid = int(pid_file.read_text())
    assert Path(f"/proc/{pid}").exists()
    daemon.stop()
    wait_until(lambda: not Path(f"/proc/{pid}").exists())  # TERMed with the daemon's stop
