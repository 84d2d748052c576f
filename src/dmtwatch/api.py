"""The Python front door: the same readers, engine, audit and signals as the commands.

    >>> import dmtwatch
    >>> clinic = dmtwatch.read_clinic("clinic/")          # doctest: +SKIP
    >>> worklist = dmtwatch.check(clinic, "2016-01-15")   # doctest: +SKIP
    >>> worklist.to_pandas()                               # doctest: +SKIP

Each function calls exactly what its command calls (`dmtwatch check` and
`dmtwatch.check` cannot disagree), and returns a small typed result instead of text:
a notebook or a pipeline gets Arrow or pandas tables, and findings as dataclasses. Every
expected failure is a `dmtwatch.DmtwatchError` (bad input: `InputRejected` with every
problem; a wrong argument: `UsageError`); nothing here prints or logs patient data.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from dmtwatch.errors import UsageError
from dmtwatch.io.problems import Problem
from dmtwatch.model.dataset import Dataset

if TYPE_CHECKING:
    import pandas as pd

    from dmtwatch.engine.run import Findings
    from dmtwatch.outcomes.result import Audit
    from dmtwatch.pv.report_sets import ReportSets
    from dmtwatch.pv.signals import Prior
    from dmtwatch.pv.signals import Signals as _PvSignals

__all__ = [
    "SUBGROUP_KEYS",
    "Audit",
    "Clinic",
    "Evidence",
    "Finding",
    "Signals",
    "Worklist",
    "audit",
    "check",
    "check_subgroup",
    "read_clinic",
    "reports_table",
    "signals",
    "stratum_columns",
]

SEVERITIES = ("urgent", "high", "routine", "info")


# --- reading a clinic ----------------------------------------------------------------


@dataclass(frozen=True)
class Clinic:
    """A validated clinic: the canonical tables (contract section 1) and the warnings
    found while reading it. Read once, then checked or audited as of any date."""

    dataset: Dataset
    warnings: tuple[Problem, ...] = ()
    provenance: pa.Table | None = field(default=None, repr=False)  # FHIR: row -> resource

    def __getitem__(self, table: str) -> pa.Table:
        """One canonical table (`patients`, `labs`, ...) as Arrow."""
        return self.dataset[table]

    def row_counts(self) -> dict[str, int]:
        """Rows per canonical table."""
        return self.dataset.row_counts()


def read_clinic(source: str | Path) -> Clinic:
    """Read and validate a clinic, as `dmtwatch check` reads `--data`, `--fhir` or `--db`.

    `source` is a folder of CSV files, an .xlsx workbook, FHIR R4 (a Bundle .json, an
    .ndjson file, or a folder of Bulk Data *.ndjson or Bundle files), or a store URL
    (`sqlite:///clinic.db`, `postgresql://...`) filled by `dmtwatch import`.

    Raises `InputRejected` (with `.problems`, every one found) when the input is refused
    as a whole, and `StoreError` when a store cannot be read.
    """
    if isinstance(source, str) and "://" in source:
        from dmtwatch.store import load

        return Clinic(load(source))
    path = Path(source)
    if _is_fhir(path):
        from dmtwatch.fhir.read import read_fhir

        data = read_fhir(path)
        return Clinic(data.dataset, tuple(data.warnings), data.provenance)
    from dmtwatch.io import read_clinic as read_tables

    dataset, warnings = read_tables(path)
    return Clinic(dataset, tuple(warnings))


def _is_fhir(path: Path) -> bool:
    """FHIR files by their suffix; a folder by holding FHIR files and no CSV."""
    fhir = (".json", ".ndjson")
    if path.is_file():
        return path.suffix.lower() in fhir
    if path.is_dir():
        suffixes = {p.suffix.lower() for p in path.iterdir() if p.is_file()}
        return bool(suffixes & set(fhir)) and ".csv" not in suffixes
    return False


def _day(as_of: dt.date | str | None) -> dt.date:
    if as_of is None:
        return dt.date.today()
    if isinstance(as_of, dt.datetime):
        return as_of.date()
    if isinstance(as_of, dt.date):
        return as_of
    try:
        return dt.date.fromisoformat(as_of)
    except ValueError:
        raise UsageError(f"'{as_of}' is not a date (YYYY-MM-DD)") from None


# --- the worklist --------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """One input row behind a finding: its table, date, item and value as shown."""

    table: str
    date: dt.date | None
    item: str | None
    value: str | None


@dataclass(frozen=True)
class Finding:
    """One worklist entry: a row of the engine's findings table (contract section 4).

    `key` is the finding's stable identity (the same occurrence keeps it from run to
    run) and `facts` what the rule found as values (contract section 4)."""

    code: str
    patient_id: str
    test: str | None
    severity: str
    date: dt.date
    title: str
    detail: str
    action: str
    source: str
    grade: int | None
    protocol: str
    key: str
    facts: dict[str, Any] = field(default_factory=dict, hash=False)
    evidence: tuple[Evidence, ...] = ()


class Worklist:
    """The findings of one check, most urgent first, as `dmtwatch check` prints them.

    Iterate for typed `Finding`s; `to_arrow()` / `to_pandas()` give the table;
    `summary` gives one row per code, as the CLI's `--summary`."""

    def __init__(self, result: Findings) -> None:
        self._result = result

    @property
    def as_of(self) -> dt.date:
        """Nothing dated after this day was used."""
        return self._result.as_of

    @property
    def evidence(self) -> pa.Table:
        """The input rows behind every finding (code, patient_id, test, table, date,
        item, value)."""
        return self._result.evidence

    def __len__(self) -> int:
        return self._result.findings.num_rows

    def __iter__(self) -> Iterator[Finding]:
        evidence = {
            key: [Evidence(e["table"], e["date"], e["item"], e["value"]) for e in rows]
            for key, rows in self._result.evidence_by_finding().items()
        }
        for row in self._result.findings.to_pylist():
            yield Finding(
                code=row["code"],
                patient_id=row["patient_id"],
                test=row["test"],
                severity=row["severity"],
                date=row["date"],
                title=row["title"],
                detail=row["detail"],
                action=row["action"],
                source=row["source"],
                grade=row["grade"],
                protocol=row["protocol"],
                key=row["key"],
                facts=json.loads(row["facts"]),
                evidence=tuple(evidence.get((row["code"], row["patient_id"], row["test"]), ())),
            )

    def __repr__(self) -> str:
        return f"<Worklist as of {self.as_of.isoformat()}: {len(self)} finding(s)>"

    def to_arrow(self) -> pa.Table:
        """The findings table, most urgent first."""
        return self._result.findings

    def to_pandas(self) -> pd.DataFrame:
        """The findings table as a DataFrame, most urgent first."""
        return self._result.findings.to_pandas()

    def to_json(self) -> str:
        """The contract's JSON (section 4), exactly as `dmtwatch check --format json`."""
        from dmtwatch.render import worklist

        return worklist.to_json(self._result)

    def counts(self) -> dict[str, int]:
        """Findings per code."""
        return self._result.counts()

    @property
    def summary(self) -> pd.DataFrame:
        """One row per code: findings, patients, and findings per severity."""
        import pandas as pd

        rows = {}
        for f in self._result.findings.select(["code", "patient_id", "severity"]).to_pylist():
            row = rows.setdefault(
                f["code"], {"findings": 0, "patients": set(), **dict.fromkeys(SEVERITIES, 0)}
            )
            row["findings"] += 1
            row["patients"].add(f["patient_id"])
            row[f["severity"]] += 1
        frame = pd.DataFrame(
            [{"code": c, **r, "patients": len(r["patients"])} for c, r in sorted(rows.items())],
            columns=["code", "findings", "patients", *SEVERITIES],
        )
        return frame.set_index("code")


