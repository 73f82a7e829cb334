"""A pair's persisted state: the ancestor entries of two-way sync and the roots' identities.

What the wiring uses: `AncestorStore` (load, save, append), `PairState`, `Unusable` and
`StateProblem`; `state_path` and `STATE_DIR` for the STATE_DIR setting; `root_identity` and
`identity_change` to notice a root replaced while running.
"""

from __future__ import annotations

from pylsyncd.state.ancestor import AncestorStore, PairState, StateProblem, Unusable
from pylsyncd.state.identity import (
    STATE_DIR,
    PairIdentity,
    RootIdentity,
    identity_change,
    root_identity,
    state_path,
)

__all__ = [
    "STATE_DIR",
    "AncestorStore",
    "PairIdentity",
    "PairState",
    "RootIdentity",
    "StateProblem",
    "Unusable",
    "identity_change",
    "root_identity",
    "state_path",
]
