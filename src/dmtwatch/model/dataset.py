"""A validated clinic: the canonical tables as Arrow tables with exact types.

Every reader (CSV, XLSX, database, later FHIR and OMOP) produces a `Dataset`; the engine,
the audit and the store consume one. Absent input tables are present here, empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from dmtwatch.model.tables import CANONICAL_TYPES, PRESENTATION_COLUMNS

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


def _conform(name: str, table: pa.Table) -> pa.Table:
    """A table built without presentation columns (contract v1.1, additive: a lab value as
    reported) gets them as nulls, so code written for v1.0 columns keeps working."""
    missing = [c for c in PRESENTATION_COLUMNS.get(name, ()) if c not in table.column_names]
    if not missing:
        return table
    schema = arrow_schema(name)
    for column in missing:
        table = table.append_column(schema.field(column), pa.nulls(table.num_rows, pa.string()))
    return table.select(schema.names)


@dataclass
class Dataset:
    tables: dict[str, pa.Table] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in CANONICAL_TYPES:
            table = self.tables.get(name)
            self.tables[name] = (
                empty_table(name)
                if table is None
                else _conform(name, table).cast(arrow_schema(name))
            )

    def __getitem__(self, name: str) -> pa.Table:
        return self.tables[name]

    def row_counts(self) -> dict[str, int]:
        return {name: t.num_rows for name, t in self.tables.items()}
