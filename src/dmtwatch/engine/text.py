"""Protocol text templates compiled into string expressions, so wording is rendered by the
database for every finding at once.
"""

from __future__ import annotations

import string
from functools import reduce

import ibis


def as_text(value: ibis.Value, missing: str = "not recorded") -> ibis.StringValue:
    if value.type().is_floating():
        value = value.round(3)
    if value.type().is_date():  # date arithmetic may be a timestamp inside the database
        return value.strftime("%Y-%m-%d").fill_null(missing)
    return value.cast("string").fill_null(missing)


def render(template: str, fields: dict[str, ibis.Value]) -> ibis.StringValue:
    """Fill `{name}` placeholders of a protocol template from columns."""
    parts: list[ibis.StringValue] = []
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        if literal:
            parts.append(ibis.literal(literal))
        if name is not None:
            if name not in fields:
                raise KeyError(f"template field {{{name}}} is not provided here: {template!r}")
            parts.append(as_text(fields[name]))
    return reduce(lambda a, b: a.concat(b), parts) if parts else ibis.literal("")
