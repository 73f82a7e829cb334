"""The pairs' paths: normalised, and refused when a pair or two pairs would loop or collide."""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence

from pylsyncd.config.remote import RemoteDestination, overlap, parse_remote
from pylsyncd.config.settings import PairConfig
from pylsyncd.config.types import PairSpec
from pylsyncd.errors import ConfigError


def _normalise(path: str, label: str) -> str:
    if "\0" in path or not os.path.isabs(path):
        raise ConfigError(f"{label} {path!r} is not an absolute path: give a path starting with /")
    normal = os.path.normpath(path)
    # POSIX lets normpath keep a leading "//"; Linux reads it as "/", and so do we.
    return "/" + normal.lstrip("/") if normal.startswith("//") else normal


def _within(inner: str, outer: str) -> bool:
    """Whether real path `inner` is strictly below real path `outer`."""
    return inner != outer and (outer == "/" or inner.startswith(outer + "/"))


def check_pair_paths(spec: PairSpec) -> tuple[str, str, RemoteDestination | None]:
    """The pair's normalised paths, after the checks that need only this pair; and the remote
    destination, when the destination is on another host (then nothing local is checked for it).
    """
    source = _normalise(spec.source, spec.source_label)
    remote = parse_remote(spec.destination, spec.destination_label)
    _check_source(source, spec.source_label)
    if remote is not None:
        return source, str(remote), remote
    destination = _normalise(spec.destination, spec.destination_label)
    if os.path.lexists(destination) and not os.path.isdir(destination):
        raise ConfigError(
            f"{spec.destination_label} {destination!r} exists but is not a directory: "
            "give a directory, or remove what is there"
        )
    # Real paths, so that a symlink cannot hide a loop; realpath also works for a destination
    # that does not exist yet (its existing parents are resolved).
    real_source, real_destination = os.path.realpath(source), os.path.realpath(destination)
    loop = "the daemon would copy its own copies forever"
    if real_source == real_destination:
        raise ConfigError(
            f"destination {destination!r} is the same directory as its source {source!r}: "
            "give a destination outside the source"
        )
    if _within(real_destination, real_source):
        raise ConfigError(
            f"destination {destination!r} is inside its source {source!r}: {loop}; "
            "give a destination outside the source"
        )
    if _within(real_source, real_destination):
        raise ConfigError(
            f"source {source!r} is inside its destination {destination!r}: {loop}; "
            "give a destination that does not contain the source"
        )
    return source, destination, None


def _check_source(source: str, label: str) -> None:
    if not os.path.exists(source):
        raise ConfigError(f"{label} {source!r} does not exist: create it or fix the path")
    if not os.path.isdir(source):
        raise ConfigError(f"{label} {source!r} is not a directory: give a directory")


def check_overlaps(pairs: Sequence[PairConfig]) -> None:
    """Pairs that would fight over files or mirror each other are refused."""
    remote = [pair for pair in pairs if pair.remote is not None]
    for i, j in itertools.combinations(range(len(remote)), 2):
        one, other = remote[i].remote, remote[j].remote
        if one is not None and other is not None and overlap(one, other):
            raise ConfigError(
                f"pairs {remote[i].source} -> {remote[i].destination} and {remote[j].source} -> "
                f"{remote[j].destination} share a destination, or one is inside the other: "
                "give each pair a directory of its own"
            )
    pairs = [pair for pair in pairs if pair.remote is None]
    real = [(os.path.realpath(pair.source), os.path.realpath(pair.destination)) for pair in pairs]
    for i, j in itertools.combinations(range(len(pairs)), 2):
        (source_i, destination_i), (source_j, destination_j) = real[i], real[j]
        both = (
            f"pairs {pairs[i].source} -> {pairs[i].destination} "
            f"and {pairs[j].source} -> {pairs[j].destination}"
        )
        if destination_i == destination_j:
            raise ConfigError(
                f"{both} share a destination: they would fight over its files; "
                "give each pair its own destination"
            )
        if _within(destination_i, destination_j) or _within(destination_j, destination_i):
            raise ConfigError(
                f"{both} have one destination inside the other: they would fight over its "
                "files; give destinations that do not overlap"
            )
        i_feeds_j = destination_i == source_j or _within(destination_i, source_j)
        j_feeds_i = destination_j == source_i or _within(destination_j, source_i)
        if i_feeds_j and j_feeds_i:
            raise ConfigError(
                f"{both} mirror each other: two pairs cannot sync both ways, they would undo "
                "each other's deletions; give one pair with MODE=two-way instead"
            )
