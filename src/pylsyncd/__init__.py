"""pylsyncd: a live directory-mirroring daemon (inotify -> coalescer -> direct copy or rsync)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pylsyncd")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
