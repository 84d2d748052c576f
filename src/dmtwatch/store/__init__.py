"""The operational store: canonical tables in SQLite or PostgreSQL, one URL switches.

`save` appends a `Dataset` (the same rows twice are stored once), `load` reads it back
with exact types; every expected failure is a `StoreError` naming the (masked) URL.
"""

from dmtwatch.store.database import load, save
from dmtwatch.store.errors import StoreError

__all__ = ["StoreError", "load", "save"]
