"""The labs table as Observation JSON text, built on whole columns with Arrow kernels.

Labs are nine rows in ten of a clinic, and a Python dict per row plus its serialisation
costs about 10 us: two million results would take half a minute. Here each piece of the
JSON is a column (constant text, the id, a ready-made code per test, numbers cast once)
and one join per row makes the text. `build.lab` stays the definition of the mapping:
a test checks that these texts parse to exactly its resources.
"""

from __future__ import annotations

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from dmtwatch.fhir import build, codes


def _cat(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation; null where any part is null."""
    return pc.binary_join_element_wise(*parts, "")


def json_strings(values: pa.Array) -> pa.Array:
    """Each text as a JSON string literal (quoted, escaped); nulls stay null."""
    encoded = pc.dictionary_encode(values)
    literals = pa.array(
        [orjson.dumps(v).decode() for v in encoded.dictionary.to_pylist()], pa.string()
    )
    return literals.take(encoded.indices)


def json_numbers(values: pa.Array) -> pa.Array:
    """Shortest round-trip text of each number, with '.0' on whole ones as orjson writes."""
    text = pc.cast(values, pa.string())
    whole = pc.match_substring_regex(text, r"^-?[0-9]+$")
    return pc.if_else(whole, _cat(text, ".0"), text)


def _quantity(values: pa.Array, unit_part: pa.Array) -> pa.Array:
    return _cat('{"value":', json_numbers(values), unit_part, "}")


def observation_json(labs: pa.Table) -> pa.Array:
    """One Observation JSON text per row of a prepared labs table (`write.prepare`)."""
    column = lambda name: labs.column(name).combine_chunks()  # noqa: E731
    tests = pc.dictionary_encode(column("test"))
    code = pa.array(
        [orjson.dumps(build.lab_code(t)).decode() for t in tests.dictionary.to_pylist()],
        pa.string(),
    ).take(tests.indices)
    category = orjson.dumps(build.category("laboratory")).decode()
    head = _cat(
        '{"resourceType":"Observation","id":"',
        pc.utf8_slice_codeunits(column("_h"), 0, 16),
        f'","status":"final","category":{category},"code":',
        code,
        ',"subject":{"reference":"Patient/',
        column("patient_id"),  # a FHIR id (checked): nothing to escape
        '"},"effectiveDateTime":"',
        column("date"),
        '"',
    )
    unit = json_strings(column("unit"))
    unit_part = pc.fill_null(_cat(',"unit":', unit, f',"system":"{codes.UCUM}","code":', unit), "")
    value_part = pc.coalesce(
        _cat(',"valueQuantity":', _quantity(column("value"), unit_part)),
        _cat(',"valueString":', json_strings(column("value_text"))),
        "",
    )
    low = _cat('"low":', _quantity(column("ref_low"), unit_part))
    high = _cat('"high":', _quantity(column("ref_high"), unit_part))
    limits = pc.coalesce(_cat(low, ",", high), low, high, "")
    ref_part = pc.if_else(pc.equal(limits, ""), "", _cat(',"referenceRange":[{', limits, "}]"))
    return _cat(head, value_part, ref_part, "}")


class Texts:
    """A string array's bytes with its offsets, so any run of rows is one buffer slice."""

    def __init__(self, texts: pa.Array) -> None:
        self.data = texts.buffers()[2] or pa.py_buffer(b"")
        self.ends = np.frombuffer(
            texts.buffers()[1], dtype=np.int32, count=len(texts) + 1, offset=texts.offset * 4
        )

    def run(self, start: int, stop: int) -> bytes:
        """Rows start..stop-1 end to end."""
        if stop <= start:
            return b""
        return self.data[int(self.ends[start]) : int(self.ends[stop])].to_pybytes()
