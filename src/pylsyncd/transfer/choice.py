"""Which transfer a pair applies its batches with: BACKEND chooses direct or rsync; a remote
destination is always rsync, over its target's ssh master."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pylsyncd.config import Backend, PairConfig
from pylsyncd.excludes import ExcludeRules
from pylsyncd.transfer import Ownership, Transfer
from pylsyncd.transfer.direct import DirectTransfer
from pylsyncd.transfer.rsync import RsyncTransfer

if TYPE_CHECKING:
    from pylsyncd.transfer.ssh_master import SshConnections


def make_transfer(
    config: PairConfig,
    excludes: ExcludeRules,
    ownership: Ownership,
    connections: SshConnections | None = None,
) -> Transfer:
    """The transfer the pair's BACKEND names, deleting while running as DELETE says; a remote
    destination's goes through its master in `connections`."""
    delete = config.delete.while_running
    if config.remote is not None:
        if connections is None:
            raise ValueError("a remote destination needs the daemon's ssh connections")
        from pylsyncd.transfer.remote import RemoteRsyncTransfer  # ssh: only when remote

        return RemoteRsyncTransfer(
            config.source,
            config.remote,
            connections.master(config.remote, config.ssh_args),
            excludes,
            delete=delete,
            extra_args=config.rsync_args,
            ownership=ownership,
            in_place_size=config.in_place_size,
            remote_python=config.remote_python,
        )
    if config.backend is Backend.RSYNC:
        return RsyncTransfer(
            config.source,
            config.destination,
            excludes,
            delete=delete,
            extra_args=config.rsync_args,
            ownership=ownership,
            in_place_size=config.in_place_size,
        )
    return DirectTransfer(
        config.source,
        config.destination,
        excludes,
        delete=delete,
        ownership=ownership,
        in_place_size=config.in_place_size,
    )
