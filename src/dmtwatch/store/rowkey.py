"""Row keys: the sha1 of a row's canonical values, so identical rows are stored once.

Each value is written as `<byte length>:<text>` (null as `~`) and the fields joined with
`|`; the length prefix makes the encoding unambiguous whatever the text contains. Text,
dates (ISO), integers and booleans (`true`/`false`) are formatted by Arrow; floats by
Python's `repr` (shortest round-trip digits), which is the same on every platform.
Changing this encoding changes every key: it would need a migration that rewrites them.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.compute as pc

NULL = "~"
SEPARATOR = "|"


def _field(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    if pa.types.is_floating(column.type):
        text = pa.array([None if v is None else repr(v) for v in column.to_pylist()], pa.string())
    else:
        text = pc.cast(column, pa.string())
    length = pc.cast(pc.binary_length(text), pa.string())
    return pc.fill_null(pc.binary_join_element_wise(length, text, ":"), NULL)


def row_keys(table: pa.Table) -> pa.Array:
    """sha1 hex of every row over all the table's columns, in column order."""
    if table.num_columns == 0:
        raise ValueError("a row key needs at least one column")
    table = table.combine_chunks()
    fields = [_field(column) for column in table.columns]
    joined = pc.binary_join_element_wise(*fields, SEPARATOR)
    return pa.array(
        [
            hashlib.sha1(row.encode("utf-8"), usedforsecurity=False).hexdigest()
            for row in joined.to_pylist()
        ],
        pa.string(),
    )
