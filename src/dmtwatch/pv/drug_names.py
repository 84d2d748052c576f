"""Drug names to active ingredients, on whole arrays (RE2 through pyarrow.compute).

Spontaneous reports name a drug however the reporter wrote it ("TYSABRI 300MG/15ML",
"LEMTRADA (ALEMTUZUMAB)", "ACYCLOVIR /00587301/", "Baclofen."): counted as given, one
product splits into many spellings and its counts shrink. The rule here is deliberately
simple, documented and idempotent, so a user can predict it and fix the rest with a
mapping file:

1. upper-case;
2. drop WHO-DD codes written as ``/00587301/`` and anything in parentheses or brackets
   (an unclosed ``(`` drops the rest of the name);
3. drop strengths: a number with a unit (``300MG``, ``2.5 MG/ML``, ``85 MG/M2``, ``10%``)
   and number ratios (``100/50``);
4. punctuation becomes a space (``SOLU-MEDROL`` -> ``SOLU MEDROL``, ``ASPIRIN.`` ->
   ``ASPIRIN``);
5. drop dosage-form, route and release words (:data:`FORM_WORDS`: ``TABLETS``, ``INJECTION``,
   ``ORAL``, ``XR``, ``PEN``, ...) and trailing bare numbers (``ADDERALL 10``);
6. collapse spaces.

If nothing is left, the same steps are tried keeping the text inside parentheses
(``(OXALIPLATIN) - SOLUTION- 85 MG/M2`` -> ``OXALIPLATIN``), then the name with only
steps 1, 4 and 6. Salts are kept (``METFORMIN HYDROCHLORIDE`` stays); brand names stay
brands unless the mapping file names their ingredient.

The mapping file is a CSV with a header ``name,ingredient``; its names are cleaned by the
same rule, so ``Lemtrada`` in the file matches ``LEMTRADA 12 MG`` in a report.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from dmtwatch.errors import InputError

FORM_WORDS: tuple[str, ...] = (
    # dosage forms
    "TABLET", "TABLETS", "TAB", "TABS", "CAPLET", "CAPLETS", "CAPSULE", "CAPSULES", "CAP",
    "CAPS", "PILL", "PILLS", "INJECTION", "INJECTIONS", "INJECTABLE", "INJ", "INFUSION",
    "SOLUTION", "SOLN", "SOL", "SUSPENSION", "SUSP", "SYRUP", "ELIXIR", "EMULSION", "CREAM",
    "OINTMENT", "LOTION", "GEL", "PATCH", "PATCHES", "SPRAY", "DROPS", "DROP", "POWDER",
    "GRANULES", "LIQUID", "CONCENTRATE", "SUPPOSITORY", "SUPPOSITORIES", "LOZENGE",
    "LOZENGES", "FILM", "COATED", "CHEWABLE", "EFFERVESCENT", "DISPERSIBLE", "FOR",
    # routes
    "ORAL", "NASAL", "EYE", "OPHTHALMIC", "TOPICAL", "RECTAL", "VAGINAL", "TRANSDERMAL",
    "INHALATION", "INHALER", "IV", "INTRAVENOUS", "SUBCUTANEOUS", "SC", "SQ", "IM",
    "INTRAMUSCULAR",
    # release
    "EXTENDED", "DELAYED", "SUSTAINED", "CONTROLLED", "MODIFIED", "PROLONGED", "RELEASE",
    "ER", "XR", "SR", "XL", "CR", "DR", "ODT",
    # devices and packs
    "PREFILLED", "SYRINGE", "SYRINGES", "PEN", "PENS", "AUTOINJECTOR", "VIAL", "VIALS",
    "AMPOULE", "AMPOULES", "AMPULE", "AMPULES", "KIT",
    # legacy AERS filler ("ZERIT CONTINUING (STAVUDINE)")
    "CONTINUING",
)  # fmt: skip

_NUMBER = r"\d+(?:[.,]\d+)?"
_UNIT = r"(?:%|(?:MCG|MG|UG|NG|GM|G|KG|ML|L|IU|MIU|KIU|UNITS|UNIT|U|MEQ|MMOL|M2)\b)"
_PER = r"(?:%|(?:MCG|MG|UG|NG|GM|G|KG|ML|L|M2|H|HR|HRS|HOUR|HOURS|DAY|DOSE|ACTUATION|PUFF)\b)"
_WHO_CODE = r"/\s*\d{5,}\s*/"
_BRACKETED = r"\([^()]*\)|\[[^\[\]]*\]"
_UNCLOSED = r"[(\[].*$"
_STRENGTH = rf"\b{_NUMBER}\s*{_UNIT}(?:\s*/\s*(?:{_NUMBER}\s*)?{_PER}?)?"
_RATIO = rf"\b{_NUMBER}(?:\s*/\s*{_NUMBER})+\b"
_PUNCTUATION = r"[^\p{L}\p{N}\s]+"
_FORMS = r"\b(?:" + "|".join(FORM_WORDS) + r")\b"
_TRAILING_NUMBERS = r"(?:\s+\d+)+\s*$"
_SPACES = r"\s+"


def _sub(values: pa.Array, pattern: str, replacement: str = " ") -> pa.Array:
    return pc.replace_substring_regex(values, pattern=pattern, replacement=replacement)


def _squeeze(values: pa.Array) -> pa.Array:
    """Runs of white space to one space, none at the ends."""
    return pc.utf8_trim_whitespace(_sub(values, _SPACES))


def _strip(values: pa.Array, keep_bracketed: bool) -> pa.Array:
    """Steps 2 to 6 on upper-cased names."""
    out = _sub(values, _WHO_CODE)
    brackets = (r"[()\[\]]",) if keep_bracketed else (_BRACKETED, _UNCLOSED)
    for pattern in brackets:
        out = _sub(out, pattern)
    for _ in range(2):  # strengths before punctuation (2.5 MG) and after it (5-MG)
        out = _sub(_sub(out, _STRENGTH), _RATIO)
        out = _sub(out, _PUNCTUATION)
    out = _sub(out, _FORMS)
    out = _sub(_squeeze(out), _TRAILING_NUMBERS, "")
    return _squeeze(out)


def clean_drug_names(names: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Cleaned names (the module's rule), element by element; nulls stay null.

    Cost grows with the array, so callers pass the distinct names only.
    """
    if isinstance(names, pa.ChunkedArray):
        names = names.combine_chunks()
    upper = pc.utf8_upper(names.cast(pa.string()))
    first = _strip(upper, keep_bracketed=False)
    empty = pc.fill_null(pc.equal(first, ""), False)
    if not pc.any(empty).as_py():
        return first
    # the fallbacks run on the few names the rule emptied, not on all of them
    rest = upper.filter(empty)
    second = _strip(rest, keep_bracketed=True)
    last = _squeeze(_sub(rest, _PUNCTUATION))
    fallback = pc.if_else(pc.not_equal(second, ""), second, last)
    return pc.replace_with_mask(first, empty, fallback)


