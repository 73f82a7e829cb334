"""The image as users run it: the examples' compose files on a real Docker engine.

A test override points each file at the image built here, gives the app a long-running command
and puts every container in network mode `none`. Without an engine the tests skip, saying why;
with REQUIRE_DOCKER=1 (CI) they fail instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from compose_project import ComposeProject
from docker_engine import Engine, EngineUnavailable, docker_engine
from docker_image import BASE_IMAGE, build_image
from helpers import wait_until, write_file

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "docker"
IMAGE = "pylsyncd:test"
SEED_FILE = REPO / "examples" / "volumes-from" / "docker-compose.yml"
MODERN_FILE = REPO / "examples" / "named-volumes" / "docker-compose.yml"
READY = "ready:"
OWNER = (4242, 4343)  # PUID, PGID: nobody on the host, so a match cannot be a coincidence

# The first test also waits for the engine, debootstrap and the image build; every step of
# those has a deadline of its own.
pytestmark = pytest.mark.timeout(900)


# -- engine, image, projects --------------------------------------------------------------------


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """A Docker engine for the whole session (started here when none answers, then stopped)."""
    with contextlib.ExitStack() as stack:
        try:
            found = stack.enter_context(docker_engine(CACHE))
        except EngineUnavailable as error:
            if os.environ.get("REQUIRE_DOCKER", "") not in ("", "0"):
                pytest.fail(f"REQUIRE_DOCKER is set and no Docker engine can be had: {error}")
            pytest.skip(f"no Docker engine: {error}")
        yield found


@pytest.fixture(scope="session")
def image(engine: Engine) -> str:
    """The image built from the repository's Dockerfile, once per session."""
    build_image(engine, REPO, IMAGE, CACHE)
    return IMAGE


def seed_override(*, lsyncd_env: dict[str, str]) -> str:
    """The test override of the seed's file: our image, a live app, no network."""
    environment = "".join(f"      - {key}={value}\n" for key, value in lsyncd_env.items())
    return f"""\
version: '2'
services:
  app:
    image: {BASE_IMAGE}
    command: ["sleep", "infinity"]
    stop_signal: SIGKILL
    network_mode: none
  lsyncd:
    image: {IMAGE}
    network_mode: none
    environment:
{environment}"""


MODERN_OVERRIDE = f"""\
services:
  sync:
    image: {IMAGE}
    network_mode: none
    environment:
      PUID: "{OWNER[0]}"
      PGID: "{OWNER[1]}"
  app:
    image: {BASE_IMAGE}
    # What the app finds in its replica the moment it starts.
    command: ["sh", "-c", "ls -A /src > /output/seen-at-start && exec sleep infinity"]
    stop_signal: SIGKILL
    network_mode: none
"""


def fill_host_folders(directory: Path) -> None:
    """The host's ./src (with VCS folders to exclude) and ./output (with earlier results)."""
    write_file(directory / "src" / "README", "read me\n")
    write_file(directory / "src" / "lib" / "module.py", "print('hi')\n")
    write_file(directory / "src" / "doomed.txt", "deleted while the sync is stopped\n")
    write_file(directory / "src" / ".git" / "HEAD", "ref: refs/heads/main\n")
    write_file(directory / "src" / ".git" / "objects" / "ab" / "cdef", b"\x78\x01")
    write_file(directory / "src" / "lib" / ".svn" / "entries", "12\n")
    write_file(directory / "output" / "earlier-result.txt", "from a run before\n")


@contextlib.contextmanager
def seed_project(
    engine: Engine, directory: Path, lsyncd_env: dict[str, str] | None = None
) -> Iterator[ComposeProject]:
    """The seed's scenario, started, its initial sync done; removed at the end."""
    fill_host_folders(directory)
    override = directory / "docker-compose.test.yml"
    override.write_text(seed_override(lsyncd_env={"LOG_LEVEL": "debug", **(lsyncd_env or {})}))
    project = ComposeProject(engine, directory, [SEED_FILE, override])
    try:
        project.up()
        project.wait_for_log("lsyncd", READY)
        yield project
    finally:
        project.down()


