"""Returning freed memory to the system (`pylsyncd.pair.heap`): the pages of chunks freed in the
middle of the C heap leave the resident set, and a pair does it before it goes live.

Measured in resident kilobytes, not in time: the freed chunks are pinned below a live one, so
without the call glibc keeps every page of them."""

from __future__ import annotations

import logging
import os
import platform
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from helpers import wait_until
from pylsyncd.config import PairConfig, WatchMode
from pylsyncd.excludes import ExcludeRules
from pylsyncd.pair import Pair
from pylsyncd.pair.heap import can_return_freed_memory, return_freed_memory
from pylsyncd.transfer import Ownership
from pylsyncd.transfer.choice import make_transfer
from pylsyncd.watch.choice import WatcherChoice

DEADLINE = 10.0

_CHUNK = 64 * 1024  # below glibc's mmap threshold: taken from the heap, as a dict's table is
_CHUNKS = 512  # 32 MiB


def _resident_anonymous_kib() -> int:
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise AssertionError("no RssAnon in /proc/self/status")


@pytest.mark.skipif(not can_return_freed_memory(), reason="the C library has no malloc_trim")
def test_freed_chunks_inside_the_heap_leave_the_resident_set() -> None:
    chunks = [bytearray(_CHUNK) for _ in range(_CHUNKS)]  # zero-filled: every page resident
    pin = bytearray(_CHUNK)  # above them: the heap cannot shrink from its top
    del chunks
    kept = _resident_anonymous_kib()
    return_freed_memory()
    returned = kept - _resident_anonymous_kib()
    assert returned > _CHUNKS * _CHUNK // 1024 // 2, f"only {returned} KiB of 32 MiB returned"
    assert len(pin) == _CHUNK


def test_glibc_can_return_freed_memory() -> None:
    # Elsewhere (musl has no malloc_trim) the call is skipped: always safe to make.
    assert can_return_freed_memory() == (platform.libc_ver()[0] == "glibc")


@pytest.mark.parametrize("init", [True, False])
def test_a_pair_returns_freed_memory_before_it_goes_live(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, init: bool
) -> None:
    # With or without an initial sync: the watchers' outgrown tables are freed memory too.
    caplog.set_level(logging.DEBUG, logger="pylsyncd")
    source, destination = tmp_path / "src", tmp_path / "dst"
    source.mkdir()
    destination.mkdir()  # as the supervisor makes it
    (source / "f").write_bytes(b"data")
    config = PairConfig(source=str(source), destination=str(destination), delay=0.0, init=init)
    excludes = ExcludeRules(config.excludes)
    watchers = WatcherChoice("pair", replace(config, watch=WatchMode.INOTIFY), excludes.excludes)
    stopping = threading.Event()
    pair = Pair(
        config,
        transfer=make_transfer(config, excludes, Ownership.for_daemon(None, None)),
        watcher=watchers.chosen(),
        watchers=watchers,
        excludes=excludes,
        stopping=stopping,
        grace=DEADLINE,
    )
    thread = threading.Thread(target=pair.run, name=pair.name, daemon=True)
    thread.start()
    try:
        wait_until(pair.ready.is_set, timeout=DEADLINE, message="the pair never went live")
    finally:
        stopping.set()
        pair.wake()
        thread.join(DEADLINE)
    assert (destination / "f").exists() == init
    messages = [record.getMessage() for record in caplog.records]
    done = [i for i, m in enumerate(messages) if "initial sync done" in m]
    live = next(i for i, m in enumerate(messages) if ": live, watching" in m)
    returned = [i for i, m in enumerate(messages) if m.startswith("returned freed memory")]
    if can_return_freed_memory():
        assert len(returned) == 1, messages
        assert done[0] < returned[0] < live if init else returned[0] < live, messages
    else:
        assert not returned, messages
