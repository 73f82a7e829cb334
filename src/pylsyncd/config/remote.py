"""Remote destinations: `[user@]host:/path` and `ssh://[user@]host[:port]/path`, parsed and checked.

A local destination is an absolute path, so it starts with `/`; anything else that names a host
before `:/` is remote. In DESTINATIONS, whose entries are `:`-separated, an entry is one of:

- a local path: `/` up to the next `:`;
- `ssh://[user@]host[:port]/path` up to the next `:`;
- `[user@]host:/path` up to the next `:`.

A host may be an IPv6 address in brackets (`[::1]:/srv`, `ssh://[::1]:2222/srv`). Every value
that was a list of local paths before keeps its meaning; a remote path holding `:` can be given
by a flag or in the TOML file, not in DESTINATIONS.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from pylsyncd.errors import ConfigError

_USER = r"(?:(?P<user>[^@/:\[\]\s]+)@)?"
_HOST = r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+(?:%[\w.-]+)?)\]|(?P<host>[^@/:\[\]\s]+))"
_URL = re.compile(rf"ssh://{_USER}{_HOST}(?::(?P<port>\d{{1,5}}))?(?P<path>/.*)", re.DOTALL)
_SCP = re.compile(rf"{_USER}{_HOST}:(?P<path>.*)", re.DOTALL)
# One DESTINATIONS entry at a position: the path of a remote ends at the next ':', like a local
# one. The URL form first: `ssh://h/p` would otherwise read as host `ssh`, path `//h/p`.
_BARE_USER, _BARE_HOST = re.sub(r"\?P<\w+>", "?:", _USER), re.sub(r"\?P<\w+>", "?:", _HOST)
_ENTRY = re.compile(
    rf"ssh://{_BARE_USER}{_BARE_HOST}(?::\d{{1,5}})?/[^:]*|{_BARE_USER}{_BARE_HOST}:/[^:]*|/[^:]*"
)


@dataclass(frozen=True)
class RemoteDestination:
    """A destination on another host, reached with ssh; `path` is absolute and normalised."""

    host: str  # a name or an address; an IPv6 address without its brackets
    path: str
    user: str | None = None
    port: int | None = None

    @property
    def login(self) -> str:
        """What ssh is given as its destination: `user@host`, or `host`."""
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def rsync_path(self) -> str:
        """The destination directory as rsync names it: `[user@]host:/path/`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        return f"{user}{host}:{self.path.rstrip('/')}/"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"ssh://{user}{host}{port}{self.path}"


def parse_remote(text: str, label: str) -> RemoteDestination | None:
    """The remote destination `text` names; None for a local path (starting with `/`).

    ConfigError when it looks remote but is malformed: no absolute path, a bad port.
    """
    if text.startswith("/"):
        return None
    if "\0" in text:
        raise ConfigError(f"{label} {text!r} holds a NUL byte: remove it")
    match = _URL.fullmatch(text)
    if text.startswith("ssh://") and match is None:
        raise ConfigError(
            f"{label} {text!r} is not a valid ssh:// destination: write "
            "ssh://[user@]host[:port]/absolute/path"
        )
    if match is None:
        match = _SCP.fullmatch(text)
    if match is None:
        raise ConfigError(
            f"{label} {text!r} is not an absolute path: give a path starting with /, "
            "or a remote destination as [user@]host:/path or ssh://[user@]host[:port]/path"
        )
    path, port = match.group("path"), match.groupdict().get("port")
    if not path.startswith("/"):
        raise ConfigError(
            f"{label} {text!r} has a relative remote path {path!r}: give an absolute path, "
            "as in host:/srv/app"
        )
    if port is not None and not 0 < int(port) < 65536:
        raise ConfigError(f"{label} {text!r} has port {port}: give a port from 1 to 65535")
    host, user = match.group("ipv6") or match.group("host"), match.group("user")
    for part, name in ((host, "host"), (user, "user")):
        # ssh and rsync would read it as an option (rsync refuses such a host, at every batch).
        if part is not None and part.startswith("-"):
            raise ConfigError(
                f"{label} {text!r} has a {name} starting with '-' ({part!r}), which ssh would "
                f"read as an option: give the {name}'s name"
            )
    normal = "/" + os.path.normpath(path).lstrip("/")
    if normal == "/":
        # Locally the source is always inside "/", which is refused as a loop; on a host it
        # would be mirrored over the whole file system, and DELETE would empty it.
        raise ConfigError(
            f"{label} {text!r} is the root directory of {host}: the mirror would replace "
            "everything on it; give a directory below /"
        )
    return RemoteDestination(
        host=host, path=normal, user=user, port=None if port is None else int(port)
    )


def overlap(one: RemoteDestination, other: RemoteDestination) -> bool:
    """Whether two remote destinations may be the same directory or one inside the other: the
    same host and port (a user is only a login: both write the same file system)."""
    if (one.host, one.port) != (other.host, other.port):
        return False
    a, b = one.path, other.path
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def split_destinations(text: str, label: str) -> list[str]:
    """DESTINATIONS's entries: local paths and remote destinations, ':'-separated (see above)."""
    entries: list[str] = []
    position = 0
    while True:
        match = _ENTRY.match(text, position)
        if match is None or not match.group():
            if position == len(text) or text[position] == ":":
                raise ConfigError(
                    f"{label}={text!r} has an empty entry: separate paths with a single ':' "
                    "and put none at either end"
                )
            rest = text[position:].split(":", 1)[0]
            raise ConfigError(
                f"{label}={text!r}: entry {rest!r} is neither an absolute path nor a remote "
                "destination: write /path, [user@]host:/path or ssh://[user@]host[:port]/path"
            )
        entries.append(match.group())
        position = match.end()
        if position == len(text):
            return entries
        position += 1  # the ':' after the entry
