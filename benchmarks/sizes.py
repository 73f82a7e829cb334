"""How big each workload is: the full run the targets are set for, and smaller ones to iterate."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MountSizes:
    """The host-mount group: trees seen through bindfs, and how long each wait and window is.

    `settings` are pylsyncd flags passed only when the daemon's `--help` lists them (so the same
    bench runs on a daemon that lacks a newer setting); the full and quick sizes pass none: the
    defaults are what is measured.
    """

    dirs: int  # leaf directories of one file each: the tree of the latency workloads
    big_dirs: int  # the same shape, for idle CPU and RSS only
    settle: float  # seconds from `ready:` to the idle window ("after 1 minute")
    window: float  # seconds of the idle window
    cold_edits: int
    hot_edits: int
    forwarded_edits: int
    storm_dirs: int
    storm_files_per_dir: int
    find_repeats: int
    cap: float  # a change not arrived after this is "not seen"
    lsyncd_cap: float
    settings: tuple[tuple[str, str], ...] = ()

    @property
    def storm_files(self) -> int:
        return self.storm_dirs * self.storm_files_per_dir


@dataclass(frozen=True)
class FilesSizes:
    """The "files" group: big files, editor saves, a real tree copied in, many directories."""

    append_file_bytes: int  # the file appended to, mirrored before the window
    append_seconds: float  # how long 4 KiB appends go on, one every `append_every`
    append_every: float
    rewrite_file_bytes: int  # the file rewritten in place
    rewrites: int  # 4 KiB rewrites at random offsets, `rewrite_every` apart
    rewrite_every: float
    write_bytes: int  # one file written in 1 MiB writes, beside cp of it
    saves: int  # per editor
    real_tree: str  # a system directory present on a plain Debian, copied in with cp -a
    dirs: int  # directories of one file each, for start -> ready and RSS
    cap: float  # a wait for the destination longer than this is reported as not equal
    tree_cap: float  # the same for the real tree and the 100,000 directories


@dataclass(frozen=True)
class RemoteSizes:
    """The "remote" group's own sizes; its edits and storm are the live workloads' sizes."""

    fan_out_edits: int  # edits in each phase of the fan-out (one target, three, one killed)
    real_tree: str  # copied into the source, as in the "files" group
    tree_cap: float
    converge_cap: float  # the killed target, once its sshd is back
    # The quiet rename waits this long after the start: past the 5 s in which pylsyncd copies a
    # renamed tree again (the smoke run renames sooner: its tree came with the initial sync).
    rename_after: float


@dataclass(frozen=True)
class TwoWaySizes:
    """The "two-way" group's own sizes; its storm is the live workloads' storm."""

    unison_edits: int  # unison rescans once a second: fewer edits than pylsyncd's
    union_files: int  # split over both sides for the first start
    union_files_per_dir: int
    churn_seeds: int
    churn_seconds: float
    echo_edits: int
    quiet: float  # seconds after the last edit in which a batch is an echo
    cap: float


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
    mount: MountSizes
    files: FilesSizes
    remote: RemoteSizes
    two_way: TwoWaySizes

    @property
    def storm_files(self) -> int:
        return self.storm_dirs * self.storm_files_per_dir


# Short rescans for the smoke run, so that a tiny tree's changes arrive at once on any daemon.
_SMOKE_POLLING = (("--poll-interval", "0.05"), ("--poll-period", "0.5"), ("--poll-hot-for", "5"))
_MIB = 1024 * 1024

SIZES = {
    sizes.name: sizes
    for sizes in (
        # The sizes the targets are set for; initial syncs are repeated and the median kept (a
        # noisy machine). Mount trees: 50,000 and 100,000 directories of one file each.
        Sizes(
            "full",
            *(200, 200, 50, 1024, 50_000, 100, 4096, 3, 10_000, 10.0, 60.0),
            MountSizes(50_000, 100_000, 60.0, 15.0, 3, 5, 5, 100, 100, 2, 60.0, 10.0),
            # /usr/share: tens of thousands of files of every size, thousands of symlinks.
            FilesSizes(
                *(64 * _MIB, 5.0, 0.01, 256 * _MIB, 40, 0.05, 256 * _MIB, 100),
                *("/usr/share", 100_000, 10.0, 60.0),
            ),
            RemoteSizes(100, "/usr/share", 60.0, 60.0, 6.0),
            TwoWaySizes(20, 50_000, 100, 10, 10.0, 100, 5.0, 60.0),
        ),
        Sizes(
            "quick",
            *(50, 40, 50, 1024, 5_000, 100, 4096, 1, 1_000, 2.0, 20.0),
            MountSizes(5_000, 10_000, 5.0, 5.0, 2, 3, 5, 20, 50, 2, 20.0, 3.0),
            # /usr/share/zoneinfo (tzdata, priority required): 1,300 entries, a third symlinks.
            FilesSizes(
                *(16 * _MIB, 1.0, 0.01, 16 * _MIB, 10, 0.05, 64 * _MIB, 20),
                *("/usr/share/zoneinfo", 10_000, 5.0, 30.0),
            ),
            RemoteSizes(20, "/usr/share/zoneinfo", 30.0, 30.0, 6.0),
            TwoWaySizes(5, 5_000, 100, 3, 3.0, 20, 2.0, 30.0),
        ),
        # The test suite's smoke run: every code path, no meaningful figure.
        Sizes(
            "tiny",
            *(5, 4, 5, 1024, 20, 5, 4096, 1, 10, 0.2, 10.0),
            MountSizes(20, 40, 0.2, 0.3, 1, 2, 2, 2, 5, 1, 10.0, 0.5, _SMOKE_POLLING),
            FilesSizes(
                *(_MIB, 0.1, 0.01, 2 * _MIB, 3, 0.02, 2 * _MIB, 3),
                *("/usr/share/zoneinfo/America", 50, 3.0, 10.0),
            ),
            RemoteSizes(2, "/usr/share/zoneinfo/America", 5.0, 20.0, 0.5),
            TwoWaySizes(1, 40, 10, 1, 0.5, 4, 0.5, 10.0),
        ),
    )
}
