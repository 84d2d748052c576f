"""The profile's mapping, FHIR resource -> canonical table, as SQL over the table `res`.

Each canonical table comes out as text columns named as in the CSV contract, so the
same validator that checks a clinic's CSV files checks FHIR input too (one set of rules
for units, vocabularies and dates). `ELEMENTS` says which FHIR element each column came
from, so a problem names the resource and the element, not a CSV column.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

import duckdb
import pyarrow as pa

from dmtwatch.duck import sql_literal
from dmtwatch.fhir import codes as c
from dmtwatch.fhir.structure import (
    ADMINISTRATION_DOSAGE,
    CONCEPT,
    STATEMENT_DOSAGE,
    STATEMENT_REASON,
)
from dmtwatch.model.lab_catalogue import lab_catalogue


def in_list(values: Iterable[str]) -> str:
    """A SQL list for IN: ('a', 'b')."""
    return "(" + ", ".join(sql_literal(v) for v in values) + ")"


def _code(concept: str, system: str) -> str:
    """The first code of `system` among a CodeableConcept's codings.

    The usual concept has one coding: that case is answered without a list function.
    """
    first = f"{concept}.coding[1]"
    return (
        f"CASE WHEN {first}.system = {sql_literal(system)} THEN {first}.code "
        f"WHEN len({concept}.coding) > 1 THEN "
        f"list_filter({concept}.coding, lambda x: x.system = {sql_literal(system)})[1].code END"
    )


def _date(value: str) -> str:
    """The calendar date of a FHIR date/dateTime as recorded (no time-zone shift).

    Anything else (a partial date, a typo) passes through for the validator to refuse.
    """
    return (
        f"CASE WHEN regexp_matches({value}, '^\\d{{4}}-\\d{{2}}-\\d{{2}}(T.*)?$') "
        f"THEN left({value}, 10) ELSE coalesce({value}, '') END"
    )


def _text(value: str) -> str:
    return f"coalesce({value}, '')"


# canonical column -> the FHIR element it came from (for messages), per table
ELEMENTS: dict[str, dict[str, str]] = {
    "patients": {
        "patient_id": "id",
        "sex": "gender",
        "birth_date": "birthDate",
        "ms_type": "Condition.code",
        "ms_onset_date": "Condition.onset[x]",
    },
    "treatments": {
        "patient_id": "subject.reference",
        "drug": "medicationCodeableConcept",
        "start_date": "effective[x] / performed[x] start",
        "end_date": "effective[x] / performed[x] end",
        "course": "(course number)",
        "dose": "dosage dose.value",
        "dose_unit": "dosage dose.code",
        "stop_reason": "statusReason",
    },
    "labs": {
        "patient_id": "subject.reference",
        "date": "effectiveDateTime",
        "test": "code",
        "value": "value[x]",
        "unit": "valueQuantity.code",
        "ref_low": "referenceRange.low.value",
        "ref_high": "referenceRange.high.value",
    },
    "relapses": {
        "patient_id": "subject.reference",
        "onset_date": "onset[x]",
        "confirmed": "verificationStatus",
        "severity": "severity",
    },
    "mri": {
        "patient_id": "subject.reference",
        "date": "effectiveDateTime",
        "region": "bodySite",
        "contrast": "component[contrast].valueBoolean",
        "new_t2": "component[new-t2].valueInteger",
        "gd_enhancing": "component[gd-enhancing].valueInteger",
        "ring_enhancing": "component[ring-enhancing].valueInteger",
    },
    "edss": {
        "patient_id": "subject.reference",
        "date": "effectiveDateTime",
        "score": "valueQuantity.value",
    },
    "adverse_events": {
        "patient_id": "subject.reference",
        "onset_date": "date",
        "term": "event.text",
        "category": "event.coding",
        "serious": "seriousness",
        "grade": f"extension[{c.AE_GRADE_EXTENSION}]",
        "outcome": "outcome",
        "resolution_date": f"extension[{c.AE_RESOLUTION_EXTENSION}]",
    },
}

# Statuses that mean "this did not happen": such resources are counted and skipped.
_SKIPPED_STATUS = {
    "MedicationAdministration": "r.status NOT IN ('completed', 'in-progress')",
    "MedicationStatement": "r.status IN ('entered-in-error', 'not-taken')",
    "Procedure": "r.status IN ('entered-in-error', 'not-done')",
    "Observation": "r.status IN ('entered-in-error', 'cancelled')",
    "AdverseEvent": "r.actuality = 'potential'",
}


def register_code_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The code maps of codes.py and the lab catalogue, as small DuckDB tables."""
    for name, table in _code_tables().items():
        con.register(name, table)


