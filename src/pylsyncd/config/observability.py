"""The kinds of the metrics and ON_SYNC settings: an address to serve on, a command line, what
to do with a command still running when the next batch lands."""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass
from enum import Enum

from pylsyncd.config.kinds import Kind
from pylsyncd.config.toml_values import toml_strings, toml_text
from pylsyncd.errors import ConfigError


class OnSyncBusy(Enum):
    """What a batch that lands while the ON_SYNC command still runs does (watchexec's
    --on-busy-update)."""

    QUEUE = "queue"  # one more run once it ends, for every batch since it started
    RESTART = "restart"  # TERM it (KILL after ON_SYNC_STOP_TIMEOUT), then run it again


@dataclass(frozen=True)
class Address:
    """Where the metrics are served: a host name or IP address, and a TCP port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(text: str, label: str) -> Address:
    """HOST:PORT (an IPv6 host in brackets: [::]:9108); port 0 picks a free one."""
    host, colon, port = text.strip().rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(
            f"{label}={text!r} is not valid: give HOST:PORT, e.g. 0.0.0.0:9108 or 127.0.0.1:9108"
        )
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(
                f"{label}={text!r} is not valid: an IPv6 address goes in brackets, e.g. [::]:9108"
            ) from None
    return Address(host, int(port))


def parse_on_sync_busy(text: str, label: str) -> OnSyncBusy:
    """queue or restart, in any case."""
    word = text.strip().lower()
    if word not in [busy.value for busy in OnSyncBusy]:
        raise ConfigError(f"{label}={text!r} is not valid: use one of queue, restart")
    return OnSyncBusy(word)


def parse_command(text: str, label: str) -> tuple[str, ...]:
    """A command line, split as a shell would but run without one."""
    try:
        words = tuple(shlex.split(text))
    except ValueError as error:
        raise ConfigError(
            f"{label}={text!r} is not valid: {error}; quote it as a shell would"
        ) from None
    if not words:
        raise ConfigError(
            f"{label}={text!r} is not valid: give a command, e.g. 'touch /app/.reload'"
        )
    return words


def _toml_command(value: object, label: str, _: str) -> tuple[str, ...]:
    # A string is split as on the command line; an array is the argument list itself.
    if isinstance(value, list):
        words = toml_strings(value, label, '["touch", "/src/.synced"]')
        if words:
            return words
    return parse_command(toml_text(value, label, "a string or an array of strings"), label)


ADDRESS = Kind(
    from_text=parse_address,
    from_toml=lambda value, label, _: parse_address(toml_text(value, label, "a string"), label),
    metavar="HOST:PORT",
    write=str,
)
COMMAND = Kind(from_text=parse_command, from_toml=_toml_command, metavar="COMMAND")