def clean_drug_name(name: str) -> str:
    """One name cleaned (for tests and for reading the rule by example)."""
    return clean_drug_names(pa.array([name], pa.string()))[0].as_py()


def normalise_ingredients(names: pa.Array | pa.ChunkedArray) -> pa.Array:
    """FDA prod_ai values: upper-cased, spaces collapsed, otherwise as given.

    prod_ai is already an ingredient list (``ACETAMINOPHEN\\HYDROCODONE BITARTRATE``), so
    it is not stripped like a free-text name.
    """
    if isinstance(names, pa.ChunkedArray):
        names = names.combine_chunks()
    return _squeeze(pc.utf8_upper(names.cast(pa.string())))


class DrugMapError(InputError, ValueError):
    """The mapping file cannot be used; the message names the file and the line."""


def read_drug_map(path: Path | str) -> dict[str, str]:
    """The mapping file as {cleaned name: ingredient}.

    A header ``name,ingredient`` is required (other columns are ignored), so a file with
    the columns swapped is refused instead of silently mapping ingredients to brands.
    One name with two different ingredients is refused too: which one wins would be an
    accident of line order.
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise DrugMapError(f"{path}: cannot be read as a UTF-8 CSV file ({e})") from e
    if not rows:
        raise DrugMapError(f"{path}: is empty; expected a header name,ingredient")
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in ("name", "ingredient") if c not in header]
    if missing:
        raise DrugMapError(
            f"{path}: missing column(s) {', '.join(missing)} in the header "
            f"(found: {', '.join(header) or 'nothing'}); expected name,ingredient"
        )
    i_name, i_ingredient = header.index("name"), header.index("ingredient")
    names: list[str] = []
    ingredients: list[str] = []
    lines: list[int] = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        name = row[i_name].strip() if i_name < len(row) else ""
        ingredient = row[i_ingredient].strip() if i_ingredient < len(row) else ""
        if not name or not ingredient:
            raise DrugMapError(f"{path} line {line}: name and ingredient are both required")
        names.append(name)
        ingredients.append(ingredient)
        lines.append(line)
    keys = clean_drug_names(pa.array(names, pa.string())).to_pylist()
    values = normalise_ingredients(pa.array(ingredients, pa.string())).to_pylist()
    mapping: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for key, value, line in zip(keys, values, lines, strict=True):
        if key in mapping and mapping[key] != value:
            raise DrugMapError(
                f"{path} line {line}: {key} maps to {value}, but line {first_line[key]} "
                f"maps it to {mapping[key]}"
            )
        mapping.setdefault(key, value)
        first_line.setdefault(key, line)
    return mapping


def apply_drug_map(names: pa.Array | pa.ChunkedArray, mapping: dict[str, str]) -> pa.Array:
    """Names replaced by their mapped ingredient, looked up by their cleaned form.

    Applied last, after prod_ai or cleaning, and only once (no chains). Works on the
    distinct names and spreads the result back, so its cost does not grow with rows.
    """
    if isinstance(names, pa.ChunkedArray):
        names = names.combine_chunks()
    if not mapping or len(names) == 0:
        return names
    distinct = pc.unique(names)
    keys = pa.array(list(mapping), pa.string())
    found = pc.index_in(clean_drug_names(distinct), value_set=keys)
    mapped = pc.take(pa.array(list(mapping.values()), pa.string()), found)
    replaced = pc.coalesce(mapped, distinct)
    return pc.take(replaced, pc.index_in(names, value_set=distinct))