@pytest.fixture(scope="module")
def seed(
    engine: Engine, image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ComposeProject]:
    """One seed project shared by the tests that only add files: PUID/PGID set."""
    env = {"PUID": str(OWNER[0]), "PGID": str(OWNER[1])}
    with seed_project(engine, tmp_path_factory.mktemp("seed"), env) as project:
        yield project


def wait_in(project: ComposeProject, service: str, path: str, timeout: float = 10.0) -> None:
    """Wait until `path` exists in the service's container."""
    wait_until(
        lambda: project.exists_in(service, path),
        timeout=timeout,
        interval=0.05,
        message=lambda: f"{path} not in {service}\n{project.logs('lsyncd')[-3000:]}",
    )


def docker_time(text: str) -> float:
    """A Docker timestamp (RFC 3339, nanoseconds, `Z` or an offset) as Unix seconds."""
    match = re.fullmatch(r"(.+?:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", text)
    assert match, f"not an RFC 3339 time: {text!r}"
    whole, fraction, zone = match.groups()
    offset = "+00:00" if zone == "Z" else zone
    return datetime.fromisoformat(whole + offset).timestamp() + float(f"0{fraction or ''}")


# -- the seed's scenario ------------------------------------------------------------------------


def test_host_file_reaches_the_app_replica_within_a_second(seed: ComposeProject) -> None:
    # The app container waits for the file itself; the clock starts once it is waiting.
    script = (
        "echo waiting; until [ -e /src/new/hello.txt ]; do sleep 0.01; done; cat /src/new/hello.txt"
    )
    watcher = subprocess.Popen(
        ["docker", "exec", seed.container("app"), "sh", "-c", script],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=seed.engine.env(),
    )  # fmt: skip
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline() == "waiting\n"
        written = time.monotonic()
        write_file(seed.directory / "src" / "new" / "hello.txt", "hello\n")
        content, errors = watcher.communicate(timeout=10)
        elapsed = time.monotonic() - written
    finally:
        watcher.kill()
        watcher.wait()
    assert (watcher.returncode, content, errors) == (0, "hello\n", "")
    assert elapsed < 1.0, f"the app saw the file {elapsed:.2f} s after the host wrote it"


def test_file_the_app_writes_in_output_reaches_the_host(seed: ComposeProject) -> None:
    seed.exec("app", "mkdir -p /output/report && echo done > /output/report/result.txt")
    result = seed.directory / "output" / "report" / "result.txt"
    wait_until(lambda: result.exists() and result.read_text() == "done\n", timeout=5)


def test_git_and_svn_content_never_reaches_the_replica(seed: ComposeProject) -> None:
    write_file(seed.directory / "src" / ".git" / "index", "written while live\n")
    write_file(seed.directory / "src" / "lib" / ".git" / "config", "a nested repository\n")
    write_file(seed.directory / "src" / "after-git.txt", "written after .git\n")
    wait_in(seed, "app", "/src/after-git.txt")
    assert seed.exists_in("app", "/src/lib/module.py")  # the initial sync did run
    found = seed.exec("app", "find /src -name .git -o -name .svn").stdout
    assert found == ""


def test_puid_and_pgid_own_what_reaches_the_host(seed: ComposeProject) -> None:
    seed.exec("app", "mkdir -p /output/owned && echo mine > /output/owned/file.txt")
    created = seed.directory / "output" / "owned"
    wait_until(lambda: (created / "file.txt").exists(), timeout=5)
    for path in (created, created / "file.txt"):
        status = path.stat()
        assert (status.st_uid, status.st_gid) == OWNER, path


