"""Protocol files (one per therapy), the shared CTCAE table, and the set in force.

The names below come from protocols/loading.py, imported on first use: the engine
imports the protocol parts (protocols/parts.py) while the schema is being assembled
from the rule kinds, which themselves use the engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dmtwatch.protocols.loading import (
        Change,
        FileProblem,
        ProtocolError,
        ProtocolSet,
        activate,
        active,
        in_force,
        protocol_set,
        using,
    )

__all__ = [
    "Change",
    "FileProblem",
    "ProtocolError",
    "ProtocolSet",
    "activate",
    "active",
    "in_force",
    "protocol_set",
    "using",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("dmtwatch.protocols.loading"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
