"""What a setting is: its scope, flag, kind and default (the table itself is `settings`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from pylsyncd.config.kinds import FlagForm, Kind, written


class Scope(Enum):
    """Whom a setting applies to, which says where it may be given."""

    # Each pair: flag > env > the pair's [[pair]] table > the file's top level > default.
    PAIR = "pair"
    # The whole daemon: flag > env > the file's top level > default; refused inside [[pair]].
    DAEMON = "daemon"


@dataclass(frozen=True)
class Setting:
    """One setting: its name (the TOML key and the PairConfig or Config field), flag and kind."""

    name: str  # its environment variable is the name in upper case
    scope: Scope
    flag: str  # "--delay"; for a place in the SRC DST arguments, "SRC" or "DST"
    help: str  # one line; --help adds the environment variable and the default
    # None for SOURCES, DESTINATIONS and CONFIG: they say where the pairs and the file come
    # from, so load_config reads them itself instead of layering them.
    kind: Kind | None = None
    default: Any = None  # None: unset
    metavar: str = ""  # the flag's value in --help, when the kind's does not fit
    # The setting whose value this one's is added after, in that setting's field (exclude_from
    # adds its patterns after the excludes); it has no field of its own.
    adds_to: str = ""

    @property
    def env(self) -> str:
        """The environment variable that gives this setting."""
        return self.name.upper()

    @property
    def layered(self) -> bool:
        """Whether flag, env and file layers give it (all but SOURCES, DESTINATIONS, CONFIG)."""
        return self.kind is not None

    @property
    def form(self) -> FlagForm:
        """How it appears on the command line."""
        if not self.flag.startswith("--"):
            return FlagForm.POSITIONAL
        return FlagForm.VALUE if self.kind is None else self.kind.form

    @property
    def placeholder(self) -> str:
        """The flag's value as --help names it: SECONDS, {direct,rsync}."""
        return self.metavar or ("" if self.kind is None else self.kind.metavar)

    @property
    def choices(self) -> tuple[str, ...]:
        """The words it accepts, when it is a choice."""
        return () if self.kind is None else self.kind.choices

    @property
    def default_text(self) -> str:
        """The default as --help and README write it."""
        return self._written(self.default)

    def shown(self, value: object) -> str:
        """A value as `pylsyncd check` prints it."""
        unit = "" if self.kind is None or value is None else self.kind.unit
        return f"{self._written(value)} {unit}" if unit else self._written(value)

    def _written(self, value: object) -> str:
        if value is not None and self.kind is not None and self.kind.write is not None:
            return self.kind.write(value)
        return written(value)

    def from_text(self, text: str, label: str) -> Any:
        """The value given as text by an environment variable or a flag, parsed and checked."""
        return self._kind().from_text(text, label)

    def from_flag(self, given: Any) -> Any:
        """The value the argument parser gave for this setting's flag, parsed and checked."""
        kind = self._kind()
        if kind.form is FlagForm.SWITCH:
            return given  # argparse's BooleanOptionalAction gives True or False
        if kind.from_flags is not None:
            return kind.from_flags(tuple(given), self.flag)
        return kind.from_text(given, self.flag)

    def from_toml(self, value: object, label: str, base_dir: str) -> Any:
        """The value given in the TOML file (in the directory `base_dir`), checked."""
        return self._kind().from_toml(value, label, base_dir)

    def _kind(self) -> Kind:
        if self.kind is None:
            raise LookupError(f"{self.env} is read by load_config itself, not by the layers")
        return self.kind