def check(
    clinic: Clinic, as_of: dt.date | str | None = None, protocols: Sequence[str] | None = None
) -> Worklist:
    """Run the monitoring protocols over the whole cohort, as `dmtwatch check` does.

    `as_of` (a date or YYYY-MM-DD; default today): nothing dated later is used.
    `protocols`: protocol names (default: every shipped protocol).
    """
    from dmtwatch.engine.run import run_check

    return Worklist(run_check(clinic.dataset, _day(as_of), list(protocols) if protocols else None))


# --- the outcomes audit --------------------------------------------------------------

SUBGROUP_KEYS = ("ms_type", "prior_drug", "sex", "switch_reason")
"""What `where` may select a subgroup by (the audit cohort's columns)."""


def check_subgroup(where: Mapping[str, str] | None) -> dict[str, str]:
    """The subgroup selection as a dict; UsageError naming any key it cannot select by."""
    chosen = dict(where or {})
    unknown = set(chosen) - set(SUBGROUP_KEYS)
    if unknown:
        raise UsageError(
            f"cannot select a subgroup by {sorted(unknown)}; use {sorted(SUBGROUP_KEYS)}"
        )
    return chosen


def __getattr__(name: str) -> Any:
    """`Audit`, the audit's typed result, loads with the audit (statistics, plotting)."""
    if name == "Audit":
        from dmtwatch.outcomes.result import Audit

        return Audit
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def audit(
    clinic: Clinic,
    as_of: dt.date | str | None = None,
    *,
    pre_window: int | Literal["therapy"] = 365,
    post_window: int = 365,
    where: Mapping[str, str] | None = None,
) -> Audit:
    """The outcomes audit, as `dmtwatch audit` computes it.

    `pre_window`: days before day 0 (the first alemtuzumab infusion), or "therapy" for
    the prior therapy's own time; `post_window`: days from day 0; `where`: a subgroup,
    e.g. {"switch_reason": "inefficacy"} (keys: SUBGROUP_KEYS).
    """
    from dmtwatch.outcomes.context import AuditOptions
    from dmtwatch.outcomes.run import compute_audit

    if pre_window != "therapy" and not (isinstance(pre_window, int) and pre_window >= 0):
        raise UsageError(f"'{pre_window}' is neither a number of days nor 'therapy'")
    if not (isinstance(post_window, int) and post_window >= 1):
        raise UsageError(f"post_window {post_window!r}: expected a number of days >= 1")
    options = AuditOptions(
        pre_window=pre_window, post_window_days=post_window, where=check_subgroup(where)
    )
    return compute_audit(clinic.dataset, _day(as_of), options)


