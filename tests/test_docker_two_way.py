"""The two-way example on a real Docker engine: the app's writes reach the host, the host's
edits reach the app, and restarting or recreating the sync container loses nothing.

As in test_docker: a test override points the file at the image built here, gives the app a
long-running command and puts every container in network mode `none`. Without an engine the
tests skip, saying why; with REQUIRE_DOCKER=1 (CI) they fail instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from compose_project import ComposeProject
from docker_engine import Engine
from docker_image import BASE_IMAGE
from helpers import wait_until, write_file
from test_docker import IMAGE, OWNER, READY, REPO, engine, image  # noqa: F401 (fixtures)

TWO_WAY_FILE = REPO / "examples" / "two-way" / "docker-compose.yml"

pytestmark = pytest.mark.timeout(900)

OVERRIDE = f"""\
services:
  sync:
    image: {IMAGE}
    network_mode: none
    environment:
      PUID: "{OWNER[0]}"
      PGID: "{OWNER[1]}"
      LOG_LEVEL: debug
  app:
    image: {BASE_IMAGE}
    command: ["sleep", "infinity"]
    stop_signal: SIGKILL
    network_mode: none
"""


@pytest.fixture
def project(engine: Engine, image: str, tmp_path: Path) -> Iterator[ComposeProject]:  # noqa: F811
    """The two-way example, started on a host ./src with a few files; removed at the end."""
    write_file(tmp_path / "src" / "README", "read me\n")
    write_file(tmp_path / "src" / "lib" / "module.py", "print('hi')\n")
    write_file(tmp_path / "src" / ".git" / "HEAD", "ref: refs/heads/main\n")
    (tmp_path / "docker-compose.test.yml").write_text(OVERRIDE)
    started = ComposeProject(engine, tmp_path, [TWO_WAY_FILE, tmp_path / "docker-compose.test.yml"])
    try:
        started.up()  # returns once the app runs: after sync turned healthy
        started.wait_for_log("sync", READY)
        yield started
    finally:
        started.down()


def _host_files(project: ComposeProject) -> dict[str, str]:
    root = project.directory / "src"
    return {
        str(path.relative_to(root)): path.read_text()
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".git" not in path.parts
    }


def _app_files(project: ComposeProject) -> dict[str, str]:
    """Each file below the app's /src (outside .git) with its content, read in the app."""
    script = (
        "cd /src && find . -path ./.git -prune -o -type f -print | sort | "
        "while read -r f; do printf '%s\\0' \"${f#./}\"; cat \"$f\"; printf '\\0'; done"
    )
    fields = project.exec("app", script).stdout.split("\0")
    return dict(zip(fields[0:-1:2], fields[1:-1:2], strict=True))


def _wait_same(project: ComposeProject, timeout: float = 20.0) -> dict[str, str]:
    """Wait until the host's ./src and the app's /src hold the same files; those files."""
    return wait_until(
        lambda: (files := _host_files(project)) == _app_files(project) and files,
        timeout=timeout,
        interval=0.2,
        message=lambda: (
            f"host {_host_files(project)}\napp {_app_files(project)}\n"
            + project.logs("sync")[-3000:]
        ),
    )


def test_the_app_writes_reach_the_host_and_the_host_edits_reach_the_app(
    project: ComposeProject,
) -> None:
    assert project.exec("app", "cat /src/lib/module.py").stdout == "print('hi')\n"
    assert not project.exists_in("app", "/src/.git")  # excluded: stays on its side
    project.exec("app", "mkdir -p /src/generated && echo built > /src/generated/out.txt")
    made = project.directory / "src" / "generated" / "out.txt"
    wait_until(lambda: made.exists() and made.read_text() == "built\n", timeout=10)
    assert (made.stat().st_uid, made.stat().st_gid) == OWNER
    write_file(project.directory / "src" / "README", "edited on the host\n")
    wait_until(
        lambda: project.exec("app", "cat /src/README").stdout == "edited on the host\n",
        timeout=10,
    )
    _wait_same(project)


@pytest.mark.parametrize(
    "again",
    [("restart", "sync"), ("up", "--detach", "--force-recreate", "--no-deps", "sync")],
    ids=["restarted", "recreated"],
)
def test_restarting_or_recreating_the_sync_container_loses_nothing(
    project: ComposeProject, again: tuple[str, ...]
) -> None:
    project.exec("app", "echo from the app > /src/app-made.txt")
    wait_until((project.directory / "src" / "app-made.txt").exists, timeout=10)
    before = _wait_same(project)
    project.compose("stop", "sync")
    # While it is down: one new file on each side, and a deletion on the host.
    project.exec("app", "echo while down > /src/app-while-down.txt")
    write_file(project.directory / "src" / "host-while-down.txt", "while down\n")
    (project.directory / "src" / "lib" / "module.py").unlink()
    project.compose(*again)
    wait_until(lambda: project.logs("sync").count(READY) >= (2 if again[0] == "restart" else 1))
    expected = dict(before)
    del expected["lib/module.py"]
    expected["app-while-down.txt"] = "while down\n"
    expected["host-while-down.txt"] = "while down\n"
    assert _wait_same(project) == expected
    # The state survived on its volume: the start compared with it, no union merge.
    assert "union merge" not in project.logs("sync").split(READY)[-2]
