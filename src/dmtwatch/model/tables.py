"""The canonical tables of the interchange contract: one place that names every column.

Readers, the validator, the store, the engine and the synthetic generator all take
their column names, types and vocabularies from here, so the contract
(`spec/interchange.md`, section 1) is written down once in code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["text", "date", "partial_date", "int", "number", "bool", "enum", "lab"]

DRUGS = (
    "alemtuzumab",
    "natalizumab",
    "ocrelizumab",
    "ofatumumab",
    "rituximab",
    "ublituximab",
    "cladribine",
    "fingolimod",
    "siponimod",
    "ozanimod",
    "ponesimod",
    "dimethyl_fumarate",
    "diroximel_fumarate",
    "teriflunomide",
    "interferon_beta_1a",
    "interferon_beta_1b",
    "peginterferon_beta_1a",
    "glatiramer_acetate",
    "mitoxantrone",
    "methylprednisolone",
    "plasma_exchange",
    "immunoadsorption",
    "ivig",
    # contract v1.1 (additive): immunosuppressants that raise natalizumab's PML risk
    "azathioprine",
    "cyclophosphamide",
    "methotrexate",
    "mycophenolate",
    "other",
)
# Treatments that are not disease-modifying therapies: relapse treatment and rescue.
NOT_DMT = ("methylprednisolone", "plasma_exchange", "immunoadsorption", "ivig")
STOP_REASONS = (
    "allergy",
    "inefficacy",
    "adverse_event",
    "pml_risk",
    "patient_choice",
    "pregnancy",
    "planned",
    "other",
)
SEXES = ("F", "M", "X", "U")
MS_TYPES = ("CIS", "RRMS", "SPMS", "PPMS")
RELAPSE_SEVERITIES = ("mild", "moderate", "severe")
MRI_REGIONS = ("brain", "spine")
AE_CATEGORIES = (
    "infection",
    "infusion_reaction",
    "thyroid",
    "autoimmune",
    "malignancy",
    "cns_inflammation",
    # contract v1.1 (additive): events the alemtuzumab label watches for 1-3 days after an
    # infusion (US PI 5.2-5.3; EMA 2019 review)
    "neurological",
    "stroke",
    "cervicocephalic_dissection",
    "myocardial_infarction",
    "pulmonary_alveolar_haemorrhage",
    "other",
)
AE_OUTCOMES = ("recovered", "recovering", "not_recovered", "fatal", "unknown")


@dataclass(frozen=True)
class Column:
    """One input column: how it is parsed and what makes a value valid."""

    name: str
    kind: Kind
    required: bool = False
    vocabulary: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None  # values must be a multiple of this (EDSS: 0.5)
    default: str | None = None  # used when the cell is empty


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = field(default=())  # natural key, for duplicate warnings

    @property
    def file(self) -> str:
        return f"{self.name}.csv"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


_PID = Column("patient_id", "text", required=True)

PATIENTS = Table(
    "patients",
    (
        _PID,
        Column("sex", "enum", vocabulary=SEXES),
        Column("birth_date", "partial_date"),
        Column("ms_type", "enum", vocabulary=MS_TYPES),
        Column("ms_onset_date", "date"),
    ),
    key=("patient_id",),
)
TREATMENTS = Table(
    "treatments",
    (
        _PID,
        Column("drug", "enum", required=True, vocabulary=DRUGS),
        Column("start_date", "date", required=True),
        Column("end_date", "date"),
        Column("course", "int", minimum=1),
        Column("dose", "number", minimum=0),
        Column("dose_unit", "text"),
        Column("stop_reason", "enum", vocabulary=STOP_REASONS),
    ),
    key=("patient_id", "drug", "start_date"),
)
LABS = Table(
    "labs",
    (
        _PID,
        Column("date", "date", required=True),
        Column("test", "lab", required=True),
        Column("value", "lab", required=True),
        Column("unit", "lab"),
        Column("ref_low", "lab"),
        Column("ref_high", "lab"),
    ),
    key=("patient_id", "date", "test"),
)
RELAPSES = Table(
    "relapses",
    (
        _PID,
        Column("onset_date", "date", required=True),
        Column("confirmed", "bool", default="true"),
        Column("severity", "enum", vocabulary=RELAPSE_SEVERITIES),
    ),
    key=("patient_id", "onset_date"),
)
MRI = Table(
    "mri",
    (
        _PID,
        Column("date", "date", required=True),
        Column("region", "enum", vocabulary=MRI_REGIONS, default="brain"),
        Column("contrast", "bool", default="true"),
        Column("new_t2", "int", minimum=0),
        Column("gd_enhancing", "int", minimum=0),
        Column("ring_enhancing", "int", minimum=0),
    ),
    key=("patient_id", "date", "region"),
)
EDSS = Table(
    "edss",
    (
        _PID,
        Column("date", "date", required=True),
        Column("score", "number", required=True, minimum=0, maximum=10, step=0.5),
    ),
    key=("patient_id", "date"),
)
ADVERSE_EVENTS = Table(
    "adverse_events",
    (
        _PID,
        Column("onset_date", "date", required=True),
        Column("term", "text", required=True),
        Column("category", "enum", required=True, vocabulary=AE_CATEGORIES),
        Column("serious", "bool", default="false"),
        Column("grade", "int", minimum=1, maximum=5),
        Column("outcome", "enum", vocabulary=AE_OUTCOMES),
        Column("resolution_date", "date"),
    ),
    key=("patient_id", "onset_date", "term"),
)

TABLES: dict[str, Table] = {
    t.name: t for t in (PATIENTS, TREATMENTS, LABS, RELAPSES, MRI, EDSS, ADVERSE_EVENTS)
}

# Canonical (stored) columns of the labs table after unit conversion: `value` is the
# number in the test's canonical unit, `value_text` the answer of a qualitative test.
# Contract v1.1 (additive): `value_reported` and `unit_reported` keep the value and unit
# text as the clinic gave them (e.g. 0.97 mg/dL beside 85.7674 umol/L), for display only.
LAB_REPORTED = ("value_reported", "unit_reported")
LAB_COLUMNS = (
    "patient_id",
    "date",
    "test",
    "value",
    "value_text",
    "unit",
    "ref_low",
    "ref_high",
    *LAB_REPORTED,
)
# Columns that say how a row was written, not what it says: outside a row's identity (the
# validator's duplicate warning, the store's row key), so 0.97 mg/dL and 0.970 mg/dL are
# one result, and rows stored before contract v1.1 are not stored again on re-import.
PRESENTATION_COLUMNS: dict[str, tuple[str, ...]] = {"labs": LAB_REPORTED}

# DuckDB types of the canonical (validated) tables; the store and engine use these.
CANONICAL_TYPES: dict[str, dict[str, str]] = {
    "patients": {
        "patient_id": "VARCHAR",
        "sex": "VARCHAR",
        "birth_date": "VARCHAR",  # YYYY, YYYY-MM or YYYY-MM-DD as given: never padded
        "ms_type": "VARCHAR",
        "ms_onset_date": "DATE",
    },
    "treatments": {
        "patient_id": "VARCHAR",
        "drug": "VARCHAR",
        "start_date": "DATE",
        "end_date": "DATE",
        "course": "INTEGER",
        "dose": "DOUBLE",
        "dose_unit": "VARCHAR",
        "stop_reason": "VARCHAR",
    },
    "labs": {
        "patient_id": "VARCHAR",
        "date": "DATE",
        "test": "VARCHAR",
        "value": "DOUBLE",
        "value_text": "VARCHAR",
        "unit": "VARCHAR",
        "ref_low": "DOUBLE",
        "ref_high": "DOUBLE",
        "value_reported": "VARCHAR",  # contract v1.1: the value text as given
        "unit_reported": "VARCHAR",  # contract v1.1: the unit text as given
    },
    "relapses": {
        "patient_id": "VARCHAR",
        "onset_date": "DATE",
        "confirmed": "BOOLEAN",
        "severity": "VARCHAR",
    },
    "mri": {
        "patient_id": "VARCHAR",
        "date": "DATE",
        "region": "VARCHAR",
        "contrast": "BOOLEAN",
        "new_t2": "INTEGER",
        "gd_enhancing": "INTEGER",
        "ring_enhancing": "INTEGER",
    },
    "edss": {"patient_id": "VARCHAR", "date": "DATE", "score": "DOUBLE"},
    "adverse_events": {
        "patient_id": "VARCHAR",
        "onset_date": "DATE",
        "term": "VARCHAR",
        "category": "VARCHAR",
        "serious": "BOOLEAN",
        "grade": "INTEGER",
        "outcome": "VARCHAR",
        "resolution_date": "DATE",
    },
}

# The date column of each table that `--as-of` cuts on (nothing dated after it is used).
EVENT_DATE: dict[str, str] = {
    "treatments": "start_date",
    "labs": "date",
    "relapses": "onset_date",
    "mri": "date",
    "edss": "date",
    "adverse_events": "onset_date",
}
