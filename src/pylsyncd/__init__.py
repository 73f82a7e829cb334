"""pylsyncd: a live directory-mirroring daemon (inotify -> coalescer -> direct copy or rsync)."""

from __future__ import annotations

# The daemon's log lines, and its helper process's (see transfer/helper/).
LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def __getattr__(name: str) -> str:
    # The version is looked up on first use: importlib.metadata costs 30 ms at every start,
    # and `pylsyncd health` starts every few seconds in a container.
    if name != "__version__":
        raise AttributeError(f"module 'pylsyncd' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pylsyncd")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "0+unknown"
