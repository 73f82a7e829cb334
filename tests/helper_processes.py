"""Helper processes of the direct backend as the tests see them: each recorded, and ready."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest

from pylsyncd.transfer.helper import client as helper_module
from pylsyncd.transfer.helper.protocol import Settings


def record_helpers(
    monkeypatch: pytest.MonkeyPatch, *starters: ModuleType
) -> list[helper_module.Helper]:
    """Every helper process `starters` start from now, in order; started also on a machine of
    one core. The caller checks at the end that each is gone."""
    started: list[helper_module.Helper] = []

    class Recorded(helper_module.Helper):
        def __init__(self, settings: Settings) -> None:
            super().__init__(settings)
            started.append(self)

    for module in starters:
        if hasattr(module, "Helper"):
            monkeypatch.setattr(module, "Helper", Recorded)
        monkeypatch.setattr(module, "can_help", lambda: True)
    return started


def ready(started: list[helper_module.Helper]) -> Callable[[], bool]:
    """Whether the helper said it is ready; its first message is read here (it reports nothing
    else before it is given work), as the pair's process would between two pieces of work."""

    def condition() -> bool:
        if not started:
            return False
        assert started[0].reports(0.01) == []
        return started[0].ready

    return condition