@cache
def _code_tables() -> dict[str, pa.Table]:
    cat = lab_catalogue()
    tables = {
        "map_rxnorm": c.RXNORM_TO_DRUG,
        "map_atc": c.ATC_TO_DRUG,
        "map_loinc": {code: name for name, t in cat.tests.items() for code in t.loinc},
        "map_gender": c.GENDER_TO_SEX,
        "map_subtype": c.MS_SUBTYPES,
        "map_severity": c.SNOMED_TO_SEVERITY,
        "map_region": c.SNOMED_TO_REGION,
        "map_outcome": c.AE_OUTCOME_TO_CANONICAL,
    }
    return {
        name: pa.table({"k": list(mapping), "v": list(mapping.values())})
        for name, mapping in tables.items()
    }


def classify(con: duckdb.DuckDBPyConnection) -> None:
    """Narrow tables over `res`: `cls`, each resource's target table (NULL: not used) and
    codes; `used`, the resources we read with their patient; view `usable` adds `r`.

    `n` (the row of `res`) is the row number the validator reports. The big struct `r`
    is never copied: queries join it back by `n`.
    """
    med = "r.medicationCodeableConcept"

    def when(rtypes: tuple[str, ...], sql: str) -> str:
        return f"CASE WHEN r.resourceType IN {in_list(rtypes)} THEN {sql} END"

    meds = ("MedicationAdministration", "MedicationStatement")
    con.execute(
        f"""
        CREATE TEMP TABLE ext AS
        SELECT rowid AS n, src, full_url, shape, r.resourceType AS rtype, r.id AS rid,
               coalesce(r.resourceType, '(no resourceType)') || '/' ||
                 coalesce(r.id, '(no id, in ' || src || ')') AS ref,
               coalesce(r.subject.reference, r.patient.reference) AS subject_ref,
               r.status AS status, r.actuality AS actuality,
               {when(("Observation",), _code("r.code", c.LOINC))} AS loinc,
               {when(("Observation",), _code("r.code", c.LAB_SYSTEM))} AS lab_own,
               {when(("Observation",), _code("r.code", c.OBSERVATION_SYSTEM))} AS observation,
               {when(("Condition",), _code("r.code", c.SNOMED))} AS snomed,
               {when(("Condition",), _code("r.code", c.MS_TYPE_SYSTEM))} AS ms_own,
               {when(("Condition",), _code("r.code", c.EVENT_SYSTEM))} AS event_own,
               {when(("Condition",), _code("r.verificationStatus", c.CONDITION_VERIFICATION))}
                 AS verification,
               {when(meds, _code(med, c.DRUG_SYSTEM))} AS med_own,
               {when(meds, _code(med, c.RXNORM))} AS med_rx,
               {when(meds, _code(med, c.ATC))} AS med_atc,
               {when(("Procedure",), _code("r.code", c.DRUG_SYSTEM))} AS procedure_drug
        FROM res
        """
    )
    skipped = " ".join(
        f"WHEN {sql_literal(t)} THEN {cond.replace('r.', '')}"
        for t, cond in _SKIPPED_STATUS.items()
    )
    con.execute(
        f"""
        CREATE TEMP TABLE cls AS
        SELECT *,
          coalesce(CASE rtype {skipped} END, false)
            OR (rtype = 'Condition' AND coalesce(verification IN {in_list(c.VERIFICATION_SKIPPED)}, false))
            AS skip,
          CASE rtype
            WHEN 'Patient' THEN 'patients'
            WHEN 'Condition' THEN CASE
              WHEN snomed IN {in_list([c.MS_CONDITION, *c.MS_SUBTYPES])} OR ms_own IS NOT NULL THEN 'ms'
              WHEN snomed = {sql_literal(c.RELAPSE_CONDITION)} OR event_own = 'relapse' THEN 'relapses' END
            WHEN 'MedicationAdministration' THEN CASE WHEN drug IS NOT NULL THEN 'treatments' END
            WHEN 'MedicationStatement' THEN CASE WHEN drug IS NOT NULL THEN 'treatments' END
            WHEN 'Procedure' THEN CASE WHEN drug IS NOT NULL THEN 'treatments' END
            WHEN 'Observation' THEN CASE
              WHEN observation = {sql_literal(c.MRI_CODE)} THEN 'mri'
              WHEN observation = {sql_literal(c.EDSS_CODE)} THEN 'edss'
              WHEN lab IS NOT NULL THEN 'labs' END
            WHEN 'AdverseEvent' THEN 'adverse_events'
          END AS target
        FROM (
          SELECT e.*, coalesce(e.med_own, rx.v, atc.v, e.procedure_drug) AS drug,
                 coalesce(lo.v, e.lab_own) AS lab
          FROM ext e LEFT JOIN map_rxnorm rx ON rx.k = e.med_rx
          LEFT JOIN map_atc atc ON atc.k = e.med_atc LEFT JOIN map_loinc lo ON lo.k = e.loinc)
        """
    )
    con.execute("DROP TABLE ext")
    con.execute(
        """
        CREATE TEMP VIEW patient_res AS
        SELECT c.n, c.rid, c.full_url, x.r FROM cls c
        JOIN (SELECT rowid AS rn, r FROM res) x ON x.rn = c.n WHERE c.rtype = 'Patient';
        CREATE TEMP TABLE pat_keys AS
        SELECT key, min(patient_id) AS patient_id FROM (
          SELECT 'Patient/' || rid AS key, rid AS patient_id FROM patient_res
          UNION ALL SELECT full_url, rid FROM patient_res WHERE full_url IS NOT NULL
          UNION ALL SELECT 'Patient?identifier=' || coalesce(i.system || '|', '') || i.value, rid
            FROM (SELECT rid, unnest(r.identifier) AS i FROM patient_res)
          UNION ALL SELECT 'Patient?identifier=' || i.value, rid
            FROM (SELECT rid, unnest(r.identifier) AS i FROM patient_res))
        WHERE key IS NOT NULL GROUP BY key
        """
    )
    # a subject's reference, absolute URLs and _history versions reduced to Patient/<id>
    subject = "u.subject_ref"
    short = (
        f"CASE WHEN regexp_matches({subject}, '^https?://') "
        f"THEN regexp_extract({subject}, '(Patient/[^/]+)(/_history/[^/]+)?$', 1) "
        f"ELSE regexp_replace({subject}, '/_history/[^/]+$', '') END"
    )
    con.execute(
        f"""
        CREATE TEMP TABLE used AS
        SELECT u.n, u.ref, u.rtype, u.rid, u.subject_ref, u.target, u.drug, u.lab,
               CASE WHEN rtype = 'Patient' THEN rid ELSE k.patient_id END AS patient_id
        FROM (SELECT * FROM cls WHERE target IS NOT NULL AND NOT skip) u
        LEFT JOIN pat_keys k ON k.key = {short}
        """
    )
    con.execute(
        "CREATE TEMP VIEW usable AS SELECT u.*, x.r FROM used u "
        "JOIN (SELECT rowid AS rn, r FROM res) x ON x.rn = u.n WHERE u.patient_id IS NOT NULL"
    )