# --- signals from spontaneous reports ------------------------------------------------


class Signals:
    """Disproportionality (PRR, ROR, IC, EBGM) for every drug-event pair, as
    `dmtwatch signals` computes it; `problems` are the input lines skipped."""

    def __init__(self, result: _PvSignals, problems: Sequence[Problem]) -> None:
        self._result = result
        self.problems = tuple(problems)

    @property
    def pairs(self) -> pa.Table:
        """One row per pair asked for (contract section 6 columns, and more)."""
        return self._result.pairs

    @property
    def prior(self) -> Prior:
        """The fitted gamma-mixture (GPS) prior behind EBGM."""
        return self._result.prior

    @property
    def n_reports(self) -> int:
        return self._result.n_reports

    def __len__(self) -> int:
        return self._result.pairs.num_rows

    def __repr__(self) -> str:
        return f"<Signals: {len(self)} pair(s) from {self.n_reports} report(s)>"

    def to_arrow(self) -> pa.Table:
        return self._result.pairs

    def to_pandas(self) -> pd.DataFrame:
        return self._result.pairs.to_pandas()

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of `dmtwatch signals --format json`."""
        return self._result.to_dict()


def signals(
    reports: str | Path | None = None,
    *,
    faers: Sequence[str | Path] | None = None,
    stratify: Sequence[str] = (),
    drugs: Sequence[str] | None = None,
    min_count: int = 1,
    squash: bool = False,
    drug_map: str | Path | None = None,
    all_roles: bool = False,
) -> Signals:
    """Disproportionality for every drug-event pair, as `dmtwatch signals` computes it.

    Give `reports` (a CSV: report_id, drug, event[, strata]) or `faers` (FAERS quarterly
    ASCII folders or zips; suspect drugs only unless `all_roles`). `drugs` keeps the
    pairs of those drugs; `stratify` names stratum columns.
    """
    from dmtwatch.pv.signals import detect

    if (reports is None) == (not faers):
        raise UsageError("give exactly one of reports or faers")
    table, problems = reports_table(reports, faers, drug_map=drug_map, all_roles=all_roles)
    strata = stratum_columns(table, stratify)
    result = detect(table, strata, list(drugs) if drugs else None, min_count, squash)
    return Signals(result, problems)


def reports_table(
    reports: str | Path | None,
    faers: Sequence[str | Path] | None,
    *,
    drug_map: str | Path | None = None,
    all_roles: bool = False,
) -> tuple[pa.Table | ReportSets, list[Problem]]:
    """The reports (a CSV file, else FAERS quarters) and the lines skipped; shared with
    `dmtwatch signals`."""
    from dmtwatch.pv.faers import read_faers
    from dmtwatch.pv.reports import read_reports_csv

    if reports is not None:
        return read_reports_csv(reports)
    table, problems, _counts = read_faers(
        list(faers or []), roles=None if all_roles else ("PS", "SS"), drug_map=drug_map
    )
    return table, problems


def stratum_columns(table: pa.Table | ReportSets, stratify: Sequence[str]) -> list[str]:
    """The stratum columns asked for; SignalsError (input) naming any the reports lack."""
    from dmtwatch.pv.signals import SignalsError

    strata = list(stratify)
    missing = [s for s in strata if s not in table.column_names]
    if missing:
        raise SignalsError(
            f"no stratum column {', '.join(missing)}; the reports have {', '.join(table.column_names)}"
        )
    return strata
