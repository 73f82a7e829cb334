"""The rsync backend to a remote destination, over the target's one ssh master connection.

Every rsync, the batch's rename replay (`rsync_renames`, run there by the remote's own `sh`)
and the remote agent (`agent`: small files, symlinks, directories, deletions of files, in one
round trip) go through the master (`ssh_master`); a batch first makes sure the master is up, so
a dropped connection is logged in again by the pair's retry, with its backoff.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Sequence

from pylsyncd.coalesce import Batch, Change, ChangeKind
from pylsyncd.config.remote import RemoteDestination
from pylsyncd.excludes import ExcludeRules
from pylsyncd.transfer import Outcome, Ownership, Progress
from pylsyncd.transfer.agent import AgentGoneError, RemoteAgent
from pylsyncd.transfer.agent_batch import (
    outcome_of,
    plan_for_agent,
    probe_frame,
    trees_to_probe,
)
from pylsyncd.transfer.remote_ignored import LIST_COMMAND, RemoteListingError, remote_ignored
from pylsyncd.transfer.rsync import RsyncTransfer, escape_pattern
from pylsyncd.transfer.rsync_renames import RENAME_COMMAND
from pylsyncd.transfer.ssh_master import COMMAND_TIMEOUT, SshMaster
from pylsyncd.watch.first_walk import FirstWalk

log = logging.getLogger(__name__)

# RSYNC_ARGS options that change how rsync carries the bytes, not what the destination ends up
# holding: beside them the agent writes what rsync would. Any other option leaves every batch
# to rsync, which alone knows what it means.
_CARRIAGE_ONLY = frozenset(
    (
        "-z", "--compress", "--compress-level", "--compress-choice", "--zc", "--zl",
        "--bwlimit", "-v", "--verbose", "-q", "--quiet", "--timeout", "--contimeout",
        "--info", "--debug", "-h", "--human-readable", "-W", "--whole-file",
        "--no-whole-file", "--checksum-choice", "--cc", "--numeric-ids", "-P", "--progress",
    )
)  # fmt: skip


def agent_allowed(rsync_args: Sequence[str]) -> str | None:
    """None when the agent may take small batches beside these RSYNC_ARGS, else the first
    option that keeps every batch with rsync."""
    for argument in rsync_args:
        if argument.partition("=")[0] not in _CARRIAGE_ONLY:
            return argument
    return None


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
        remote_python: str | None = "python3",
        io_timeout: float = COMMAND_TIMEOUT,
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
        self.io_timeout = io_timeout
        self.agent: RemoteAgent | None = None
        refused = agent_allowed(self.extra_args)
        if remote_python is not None and refused is None:
            self.agent = RemoteAgent(master, remote_python)
        elif remote_python is not None:
            log.info("%s: RSYNC_ARGS has %s: every batch goes through rsync", remote, refused)

    def _command(self, *rules: str, delete: bool) -> list[str]:
        # `-e`: rsync splits it on spaces itself (quotes kept), never through a shell; --mkpath
        # makes a missing destination with its parents, as the daemon does for a local one.
        shell = shlex.join(self.master.client())
        command = [*super()._command(*rules, delete=delete), "-e", shell, "--mkpath"]
        if not any(argument.startswith("--timeout") for argument in self.extra_args):
            # An rsync whose remote end stopped answering (a hung filesystem there, a stalled
            # connection the keepalive has not ended yet) fails and is retried, as a remote
            # command does, instead of holding its target until the shutdown.
            command.append(f"--timeout={max(1, round(self.io_timeout))}")
        return command

    def _paths(self) -> list[str]:
        return ["--", self.source.rstrip("/") + "/", self.remote.rsync_path]

    def full_sync(
        self, *, delete: bool, progress: Progress | None = None, walk: FirstWalk | None = None
    ) -> Outcome:
        error = self.master.connect()
        if error is not None:
            return Outcome(error=error)
        try:
            outcome = super().full_sync(delete=delete, progress=progress, walk=walk)
        except RemoteListingError as listing:
            return Outcome(error=str(listing))
        if outcome.ok and self.agent is not None:
            self.agent.ready()  # started now, so that the first edit does not wait for it
        return outcome

    def apply(self, batch: Batch, *, final: bool = False) -> Outcome:
        error = self.master.connect()
        if error is not None:
            return Outcome(error=error, failed=batch)
        try:
            return super().apply(batch, final=final)
        except RemoteListingError as listing:
            return Outcome(error=str(listing), failed=batch)

    def _held_trees(self, agent: RemoteAgent, batch: Batch) -> set[str]:
        """The batch's trees whose directory the remote holds with entries: rsync's (what the
        source lacks there is deleted, excludes protect some), asked before any is read."""
        trees = trees_to_probe(batch.changes, self.look)
        if not trees:
            return set()
        return {trees[item.index] for item in agent.exchange([probe_frame(trees)])}

    def cancel(self) -> None:
        """Stop a running rsync, remote command and agent (the shutdown grace ran out)."""
        super().cancel()
        self.master.cancel()
        if self.agent is not None:
            self.agent.cancel()

    def _run_batch(self, batch: Batch, *options: str) -> Outcome:
        """What the agent can take of the batch through it, the rest with rsync."""
        agent = self.agent
        if options or agent is None or not agent.ready():
            return super()._run_batch(batch, *options)
        try:
            held = self._held_trees(agent, batch) if self.delete else set()
            plan, frames = plan_for_agent(
                batch.changes, self.look, self.excludes, self.ownership,
                delete=self.delete, held=held,
            )  # fmt: skip
            not_done = agent.exchange(frames)
        except AgentGoneError as gone:
            if agent.cancelled:
                return Outcome(error=str(gone), failed=batch)
            log.debug("%s; the batch goes through rsync", gone)
            return super()._run_batch(batch)
        rest = dict.fromkeys(plan.rest)
        for item in not_done:
            served = plan.served[item.index]
            if not item.retry:
                log.debug("the agent did not write %r (%s); rsync tries", served.path, item.message)
            rest[served.change or Change(served.path, ChangeKind.SYNC)] = None
        outcome = outcome_of(plan, {item.index for item in not_done})
        log.debug(
            "agent: %d operations (%d left to rsync), %d bytes sent in %d frames",
            len(plan.served), len(rest), plan.bytes, plan.frames,
        )  # fmt: skip
        if not rest:
            return outcome
        ordered = tuple(sorted(rest, key=lambda change: change.path.split("/")))
        by_rsync = super()._run_batch(Batch((), ordered))
        outcome.copied += by_rsync.copied
        outcome.bytes += by_rsync.bytes
        outcome.error = by_rsync.error
        return outcome

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
