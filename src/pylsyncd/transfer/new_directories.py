"""The directories one run created, and the names it put in them.

A storm of new files (`cp -a`, an install) mostly lands in directories its own batch creates,
and a first sync in directories it creates: there, any name the run has not made yet is known
to be missing, so the destination need not be asked (one lstat, failing, per new entry).
"""

from __future__ import annotations

from pylsyncd.transfer.directories import split


class NewDirectories:
    """Directories made by one run, each with the names the run has put in them (or is about
    to). Off while a batch's renames are replayed: a rename can bring anything in."""

    def __init__(self) -> None:
        self._made: dict[str, set[str]] = {}
        self.on = True

    def __len__(self) -> int:
        """How many directories it holds."""
        return len(self._made)

    def start(self) -> None:
        """From now on, directories created are remembered (a batch's changes begin)."""
        self._made = {}
        self.on = True

    def stop(self) -> None:
        """Forget them all, and remember no more until `start`."""
        self._made = {}
        self.on = False

    def created(self, path: str) -> None:
        """The run has just made the directory at `path`: it is empty."""
        if self.on:
            self._made[path] = set()

    def done(self, path: str) -> None:
        """The run has synced all of the directory at `path` (a tree): what it knows of it is
        not needed again. A first sync would otherwise hold every directory of the tree."""
        self._made.pop(path, None)

    def note(self, parent: str, name: str) -> None:
        """`name` in `parent` may exist from now on."""
        names = self._made.get(parent)
        if names is not None:
            names.add(name)

    def known_missing(self, path: str, made_on_the_way: set[str]) -> bool:
        """Whether nothing stands at `path` for certain; then the name is noted as made (the
        caller is about to sync it, before anything is made). `made_on_the_way`: directories
        the destination created on its own way to another entry (a hard link's other name),
        without this run's notes."""
        parent, name = split(path)
        names = self._made.get(parent)
        if names is None or name in names or path in made_on_the_way:
            return False
        names.add(name)
        return True
