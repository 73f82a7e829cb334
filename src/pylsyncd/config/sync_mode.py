"""MODE, CONFLICT and STATE_DIR given as text, parsed and checked (`mode_checks` checks a pair's
settings against its MODE)."""

from __future__ import annotations

import os

from pylsyncd.entries import ConflictPolicy, Mode
from pylsyncd.errors import ConfigError

DEFAULT_STATE_DIR = "/var/lib/pylsyncd"  # STATE_DIR's default (the image declares a volume)


def _word(text: str, label: str, options: list[str]) -> str:
    word = text.strip().lower()
    if word not in options:
        raise ConfigError(f"{label}={text!r} is not valid: use one of {', '.join(options)}")
    return word


def parse_mode(text: str, label: str) -> Mode:
    """The Mode named by `text`, in any case."""
    return Mode(_word(text, label, [mode.value for mode in Mode]))


def parse_conflict(text: str, label: str) -> ConflictPolicy:
    """The ConflictPolicy named by `text`, in any case."""
    return ConflictPolicy(_word(text, label, [policy.value for policy in ConflictPolicy]))


def parse_state_dir(text: str, label: str) -> str:
    """An absolute directory for the pairs' state files (created at start when missing)."""
    if "\0" in text or not os.path.isabs(text):
        raise ConfigError(
            f"{label}={text!r} is not valid: give an absolute directory such as /var/lib/pylsyncd"
        )
    return os.path.normpath(text)