def table_queries() -> dict[str, str]:
    """SQL per canonical table: its CSV columns as text, `_row` (= n) and `ref`."""
    dosage_admin = f"from_json(r.dosage, {sql_literal(ADMINISTRATION_DOSAGE)}).dose"
    dosage_stmt = (
        f"from_json(r.dosage, {sql_literal(STATEMENT_DOSAGE)})[1].doseAndRate[1].doseQuantity"
    )
    dose = (
        f"CASE rtype WHEN 'MedicationAdministration' THEN {dosage_admin} "
        f"WHEN 'MedicationStatement' THEN {dosage_stmt} END"
    )
    # a list of concepts in MedicationStatement, one concept in Procedure
    reasons = (
        f"CASE rtype WHEN 'MedicationStatement' THEN flatten(list_transform("
        f"from_json(r.statusReason, {sql_literal(STATEMENT_REASON)}), lambda x: x.coding)) "
        f"WHEN 'Procedure' THEN from_json(r.statusReason, {sql_literal(CONCEPT)}).coding END"
    )
    stop_reason = (
        f"list_filter({reasons}, lambda x: x.system = {sql_literal(c.STOP_REASON_SYSTEM)})[1].code"
    )
    start = "coalesce(r.effectivePeriod.start, r.effectiveDateTime, r.performedPeriod.start, r.performedDateTime)"
    end = 'CASE WHEN r.effectivePeriod IS NOT NULL OR r.performedPeriod IS NOT NULL THEN coalesce(r.effectivePeriod."end", r.performedPeriod."end") ELSE coalesce(r.effectiveDateTime, r.performedDateTime) END'
    onset = "coalesce(r.onsetDateTime, r.onsetPeriod.start)"
    verification = _code("r.verificationStatus", c.CONDITION_VERIFICATION)
    confirmed = (
        f"CASE WHEN {verification} IS NULL THEN '' "
        + " ".join(
            f"WHEN {verification} = {sql_literal(k)} THEN {sql_literal(str(v).lower())}"
            for k, v in c.VERIFICATION_TO_CONFIRMED.items()
        )
        + f" ELSE {verification} END"
    )
    severity = _code("r.severity", c.SNOMED)

    def component(name: str, value: str) -> str:
        pick = (
            f"list_filter(r.component, lambda x: len(list_filter(x.code.coding, lambda y: "
            f"y.system = {sql_literal(c.OBSERVATION_SYSTEM)} AND y.code = {sql_literal(name)})) > 0)[1]"
        )
        return _text(value.format(x=pick))

    body_site = _code("r.bodySite", c.SNOMED)
    outcome = _code(f"from_json(r.outcome, {sql_literal(CONCEPT)})", c.AE_OUTCOME)
    seriousness = _code("r.seriousness", c.AE_SERIOUSNESS)

    def extension(url: str, value: str) -> str:
        return _text(f"list_filter(r.extension, lambda x: x.url = {sql_literal(url)})[1].{value}")

    common = "n AS _row, ref, coalesce(patient_id, '') AS patient_id"
    return {
        "patients": f"""
            SELECT {common}, coalesce(g.v, r.gender, '') AS sex,
                   {_text("r.birthDate")} AS birth_date,
                   coalesce(ms.ms_type, '') AS ms_type, coalesce(ms.onset, '') AS ms_onset_date
            FROM usable LEFT JOIN map_gender g ON g.k = r.gender
            LEFT JOIN (
              SELECT patient_id AS pid,
                     arg_max(coalesce(st.v, {_code("r.code", c.MS_TYPE_SYSTEM)}),
                             coalesce({_date(onset)}, ''))
                       FILTER (WHERE coalesce(st.v, {_code("r.code", c.MS_TYPE_SYSTEM)}) IS NOT NULL)
                       AS ms_type,
                     min(nullif({_date(onset)}, '')) AS onset
              FROM usable LEFT JOIN map_subtype st ON st.k = {_code("r.code", c.SNOMED)}
              WHERE target = 'ms' GROUP BY patient_id) ms ON ms.pid = usable.patient_id
            WHERE target = 'patients'""",
        "relapses": f"""
            SELECT {common}, {_date(onset)} AS onset_date, {confirmed} AS confirmed,
                   coalesce(s.v, {severity}, '') AS severity
            FROM usable LEFT JOIN map_severity s ON s.k = {severity}
            WHERE target = 'relapses'""",
        "treatments": f"""
            SELECT {common}, drug, {_date(start)} AS start_date, {_date(end)} AS end_date,
                   '' AS course, {_text(f"({dose}).value")} AS dose,
                   {_text(f"coalesce(({dose}).code, ({dose}).unit)")} AS dose_unit,
                   {_text(stop_reason)} AS stop_reason,
                   rtype = 'MedicationAdministration' AS administered
            FROM usable WHERE target = 'treatments'""",
        "labs": f"""
            SELECT {common}, {_date("coalesce(r.effectiveDateTime, r.effectivePeriod.start)")} AS date,
                   lab AS test,
                   {_text("coalesce(r.valueQuantity.value, r.valueString, r.valueCodeableConcept.text, r.valueCodeableConcept.coding[1].display, r.valueCodeableConcept.coding[1].code, r.valueInteger)")} AS value,
                   {_text("coalesce(r.valueQuantity.code, r.valueQuantity.unit)")} AS unit,
                   {_text("r.referenceRange[1].low.value")} AS ref_low,
                   {_text("r.referenceRange[1].high.value")} AS ref_high
            FROM usable WHERE target = 'labs'""",
        "mri": f"""
            SELECT {common}, {_date("coalesce(r.effectiveDateTime, r.effectivePeriod.start)")} AS date,
                   coalesce(rg.v, {body_site}, '') AS region,
                   {component("contrast", "{x}.valueBoolean")} AS contrast,
                   {component("new-t2", "coalesce({x}.valueInteger, {x}.valueQuantity.value)")} AS new_t2,
                   {component("gd-enhancing", "coalesce({x}.valueInteger, {x}.valueQuantity.value)")} AS gd_enhancing,
                   {component("ring-enhancing", "coalesce({x}.valueInteger, {x}.valueQuantity.value)")} AS ring_enhancing
            FROM usable LEFT JOIN map_region rg ON rg.k = {body_site}
            WHERE target = 'mri'""",
        "edss": f"""
            SELECT {common}, {_date("coalesce(r.effectiveDateTime, r.effectivePeriod.start)")} AS date,
                   {_text("coalesce(r.valueQuantity.value, r.valueInteger)")} AS score
            FROM usable WHERE target = 'edss'""",
        "adverse_events": f"""
            SELECT {common}, {_date("r.date")} AS onset_date,
                   {_text("coalesce(r.event.text, list_filter(r.event.coding, lambda x: x.system IS DISTINCT FROM " + sql_literal(c.AE_CATEGORY_SYSTEM) + ")[1].display)")} AS term,
                   coalesce({_code("r.event", c.AE_CATEGORY_SYSTEM)}, 'other') AS category,
                   CASE {seriousness} WHEN 'serious' THEN 'true' WHEN 'non-serious' THEN 'false'
                     ELSE coalesce({seriousness}, '') END AS serious,
                   {extension(c.AE_GRADE_EXTENSION, "valueInteger")} AS grade,
                   coalesce(o.v, {outcome}, '') AS outcome,
                   {extension(c.AE_RESOLUTION_EXTENSION, "valueDate")} AS resolution_date
            FROM usable LEFT JOIN map_outcome o ON o.k = {outcome}
            WHERE target = 'adverse_events'""",
    }
