"""Delimited text to Arrow with the line number of every bad line, for the pv readers.

pyarrow's CSV reader is used single-threaded on purpose: only then does it number the
rows it hands to the invalid-row handler, and on these narrow tables it is as fast as the
threaded reader (about 250 MB/s here). DuckDB's reader was tried and refused: with quoting
off, a stray CR or LF inside a FAERS line stops it with a state-machine error, or with
``new_line`` set it returns no rows at all.

Empty lines are kept as all-empty rows (``ignore_empty_lines=False``) so that row i of the
table is line i + 2 of the file plus the bad lines skipped before it; callers drop blank
rows themselves. Text that is not UTF-8 is read again as Latin-1 (which cannot fail), so
an odd byte in one name never costs a quarter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

Source = Path | Callable[[], BinaryIO]
"""A file on disk, or a function opening a stream (a zip member) afresh at each call."""


@dataclass(frozen=True)
class BadLine:
    """A line skipped because its number of fields is not the header's."""

    line: int  # 1-based, header = line 1
    fields: int
    expected: int
    text: str


@dataclass
class TextTable:
    table: pa.Table  # the included columns, all strings
    bad_lines: list[BadLine] = field(default_factory=list)
    encoding: str = "utf8"

    def line_numbers(self) -> np.ndarray:
        """The file line of each row of `table` (header = 1)."""
        skipped = np.array(sorted(b.line for b in self.bad_lines), dtype=np.int64)
        every = np.arange(2, self.table.num_rows + len(skipped) + 2, dtype=np.int64)
        return np.setdiff1d(every, skipped, assume_unique=True)


def open_source(source: Source) -> BinaryIO:
    """A binary stream on the source."""
    return source.open("rb") if isinstance(source, Path) else source()


def head_lines(source: Source, max_bytes: int = 1 << 20, max_lines: int = 200) -> list[str]:
    """The first lines of a source, decoded leniently, without their line ends."""
    with open_source(source) as f:
        chunk = f.read(max_bytes)
    text = chunk.decode("utf-8", errors="replace").removeprefix("\ufeff")
    lines = text.splitlines()
    if len(chunk) == max_bytes and len(lines) > 1:
        lines = lines[:-1]  # the last one may be cut
    return lines[:max_lines]


def read_text_table(
    source: Source,
    names: list[str],
    include: list[str],
    *,
    delimiter: str,
    quoted: bool,
) -> TextTable:
    """The `include` columns of a delimited file whose first line is a header.

    `names` are the column names of every field of a line, in order; the header line is
    skipped, not parsed, so callers decide what it means. Lines with another number of
    fields are skipped and returned as bad lines.
    """
    last_error: Exception | None = None
    for encoding in ("utf8", "latin1"):
        bad: list[BadLine] = []

        def on_invalid(row: pacsv.InvalidRow, bad: list[BadLine] = bad) -> str:
            bad.append(
                BadLine(
                    line=row.number if row.number is not None and row.number > 0 else -1,
                    fields=row.actual_columns,
                    expected=row.expected_columns,
                    text=row.text,
                )
            )
            return "skip"

        stream = None if isinstance(source, Path) else source()
        try:
            table = pacsv.read_csv(
                str(source) if stream is None else stream,
                read_options=pacsv.ReadOptions(
                    use_threads=False,
                    column_names=names,
                    skip_rows=1,
                    encoding=encoding,
                    block_size=1 << 24,
                ),
                parse_options=pacsv.ParseOptions(
                    delimiter=delimiter,
                    quote_char='"' if quoted else False,
                    double_quote=quoted,
                    escape_char=False,
                    newlines_in_values=False,
                    ignore_empty_lines=False,
                    invalid_row_handler=on_invalid,
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() for c in include},
                    include_columns=include,
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
        except pa.ArrowInvalid as e:
            if "UTF8" in str(e) or "utf8" in str(e).lower():
                last_error = e
                continue
            raise
        finally:
            if stream is not None:
                stream.close()
        return TextTable(table, bad, encoding)
    assert last_error is not None
    raise last_error


def blank_rows(table: pa.Table) -> np.ndarray:
    """Rows whose every column is the empty string (blank lines of the file)."""
    blank = np.ones(table.num_rows, dtype=bool)
    for column in table.columns:
        blank &= np.asarray(pc.equal(pc.utf8_length(column), 0).to_numpy(zero_copy_only=False))
    return blank
