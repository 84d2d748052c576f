"""Protocol files (one per therapy), the shared CTCAE table, and the set in force."""

from dmtwatch.protocols.protocol_set import (
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
