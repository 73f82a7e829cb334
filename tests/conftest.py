"""Fixtures shared by every test."""

from __future__ import annotations

import pytest

from pylsyncd.config import ENV_VARS


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every variable the daemon reads: no test sees the developer's SOURCES or DELAY."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
