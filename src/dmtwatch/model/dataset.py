"""A validated clinic: the canonical tables as Arrow tables with exact types.

Every reader (CSV, XLSX, database, later FHIR and OMOP) produces a `Dataset`; the engine,
the audit and the store consume one. Absent input tables are present here, empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from dmtwatch.model.tables import CANONICAL_TYPES

_ARROW = {
    "VARCHAR": pa.string(),
    "DATE": pa.date32(),
    "DOUBLE": pa.float64(),
    "INTEGER": pa.int32(),
    "BOOLEAN": pa.bool_(),
}


def arrow_schema(table: str) -> pa.Schema:
    return pa.schema([(c, _ARROW[t]) for c, t in CANONICAL_TYPES[table].items()])


def empty_table(table: str) -> pa.Table:
    return arrow_schema(table).empty_table()


@dataclass
class Dataset:
    tables: dict[str, pa.Table] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in CANONICAL_TYPES:
            table = self.tables.get(name)
            self.tables[name] = (
                empty_table(name) if table is None else table.cast(arrow_schema(name))
            )

    def __getitem__(self, name: str) -> pa.Table:
        return self.tables[name]

    def row_counts(self) -> dict[str, int]:
        return {name: t.num_rows for name, t in self.tables.items()}