def test_host_output_survives_the_first_start_with_an_empty_output_volume(
    seed: ComposeProject,
) -> None:
    # The fixture started the project on a host ./output holding earlier-result.txt, facing an
    # empty /output volume; a live change then syncs that pair again.
    seed.exec("app", "echo later > /output/later.txt")
    later = seed.directory / "output" / "later.txt"
    wait_until(later.exists, timeout=5)
    earlier = seed.directory / "output" / "earlier-result.txt"
    assert earlier.read_text() == "from a run before\n"


def test_stop_applies_pending_changes_before_the_container_exits(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    # DELAY=30: a change stays pending until the stop forces it out.
    with seed_project(engine, tmp_path, {"DELAY": "30"}) as project:
        write_file(tmp_path / "src" / "pending.txt", "pending at stop\n")
        wait_until(
            lambda: pending_events(project) > 0,
            timeout=10,
            interval=0.1,
            message=lambda: project.exec("lsyncd", "pylsyncd status", check=False).stdout,
        )
        assert not project.exists_in("app", "/src/pending.txt")
        started = time.monotonic()
        project.compose("stop", "lsyncd")
        stopping = time.monotonic() - started
        state = project.inspect("lsyncd")["State"]
        assert (state["Running"], state["ExitCode"]) == (False, 0), project.logs("lsyncd")
        assert project.exec("app", "cat /src/pending.txt").stdout == "pending at stop\n"
        assert stopping < 8, f"docker-compose stop took {stopping:.1f} s"


def pending_events(project: ComposeProject) -> int:
    """Changes the sync container has noticed but not applied yet, from its status file."""
    text = project.exec("lsyncd", 'cat "$STATUS_FILE"', check=False).stdout
    if not text:
        return 0
    return sum(pair["pending_events"] for pair in json.loads(text)["pairs"])


def test_changes_made_while_stopped_arrive_after_a_restart(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    with seed_project(engine, tmp_path) as project:
        wait_in(project, "app", "/src/doomed.txt")
        project.compose("stop", "lsyncd")
        write_file(tmp_path / "src" / "while-stopped.txt", "written while stopped\n")
        (tmp_path / "src" / "doomed.txt").unlink()
        project.exec("app", "echo made > /output/made-while-stopped.txt")
        project.compose("start", "lsyncd")
        wait_in(project, "app", "/src/while-stopped.txt")
        assert not project.exists_in("app", "/src/doomed.txt")
        made = tmp_path / "output" / "made-while-stopped.txt"
        wait_until(made.exists, timeout=10)


# -- the image on its own -----------------------------------------------------------------------


def test_counts_that_differ_exit_2_with_one_line_in_the_log(engine: Engine, image: str) -> None:
    name = f"pylsyncdtest-badconfig-{os.getpid()}"
    run = engine.docker(
        "run", "--name", name, "--network", "none",
        "--env", "SOURCES=/tmp/a:/tmp/b", "--env", "DESTINATIONS=/tmp/c",
        image, check=False,
    )  # fmt: skip
    try:
        logs = engine.docker("logs", name)
        exit_code = engine.docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout
    finally:
        engine.docker("rm", "--force", name, check=False)
    assert run.returncode == 2 and exit_code.strip() == "2"  # a configuration error
    lines = (logs.stdout + logs.stderr).splitlines()
    assert len(lines) == 1, lines
    assert "SOURCES" in lines[0] and "DESTINATIONS" in lines[0], lines[0]


def test_rsync_backend_works_in_the_image_and_leaves_no_zombie(engine: Engine, image: str) -> None:
    name = f"pylsyncdtest-rsync-{os.getpid()}"
    engine.docker(
        "run", "--detach", "--name", name, "--network", "none", "--env", "BACKEND=rsync",
        "--env", "SOURCES=/etc", "--env", "DESTINATIONS=/tmp/etc", image,
    )  # fmt: skip
    try:
        wait_until(lambda: READY in engine.docker("logs", name).stderr, timeout=30, interval=0.1)
        for number in range(5):  # five batches, five rsync processes
            engine.docker("exec", name, "sh", "-c", f"echo {number} > /etc/probe-{number}")
        copied = 'cat /tmp/etc/probe-4 2>/dev/null; grep -h ") Z " /proc/[0-9]*/stat || true'
        wait_until(
            lambda: engine.docker("exec", name, "sh", "-c", copied).stdout == "4\n",
            timeout=10,
            interval=0.1,
            message=lambda: engine.docker("exec", name, "sh", "-c", copied).stdout,
        )
    finally:
        engine.docker("rm", "--force", name, check=False)


def test_health_fails_while_no_daemon_has_written_its_status(engine: Engine, image: str) -> None:
    result = engine.docker(
        "run", "--rm", "--network", "none", "--entrypoint", "pylsyncd", image, "health",
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert len((result.stdout + result.stderr).splitlines()) == 1


def test_the_image_probe_turns_unhealthy_when_the_daemon_hangs_and_healthy_again(
    engine: Engine, image: str
) -> None:
    name = f"pylsyncdtest-probe-{os.getpid()}"
    engine.docker(
        "run", "--detach", "--name", name, "--network", "none",
        "--mount", "type=tmpfs,destination=/srv/src", image, "/srv/src", "/srv/dst",
    )  # fmt: skip

    def health() -> str:
        return engine.docker("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip()

    # tini is PID 1; the daemon is its one child.
    daemon = "$(cat /proc/1/task/1/children)"
    try:
        wait_until(lambda: health() == "healthy", timeout=30, interval=0.2)
        # Stopped, the daemon no longer touches its marker: the probe watching it fails once it
        # is 30 s old (within its 15 s step), then after three failures (Docker's retries) the
        # container is unhealthy.
        engine.docker("exec", name, "sh", "-c", f"kill -STOP {daemon}")
        wait_until(lambda: health() == "unhealthy", timeout=90, interval=0.5)
        log = json.loads(
            engine.docker("inspect", "--format", "{{json .State.Health.Log}}", name).stdout
        )
        assert log[-1]["ExitCode"] == 1 and log[-1]["Output"].startswith("unhealthy")
        engine.docker("exec", name, "sh", "-c", f"kill -CONT {daemon}")
        wait_until(lambda: health() == "healthy", timeout=30, interval=0.2)
    finally:
        engine.docker("rm", "--force", name, check=False)


# -- the modern file: named volumes, the app waits for a healthy sync ---------------------------


def test_healthy_after_the_initial_sync_and_the_app_waits_for_it(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    fill_host_folders(tmp_path)
    for number in range(200):
        write_file(tmp_path / "src" / "many" / f"file-{number:03}.txt", f"{number}\n")
    override = tmp_path / "docker-compose.test.yml"
    override.write_text(MODERN_OVERRIDE)
    project = ComposeProject(engine, tmp_path, [MODERN_FILE, override])
    try:
        project.up()  # returns once the app is started, after sync turned healthy
        sync = project.inspect("sync")
        assert sync["State"]["Health"]["Status"] == "healthy"
        probes = sync["State"]["Health"]["Log"]
        first_healthy = next(probe for probe in probes if probe["ExitCode"] == 0)
        ready_line = project.wait_for_log("sync", READY, timeout=1)
        app_started = docker_time(project.inspect("app")["State"]["StartedAt"])
        assert docker_time(ready_line.split()[0]) <= docker_time(first_healthy["Start"])
        assert docker_time(first_healthy["End"]) <= app_started
        seen = tmp_path / "output" / "seen-at-start"
        wait_until(seen.exists, timeout=5)
        assert seen.read_text().split() == sorted(["README", "doomed.txt", "lib", "many"])
        assert project.exec("app", "ls /src/many | wc -l").stdout.strip() == "200"
    finally:
        project.down()
