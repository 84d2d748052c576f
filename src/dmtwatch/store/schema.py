"""Database tables of the store, derived from CANONICAL_TYPES so the columns are written once.

Each table holds its canonical columns, a surrogate `id` and `row_key` (a hash of the
canonical columns, UNIQUE), so importing the same rows twice stores them once.
Presentation columns (contract v1.1: a lab value and unit as reported) are outside the
row key: keys of rows stored before v1.1 stay valid, and the same result written two ways
is stored once.
`patients` is keyed by `patient_id` instead: a re-import with changed attributes updates
the row, and its `row_key` only tells whether anything changed.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeEngine

from dmtwatch.model.tables import CANONICAL_TYPES, PRESENTATION_COLUMNS

ID = "id"
ROW_KEY = "row_key"
PATIENT_ID = "patient_id"
KEYED_BY_PATIENT = "patients"

SQL_TYPES: dict[str, type[TypeEngine]] = {
    "VARCHAR": Text,
    "DATE": Date,
    "DOUBLE": Double,
    "INTEGER": Integer,
    "BOOLEAN": Boolean,
}

metadata = MetaData()


def surrogate_id() -> TypeEngine:
    """BIGINT (sequences advance on skipped duplicates); SQLite needs INTEGER for rowid."""
    return BigInteger().with_variant(Integer(), "sqlite")


def row_key_type() -> TypeEngine:
    return String(40)  # sha1 hex


def _table(name: str, types: dict[str, str]) -> Table:
    canonical = [
        Column(
            column,
            SQL_TYPES[sql_type](),
            nullable=column != PATIENT_ID,
            primary_key=name == KEYED_BY_PATIENT and column == PATIENT_ID,
        )
        for column, sql_type in types.items()
    ]
    if name == KEYED_BY_PATIENT:
        return Table(name, metadata, *canonical, Column(ROW_KEY, row_key_type(), nullable=False))
    return Table(
        name,
        metadata,
        Column(ID, surrogate_id(), primary_key=True),
        *canonical,
        Column(ROW_KEY, row_key_type(), nullable=False),
        UniqueConstraint(ROW_KEY, name=f"uq_{name}_row_key"),
        Index(f"ix_{name}_patient_id", PATIENT_ID),
    )


TABLES: dict[str, Table] = {name: _table(name, types) for name, types in CANONICAL_TYPES.items()}


def canonical_columns(name: str) -> list[str]:
    """The canonical column names of a table, in contract order."""
    return list(CANONICAL_TYPES[name])


def presentation_columns(name: str) -> list[str]:
    """Canonical columns outside the row key (how a value was written, not what it says)."""
    return list(PRESENTATION_COLUMNS.get(name, ()))


def key_columns(name: str) -> list[str]:
    """The canonical columns a row key hashes, in contract order."""
    skip = PRESENTATION_COLUMNS.get(name, ())
    return [c for c in CANONICAL_TYPES[name] if c not in skip]
