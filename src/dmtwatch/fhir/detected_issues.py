"""Findings as a FHIR R4 Bundle of DetectedIssue resources (profile, section Output).

One DetectedIssue per finding. When the input was FHIR, the reader's provenance table says
which resource each canonical row came from, so a finding can point at the resources
behind it: the therapy it concerns as `implicated`, the results, scans and relapses that
raised it as `evidence`. Without provenance there is nothing to point at, and neither
element is written.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

import duckdb
import orjson
import pyarrow as pa

from dmtwatch.engine.run import Findings
from dmtwatch.fhir import codes
from dmtwatch.fhir.write import full_url
from dmtwatch.model.lab_catalogue import lab_catalogue

# Resource types that record a therapy: what a finding is about, not what shows it.
THERAPY_TYPES = ("MedicationAdministration", "MedicationStatement", "Procedure")

Key = tuple[str, str, str | None]  # a finding: (code, patient_id, test)


def _issue_id(code: str, patient_id: str, test: str | None) -> str:
    """Stable per finding key, so the same issue found again next week keeps its id."""
    text = "|".join(["finding", code, patient_id, test or ""])
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def evidence_refs(result: Findings, provenance: pa.Table) -> dict[Key, list[dict]]:
    """The References behind each finding, in evidence order.

    Evidence rows join provenance on table, patient and date; a lab row also on its test
    (the evidence `item`, which names the result's test). A treatment row is dated by a
    course's first or last day, provenance by its first: it points at the treatment(s) of
    its drug (the first word of its `item`) started last on or before its date.
    """
    con = duckdb.connect()
    try:
        con.register("evidence", result.evidence)
        con.register("provenance", provenance)
        con.register("tests", pa.table({"name": list(lab_catalogue().tests)}))
        rows = con.sql(_EVIDENCE_SQL).fetchall()
    finally:
        con.close()
    out: dict[Key, list[dict]] = defaultdict(list)
    seen: set[tuple[Key, str]] = set()
    for code, patient_id, test, ref, item, value, day in rows:
        key = (code, patient_id, test)
        if (key, ref) in seen:
            continue
        seen.add((key, ref))
        when = day.isoformat()
        display = f"{item}: {value}" + ("" if when in value else f" ({when})")
        out[key].append({"reference": ref, "display": display})
    return out


_EVIDENCE_SQL = """
WITH ev AS (
  SELECT *, row_number() OVER () AS n,
         CASE WHEN "table" = 'labs'
              THEN coalesce((SELECT name FROM tests WHERE name = item), test) END AS lab_test
  FROM evidence),
started AS (SELECT DISTINCT patient_id, drug, date FROM provenance WHERE "table" = 'treatments'),
course AS (
  SELECT ev.n, s.drug, s.date AS start FROM ev
  ASOF JOIN started s ON ev.patient_id = s.patient_id
   AND split_part(ev.item, ' ', 1) = s.drug AND ev.date >= s.date
  WHERE ev."table" = 'treatments'),
matched AS (
  SELECT ev.*, p.ref FROM ev JOIN provenance p
    ON p."table" = ev."table" AND p.patient_id = ev.patient_id AND p.date = ev.date
   AND (p.test IS NULL OR ev.lab_test IS NULL OR p.test = ev.lab_test)
  WHERE ev."table" <> 'treatments'
  UNION ALL
  SELECT ev.*, p.ref FROM ev JOIN course c ON c.n = ev.n
  JOIN provenance p
    ON p."table" = 'treatments' AND p.patient_id = ev.patient_id AND p.drug = c.drug
   AND p.date = c.start)
SELECT code, patient_id, test, ref, item, value, date FROM matched
ORDER BY code, patient_id, test, date, n, ref
"""


def detected_issue(finding: dict, refs: list[dict] | None = None) -> dict:
    """One finding (a row of Findings.findings) as a DetectedIssue."""
    code, patient_id, test = finding["code"], finding["patient_id"], finding["test"]
    issue: dict = {
        "resourceType": "DetectedIssue",
        "id": _issue_id(code, patient_id, test),
        # the finding's stable identity (contract section 4): the same occurrence keeps it
        "identifier": [{"system": codes.FINDING_KEY_SYSTEM, "value": finding["key"]}],
        "status": "final",
        "code": {
            "coding": [{"system": codes.FINDING_SYSTEM, "code": code, "display": finding["title"]}],
            "text": finding["title"],
        },
        "severity": codes.SEVERITY_TO_ISSUE[finding["severity"]],
        "patient": {"reference": f"Patient/{patient_id}"},
        "identifiedDateTime": finding["date"].isoformat(),
    }
    refs = refs or []
    implicated = [r for r in refs if r["reference"].split("/")[0] in THERAPY_TYPES]
    shown = [r for r in refs if r not in implicated]
    if implicated:
        issue["implicated"] = implicated
    if shown:
        issue["evidence"] = [{"detail": shown}]
    issue["detail"] = finding["detail"]
    issue["reference"] = finding["source"]
    issue["mitigation"] = [{"action": {"text": finding["action"]}}]
    return issue


def issues_bundle(result: Findings, provenance: pa.Table | None = None) -> dict:
    """A collection Bundle of one DetectedIssue per finding, most urgent first."""
    refs = evidence_refs(result, provenance) if provenance is not None else {}
    entries = []
    for f in result.findings.to_pylist():
        issue = detected_issue(f, refs.get((f["code"], f["patient_id"], f["test"])))
        entries.append({"fullUrl": full_url(issue), "resource": issue})
    return {
        "resourceType": "Bundle",
        "id": f"dmtwatch-findings-{result.as_of.isoformat()}",
        "type": "collection",
        "entry": entries,
    }


def to_json(result: Findings, provenance: pa.Table | None = None) -> str:
    bundle = issues_bundle(result, provenance)
    return orjson.dumps(bundle, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE).decode()
