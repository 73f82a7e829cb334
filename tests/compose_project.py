"""One docker-compose project of a test: the example's file plus a test override, in a tmp dir."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from docker_engine import Engine
from helpers import wait_until

COMPOSE_TIMEOUT = 180.0


class ComposeProject:
    """`docker-compose -p NAME --project-directory DIR -f FILE...`; `./src` means `DIR/src`."""

    def __init__(self, engine: Engine, directory: Path, files: Sequence[Path]) -> None:
        self.engine = engine
        self.directory = directory
        self.files = list(files)
        # Unique: an engine that answered already may be shared with other test runs.
        self.name = f"pylsyncdtest{secrets.token_hex(4)}"

    def compose(
        self, *args: str, timeout: float = COMPOSE_TIMEOUT, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run docker-compose on this project."""
        files = [option for path in self.files for option in ("--file", str(path))]
        command = ["docker-compose", "--project-name", self.name,
                   "--project-directory", str(self.directory), *files, *args]  # fmt: skip
        return self.engine.run(command, timeout=timeout, check=check, cwd=self.directory)

    def up(self, *services: str) -> None:
        """Create and start services (all by default) in the background, as `up -d` does."""
        self.compose("up", "--detach", *services)

    def down(self) -> None:
        """Remove the project's containers and volumes; never fails (cleanup)."""
        self.compose("down", "--volumes", "--timeout", "2", check=False)

    def container(self, service: str) -> str:
        """The id of the service's container (running or not)."""
        ids = self.compose("ps", "--all", "--quiet", service).stdout.split()
        assert len(ids) == 1, f"expected one container for {service}, got {ids}"
        return ids[0]

    def exec(
        self, service: str, script: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell script in the service's (running) container."""
        return self.engine.docker("exec", self.container(service), "sh", "-c", script, check=check)

    def exists_in(self, service: str, path: str) -> bool:
        """Whether `path` exists inside the service's container."""
        return self.exec(service, f"test -e '{path}'", check=False).returncode == 0

    def inspect(self, service: str) -> dict[str, Any]:
        """`docker inspect` of the service's container."""
        output = self.engine.docker("inspect", self.container(service)).stdout
        document: list[dict[str, Any]] = json.loads(output)
        return document[0]

    def logs(self, service: str) -> str:
        """Everything the service's container wrote (stdout and stderr), with timestamps."""
        result = self.engine.docker("logs", "--timestamps", self.container(service))
        return result.stdout + result.stderr

    def wait_for_log(self, service: str, pattern: str, timeout: float = 30.0) -> str:
        """Wait for a log line matching the regex; returns that line."""
        regex = re.compile(pattern)

        def matching_line() -> str:
            lines = self.logs(service).splitlines()
            return next((line for line in lines if regex.search(line)), "")

        return wait_until(
            matching_line,
            timeout=timeout,
            interval=0.1,
            message=lambda: f"no /{pattern}/ in {service}'s log:\n{self.logs(service)[-3000:]}",
        )
