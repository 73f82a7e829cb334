"""The rsync backend to a remote destination, over the target's one ssh master connection.

Every rsync and the batch's rename replay (`rsync_renames`, run there by the remote's own `sh`)
go through the master (`ssh_master`); a batch first makes sure the master is up, so a dropped
connection is logged in again by the pair's retry, with its backoff.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Sequence

from pylsyncd.coalesce import Batch
from pylsyncd.config.remote import RemoteDestination
from pylsyncd.excludes import ExcludeRules
from pylsyncd.transfer import Outcome, Ownership, Progress
from pylsyncd.transfer.remote_ignored import LIST_COMMAND, RemoteListingError, remote_ignored
from pylsyncd.transfer.rsync import RsyncTransfer, escape_pattern
from pylsyncd.transfer.rsync_renames import RENAME_COMMAND
from pylsyncd.transfer.ssh_master import SshMaster


class RemoteRsyncTransfer(RsyncTransfer):
    """Mirrors `source` into a remote destination with rsync over the target's ssh master."""

    local = False

    def __init__(
        self,
        source: str,
        remote: RemoteDestination,
        master: SshMaster,
        excludes: ExcludeRules,
        *,
        delete: bool,
        extra_args: Sequence[str] = (),
        ownership: Ownership | None = None,
        in_place_size: int = 16 * 1024 * 1024,
    ):
        super().__init__(
            source,
            str(remote),
            excludes,
            delete=delete,
            extra_args=extra_args,
            ownership=ownership,
            in_place_size=in_place_size,
        )
        self.remote = remote
        self.master = master
        self.rename_root = remote.path

    def _command(self, *rules: str, delete: bool) -> list[str]:
        # `-e`: rsync splits it on spaces itself (quotes kept), never through a shell; --mkpath
        # makes a missing destination with its parents, as the daemon does for a local one.
        shell = shlex.join(self.master.client())
        return [*super()._command(*rules, delete=delete), "-e", shell, "--mkpath"]

    def _paths(self) -> list[str]:
        return ["--", self.source.rstrip("/") + "/", self.remote.rsync_path]

    def full_sync(self, *, delete: bool, progress: Progress | None = None) -> Outcome:
        error = self.master.connect()
        if error is not None:
            return Outcome(error=error)
        try:
            return super().full_sync(delete=delete, progress=progress)
        except RemoteListingError as listing:
            return Outcome(error=str(listing))

    def apply(self, batch: Batch, *, final: bool = False) -> Outcome:
        error = self.master.connect()
        if error is not None:
            return Outcome(error=error, failed=batch)
        try:
            return super().apply(batch, final=final)
        except RemoteListingError as listing:
            return Outcome(error=str(listing), failed=batch)

    def cancel(self) -> None:
        """Stop a running rsync and a running remote command (the shutdown grace ran out)."""
        super().cancel()
        self.master.cancel()

    def _ignored(self, batch: Batch | None) -> bytes:
        # The source's ignored entries, then the remote's (`remote_ignored`): listed there.
        there = remote_ignored(self.excludes, self.remote.path, batch, self._run_listing)
        return super()._ignored(batch) + b"".join(
            os.fsencode(f"- /{escape_pattern(path)}{'/' if is_dir else ''}") + b"\0"
            for path, is_dir in there
        )

    def _run_listing(self, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
        return self.master.run(shlex.join(LIST_COMMAND), stdin)

    def _run_renames(self, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
        return self.master.run(shlex.join(RENAME_COMMAND), stdin)
