"""Finding text: numbers rounded sensibly, lab values shown as reported beside canonical."""

from __future__ import annotations

import math

import ibis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmtwatch.engine.text import (
    as_reported,
    as_text,
    render,
    reported_note,
    shown_value,
    value_as_reported,
)


def _texts(expr_of, values: list, schema: dict) -> list:
    t = ibis.memtable(values, schema=schema)
    return ibis.duckdb.connect().execute(t.select(s=expr_of(t))).s.tolist()


def _numbers(values: list[float | None]) -> list[str]:
    return _texts(lambda t: as_text(t.x, "not recorded"), {"x": values}, {"x": "float64"})


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (85.7674, "85.8"),  # creatinine 0.97 mg/dL x 88.42
        (132.63, "133"),
        (1234.4, "1234"),  # integer digits are never dropped
        (123456789.0, "123456789"),
        (0.05672, "0.0567"),
        (0.15, "0.15"),
        (0.4, "0.4"),
        (9.009, "9.01"),
        (38.0, "38"),  # no ".0"
        (150.0, "150"),
        (60.0, "60"),
        (99.96, "100"),
        (0.9996, "1"),
        (0.0, "0"),
        (-0.0004, "-0.0004"),
        (-85.7674, "-85.8"),
        (None, "not recorded"),
    ],
)
def test_numbers_show_three_significant_figures_keeping_integer_digits(value, text) -> None:
    assert _numbers([value]) == [text]


def test_nan_and_infinity_do_not_break_the_query() -> None:
    assert _numbers([math.inf, -math.inf]) == ["inf", "-inf"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=1e-4, max_value=1e9, allow_nan=False), min_size=1, max_size=20))
def test_rounding_is_within_half_a_unit_of_the_third_significant_figure(values) -> None:
    for value, text in zip(values, _numbers(values), strict=True):
        shown = float(text)
        digits = math.floor(math.log10(value)) + 1
        decimals = max(3 - digits, 0)  # 3 significant figures, never fewer integer digits
        tolerance = 0.5 * 10.0**-decimals * (1 + 1e-9)
        assert abs(shown - value) <= tolerance, (value, text)
        assert not text.endswith(".0")
        if value >= 1:
            assert len(text.split(".")[0]) == digits or shown == 10**digits  # 999.7 -> 1000


def test_integers_and_dates_are_unchanged() -> None:
    # NULL reads as the phrase given (a protocol's `phrases.missing`), else stays NULL
    assert _texts(lambda t: as_text(t.n), {"n": [1, None]}, {"n": "int64"}) == ["1", None]
    assert _texts(
        lambda t: as_text(t.n, "not recorded"), {"n": [1234567, None]}, {"n": "int64"}
    ) == [
        "1234567",
        "not recorded",
    ]


def test_templates_render_rounded_numbers() -> None:
    t = ibis.memtable({"v": [85.7674], "u": ["umol/L"]})
    expr = render("Creatinine {v} {u}", {"v": t.v, "u": t.u}, "not recorded")
    assert ibis.duckdb.connect().execute(t.select(s=expr)).s.tolist() == ["Creatinine 85.8 umol/L"]


LABS = {
    "value_reported": "string",
    "unit_reported": "string",
    "value": "float64",
    "unit": "string",
}
CASES = [
    # (value_reported, unit_reported, value, unit) -> as reported, note
    (("0.97", "mg/dL", 85.7674, "umol/L"), "0.97 mg/dL", " (reported as 0.97 mg/dL)"),
    (("150", "cells/uL", 0.15, "10*9/L"), "150 cells/uL", " (reported as 150 cells/uL)"),
    (("0.085", "mmol/L", 85.0, "umol/L"), "0.085 mmol/L", " (reported as 0.085 mmol/L)"),
    # the same number in another spelling of the unit: nothing to add
    (("0.15", "G/L", 0.15, "10*9/L"), None, ""),
    (("2.5", "mIU/L", 2.5, "m[IU]/L"), None, ""),
    (("85", "µmol/L", 85.0, "umol/L"), None, ""),
    (("85.0", "umol/L", 85.0, "umol/L"), None, ""),
    # nothing reported (stored before contract v1.1, built in code), qualitative results
    ((None, None, 85.0, "umol/L"), None, ""),
    (("Trace", None, None, None), None, ""),
]


def test_value_as_reported_where_a_conversion_changed_the_number() -> None:
    rows = [dict(zip(LABS, case, strict=True)) for case, _, _ in CASES]
    assert _texts(value_as_reported, rows, LABS) == [shown for _, shown, _ in CASES]
    assert _texts(reported_note, rows, LABS) == [note for _, _, note in CASES]
    direct = _texts(
        lambda t: as_reported(t.value_reported, t.unit_reported, t.value, t.unit), rows, LABS
    )
    assert direct == [shown for _, shown, _ in CASES]


def test_a_template_can_show_the_canonical_value_and_the_reported_one() -> None:
    t = ibis.memtable(
        [{"value_reported": "0.97", "unit_reported": "mg/dL", "value": 85.7674, "unit": "umol/L"}],
        schema=LABS,
    )
    expr = render(
        "Creatinine {value} {unit}{reported}",
        {"value": t.value, "unit": t.unit, "reported": reported_note(t)},
        "not recorded",
    )
    assert ibis.duckdb.connect().execute(t.select(s=expr)).s.tolist() == [
        "Creatinine 85.8 umol/L (reported as 0.97 mg/dL)"
    ]


def test_the_shown_value_is_the_labs_own_digits_unless_converted() -> None:
    rows = [
        {"value_reported": "82.01", "unit_reported": "umol/L", "value": 82.01, "unit": "umol/L"},
        {"value_reported": "0.97", "unit_reported": "mg/dL", "value": 85.7674, "unit": "umol/L"},
        {"value_reported": "0.15", "unit_reported": "G/L", "value": 0.15, "unit": "10*9/L"},
        {"value_reported": None, "unit_reported": None, "value": 82.0149, "unit": "umol/L"},
        {"value_reported": "26.0", "unit_reported": "pmol/L", "value": 26.0, "unit": "pmol/L"},
        {"value_reported": "82.010", "unit_reported": "umol/L", "value": 82.01, "unit": "umol/L"},
        {"value_reported": "150", "unit_reported": "10*9/L", "value": 150.0, "unit": "10*9/L"},
    ]
    shown = ["82.01", "85.8", "0.15", "82", "26", "82.01", "150"]
    assert _texts(shown_value, rows, LABS) == shown
    # a companion's columns carry a prefix
    prefixed = [{f"c_{k}": v for k, v in r.items()} for r in rows]
    schema = {f"c_{k}": v for k, v in LABS.items()}
    assert _texts(lambda t: shown_value(t, "c_"), prefixed, schema) == shown
    assert _texts(lambda t: reported_note(t, "c_"), prefixed, schema)[1] == (
        " (reported as 0.97 mg/dL)"
    )
