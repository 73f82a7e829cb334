"""The values of the per-target settings of fan-out and repair: QUEUE_LIMIT, VERIFY_INTERVAL."""

from __future__ import annotations

import math

from pylsyncd.config.kinds import Kind
from pylsyncd.config.toml_values import toml_seconds, wrong_type
from pylsyncd.errors import ConfigError

# A target's queue past this many changes is dropped for a full comparison (docs/fan-out.md).
DEFAULT_QUEUE_LIMIT = 100_000
_MAX_QUEUE_LIMIT = 10_000_000  # about 2.5 GB of queued changes: past that, a mistake
_MIN_VERIFY = 1.0  # a full comparison more often than each second would never end
_MAX_VERIFY = 7 * 86400.0


def parse_queue_limit(given: str | int, label: str) -> int:
    """How many changes a target may queue: a whole number from 1 to 10,000,000."""
    text = str(given).strip().replace("_", "")
    if not text.isdigit() or not 1 <= int(text) <= _MAX_QUEUE_LIMIT:
        raise ConfigError(
            f"{label}={given!r} is not valid: give a number of changes from 1 to "
            f"{_MAX_QUEUE_LIMIT}, e.g. {DEFAULT_QUEUE_LIMIT}"
        )
    return int(text)


def _toml_queue_limit(value: object, label: str, _: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise wrong_type(label, value, f"a number of changes such as {DEFAULT_QUEUE_LIMIT}")
    return parse_queue_limit(value, label)


QUEUE_LIMIT = Kind(from_text=parse_queue_limit, from_toml=_toml_queue_limit, metavar="CHANGES")


def parse_verify_interval(given: str | float, label: str) -> float:
    """Seconds between periodic full comparisons: from 1 to a week."""
    try:
        value = float(given)
    except ValueError:
        value = math.nan
    if _MIN_VERIFY <= value <= _MAX_VERIFY:  # nan and inf fail it too
        return value
    raise ConfigError(
        f"{label}={given!r} is not valid: give a number of seconds from {_MIN_VERIFY:g} to "
        f"{_MAX_VERIFY:g}, e.g. 3600; leave it unset for no periodic comparison"
    )


VERIFY_INTERVAL = Kind(
    from_text=parse_verify_interval,
    from_toml=lambda value, label, _: toml_seconds(value, label, parse_verify_interval),
    metavar="SECONDS",
    unit="s",
)
