"""How big each workload is: the full run the targets are set for, and smaller ones to iterate."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """Workload sizes, and how long to wait for a daemon before reporting ">= cap"."""

    name: str
    edits: int
    storm_dirs: int
    storm_files_per_dir: int
    storm_bytes: int
    initial_files: int
    initial_files_per_dir: int
    initial_bytes: int
    initial_repeats: int
    idle_dirs: int
    idle_window: float
    cap: float

    @property
    def storm_files(self) -> int:
        return self.storm_dirs * self.storm_files_per_dir


SIZES = {
    sizes.name: sizes
    for sizes in (
        # The sizes the targets are set for; initial syncs are repeated and the median kept (a
        # noisy machine).
        Sizes("full", 200, 200, 50, 1024, 50_000, 100, 4096, 3, 10_000, 10.0, 60.0),
        Sizes("quick", 50, 40, 50, 1024, 5_000, 100, 4096, 1, 1_000, 2.0, 20.0),
        # The test suite's smoke run: every code path, no meaningful figure.
        Sizes("tiny", 5, 4, 5, 1024, 20, 5, 4096, 1, 10, 0.2, 10.0),
    )
}
