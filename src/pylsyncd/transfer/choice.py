"""Which transfer a pair applies its batches with: BACKEND chooses direct or rsync."""

from __future__ import annotations

from pylsyncd.config import Backend, PairConfig
from pylsyncd.excludes import ExcludeRules
from pylsyncd.transfer import Ownership, Transfer
from pylsyncd.transfer.direct import DirectTransfer
from pylsyncd.transfer.rsync import RsyncTransfer


def make_transfer(config: PairConfig, excludes: ExcludeRules, ownership: Ownership) -> Transfer:
    """The transfer the pair's BACKEND names, deleting while running as DELETE says."""
    delete = config.delete.while_running
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
