"""Property: a count in cells/uL and the same count in 10*9/L give the same findings."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.clinic import alemtuzumab_course, check, lab, write_clinic

D0 = dt.date(2015, 1, 5)


def _findings(value: float, unit: str, test: str) -> list[tuple]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_clinic(
            Path(tmp),
            treatments=[alemtuzumab_course("P1", D0)],
            labs=[lab("P1", D0 + dt.timedelta(days=40), test, value, unit)],
        )
        rows = check(folder, D0 + dt.timedelta(days=45)).findings.to_pylist()
    return [
        (r["code"], r["grade"], r["severity"], r["detail"])
        for r in rows
        if r["code"].startswith("LAB")
    ]


@settings(max_examples=10, deadline=None)
@given(
    cells=st.integers(min_value=0, max_value=500_000),
    test=st.sampled_from(["lymphocytes", "neutrophils", "leukocytes", "platelets"]),
)
def test_cells_per_microlitre_equal_giga_per_litre(cells: int, test: str) -> None:
    converted, canonical = (
        _findings(cells, "cells/uL", test),
        _findings(cells / 1000, "10*9/L", test),
    )
    # the same findings; the text differs only in how the value is shown: the converted
    # result says how it was reported, the canonical one shows the lab's own digits
    assert [f[:3] for f in converted] == [f[:3] for f in canonical]
    for (*_, text), (*_, own) in zip(converted, canonical, strict=True):
        note = f" (reported as {cells} cells/uL) on "
        assert (note in text) is (cells != 0)  # 0 is 0 in either unit: nothing to add
        assert own.split(" on ", 1)[1] == text.split(" on ", 1)[1]
