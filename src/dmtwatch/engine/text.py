"""Protocol text templates compiled into string expressions, so wording is rendered by the
database for every finding at once.
"""

from __future__ import annotations

import string
from functools import reduce

import ibis

SIGNIFICANT = 3  # significant figures of a number in finding text


def decimals_for(value: ibis.NumericValue, significant: int = SIGNIFICANT) -> ibis.IntegerValue:
    """Decimals that show `value` to `significant` figures, never fewer than 0: integer
    digits are never dropped (1234.4 keeps 4 digits), small values keep theirs (0.0567)."""
    magnitude = value.abs()
    # 0, NaN and infinities take 1 so the logarithm is always finite; they round as is
    usable = ~value.isinf() & ~value.isnan() & (magnitude > 0)
    safe = ibis.cases((usable, magnitude), else_=1.0)
    digits = safe.log10().floor().cast("int32") + 1  # integer digits; <= 0 below 1
    return ibis.greatest(significant - digits, 0).cast("int32")


def number_text(value: ibis.NumericValue, significant: int = SIGNIFICANT) -> ibis.StringValue:
    """A float as text, rounded to `significant` figures keeping every integer digit and
    without a trailing ".0": 85.7674 -> 85.8, 1234.4 -> 1234, 0.05672 -> 0.0567,
    38.0 -> 38, 150.0 -> 150, 0.15 -> 0.15. NULL stays NULL; NaN and infinities as cast."""
    finite = ~value.isinf() & ~value.isnan()
    # + 0.0 turns -0.0 (a tiny negative rounded away) into 0
    rounded = ibis.cases((finite, value.round(decimals_for(value, significant)) + 0.0), else_=value)
    return rounded.cast("string").re_replace(r"\.0$", "")


def as_text(value: ibis.Value, missing: str | None = None) -> ibis.StringValue:
    """A value as finding text; NULL stays NULL unless `missing` says what it reads as
    (a template fills the protocol's `phrases.missing`)."""
    if value.type().is_floating():
        text = number_text(value)
    elif value.type().is_date():  # date arithmetic may be a timestamp inside the database
        text = value.strftime("%Y-%m-%d")
    else:
        text = value.cast("string")
    return text if missing is None else text.fill_null(missing)


def _unit_key(unit: ibis.StringValue) -> ibis.StringValue:
    """A unit spelling compared as the importer matches it: trimmed, micro as u, lower case."""
    return unit.strip().replace("µ", "u").replace("μ", "u").lower()


def as_reported(
    value_reported: ibis.StringValue,
    unit_reported: ibis.StringValue,
    value: ibis.NumericValue,
    unit: ibis.StringValue,
) -> ibis.StringValue:
    """A lab value as the clinic reported it, e.g. "0.97 mg/dL", where that differs from
    the canonical value and unit (a unit conversion changed the number); else NULL.

    NULL too when nothing was reported (rows stored before contract v1.1, or built in
    code) and for qualitative results (no unit). Only a spelling of the same unit
    (10^9/L for 10*9/L, G/L, mIU/L for m[IU]/L) does not count as different.
    """
    number = value_reported.try_cast("float64")
    converted = (number != value).fill_null(True)  # unparsable or no canonical value: show
    show = (
        value_reported.notnull()
        & unit_reported.notnull()
        & (_unit_key(unit_reported) != _unit_key(unit)).fill_null(True)
        & converted
    )
    return ibis.cases((show, value_reported.concat(" ", unit_reported)), else_=ibis.null("string"))


def _columns(t: ibis.Table, prefix: str) -> tuple[ibis.Value, ...]:
    return tuple(t[f"{prefix}{c}"] for c in ("value_reported", "unit_reported", "value", "unit"))


def value_as_reported(t: ibis.Table, prefix: str = "") -> ibis.StringValue:
    """`as_reported` of a labs table (or any table with its columns, named with `prefix`,
    e.g. "c_" for a companion result): "0.97 mg/dL" or NULL."""
    return as_reported(*_columns(t, prefix))


def reported_note(t: ibis.Table, prefix: str = "") -> ibis.StringValue:
    """ " (reported as 0.97 mg/dL)" where `value_as_reported` has a value, else "": never
    NULL, so a template can append it, e.g. "Creatinine {value} {unit}{reported}"."""
    shown = value_as_reported(t, prefix)
    return ibis.literal(" (reported as ").concat(shown, ")").fill_null("")


def shown_value(t: ibis.Table, prefix: str = "") -> ibis.StringValue:
    """The number a finding shows. Where the lab reported this very number in this unit,
    its own text (103.01 beside an upper limit of 103 is never rounded to 103); after a
    unit conversion, the canonical value rounded, which `reported_note` then explains."""
    value_reported, _unit, value, _ = _columns(t, prefix)
    same = value_as_reported(t, prefix).isnull() & value_reported.try_cast("float64").notnull()
    # trailing zeros of a decimal say nothing here: 26.0 from a FHIR decimal reads as 26
    digits = value_reported.re_replace(r"^(-?[0-9]+\.[0-9]*?)0+$", r"\1").re_replace(r"\.$", "")
    return ibis.ifelse(same, digits, as_text(value))


def render(template: str, fields: dict[str, ibis.Value], missing: str | None) -> ibis.StringValue:
    """Fill `{name}` placeholders of a protocol template from columns; a NULL column
    reads as `missing` (the protocol's phrase, e.g. "not recorded"), or with None makes
    the whole text NULL (an item of a list that is not there)."""
    parts: list[ibis.StringValue] = []
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        if literal:
            parts.append(ibis.literal(literal))
        if name is not None:
            if name not in fields:
                raise KeyError(f"template field {{{name}}} is not provided here: {template!r}")
            parts.append(as_text(fields[name], missing))
    return reduce(lambda a, b: a.concat(b), parts) if parts else ibis.literal("")
