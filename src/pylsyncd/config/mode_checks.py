"""The pair settings a two-way or one-way-safe pair cannot work with.

Those pairs write with compare-and-swap (re-check a path right before writing it), which only the
in-process backend can do: rsync decides and writes in one step of its own.
"""

from __future__ import annotations

from pylsyncd.config.settings import PairConfig
from pylsyncd.config.types import Backend
from pylsyncd.entries import Mode
from pylsyncd.errors import ConfigError


def check_sync_mode(pair: PairConfig) -> None:
    """Refuse the settings a two-way or one-way-safe pair cannot honour (ConfigError)."""
    if pair.mode is Mode.ONE_WAY:
        return
    name = f"MODE={pair.mode.value} for {pair.source} <-> {pair.destination}"
    # Imported here: it loads hashlib, which a one-way daemon never needs (see file_writer).
    from pylsyncd.state.identity import PairIdentity, state_path

    state_path(pair.state_dir, PairIdentity(pair.source, pair.destination))  # not in a root
    if pair.backend is Backend.RSYNC:
        raise ConfigError(
            f"{name} needs BACKEND=direct: rsync cannot re-check a path right before it writes "
            "it, so it could overwrite a change made meanwhile; unset BACKEND or set it to direct"
        )
