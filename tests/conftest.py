"""Fixtures shared by every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from helpers import DaemonPool
from pylsyncd.config import ENV_VARS


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every variable the daemon reads: no test sees the developer's SOURCES or DELAY."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def daemons() -> Iterator[DaemonPool]:
    """Daemons started by a test; any still running at its end are killed."""
    pool = DaemonPool()
    yield pool
    pool.close()
