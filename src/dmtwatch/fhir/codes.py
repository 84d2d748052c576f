"""The codes of the dmtwatch FHIR R4 profile (`spec/fhir-profile.md`), written down once.

The reader and the writer both take their code systems, codes and extension URLs from
here, so what one writes the other reads. Standard codes come from the clinical
reference (`reference/clinical.md` section 5); our own code systems
(`urn:dmtwatch:codesystem:<name>`) are used only where no standard code exists there.
"""

from __future__ import annotations

from dmtwatch.model.tables import AE_CATEGORIES, DRUGS, STOP_REASONS

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
AE_SERIOUSNESS = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
AE_OUTCOME = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def own(name: str) -> str:
    """One of our own code systems, e.g. own('drug') = 'urn:dmtwatch:codesystem:drug'."""
    return f"urn:dmtwatch:codesystem:{name}"


DRUG_SYSTEM = own("drug")  # codes: the interchange drug vocabulary
LAB_SYSTEM = own("lab")  # codes: our lab short names (for tests without a LOINC code)
EVENT_SYSTEM = own("event")  # code: relapse
MS_TYPE_SYSTEM = own("ms-type")  # code: CIS (no SNOMED code in the reference)
STOP_REASON_SYSTEM = own("stop-reason")  # codes: the interchange stop_reason vocabulary
OBSERVATION_SYSTEM = own("observation")  # codes: mri-lesions, edss, and the MRI components
AE_CATEGORY_SYSTEM = own("ae-category")  # codes: the interchange AE category vocabulary
FINDING_SYSTEM = own("finding")  # codes: the finding codes (MON-OVERDUE, CNS-RING, ...)
FINDING_KEY_SYSTEM = own("finding-key")  # identifier: a finding's stable key (v1.2)

# Extensions for canonical columns that R4 has no element for (profile extension, v1.1).
AE_GRADE_EXTENSION = "urn:dmtwatch:extension:ae-grade"  # valueInteger, CTCAE grade 1-5
AE_RESOLUTION_EXTENSION = "urn:dmtwatch:extension:ae-resolution-date"  # valueDate

# Patient.gender <-> patients.sex
GENDER_TO_SEX = {"female": "F", "male": "M", "other": "X", "unknown": "U"}
SEX_TO_GENDER = {v: k for k, v in GENDER_TO_SEX.items()}

# Condition.code (SNOMED CT) -> patients.ms_type; 24700007 is MS without a subtype.
MS_CONDITION = "24700007"
MS_SUBTYPES = {"426373005": "RRMS", "425500002": "SPMS", "428700003": "PPMS"}
MS_TYPE_TO_SNOMED = {v: k for k, v in MS_SUBTYPES.items()}
RELAPSE_CONDITION = "192929006"  # exacerbation of multiple sclerosis

# Condition.severity (SNOMED CT) <-> relapses.severity
SEVERITY_TO_SNOMED = {"mild": "255604002", "moderate": "6736007", "severe": "24484000"}
SNOMED_TO_SEVERITY = {v: k for k, v in SEVERITY_TO_SNOMED.items()}

# Condition.verificationStatus -> relapses.confirmed; refuted and entered-in-error drop it.
VERIFICATION_TO_CONFIRMED = {
    "confirmed": True,
    "unconfirmed": False,
    "provisional": False,
    "differential": False,
}
VERIFICATION_SKIPPED = ("refuted", "entered-in-error")

# Medication codings -> the drug vocabulary. RxNorm ingredients and ATC codes (current
# and previous, since registries mix vintages) as the clinical reference gives them
# (section 5.3, sources S34-S41); other drugs are read by our own drug code system.
RXNORM_TO_DRUG = {
    "117055": "alemtuzumab",
    "354770": "natalizumab",
    "121191": "rituximab",
    "1876366": "ocrelizumab",  # one source gives 1876093: both are accepted
    "1876093": "ocrelizumab",
}
DRUG_TO_RXNORM = {
    "alemtuzumab": "117055",
    "natalizumab": "354770",
    "rituximab": "121191",
    "ocrelizumab": "1876366",
}
ATC_TO_DRUG = {
    "L04AG06": "alemtuzumab",
    "L04AA34": "alemtuzumab",
    "L01XC04": "alemtuzumab",
    "L04AG03": "natalizumab",
    "L04AA23": "natalizumab",
    "L01FA01": "rituximab",
    "L01XC02": "rituximab",
    "L04AG08": "ocrelizumab",
    "L04AA36": "ocrelizumab",
}
# The current ATC code of each drug above (the writer emits only this one).
DRUG_TO_ATC = {
    "alemtuzumab": "L04AG06",
    "natalizumab": "L04AG03",
    "rituximab": "L01FA01",
    "ocrelizumab": "L04AG08",
}
# Treatments recorded as a Procedure rather than a medication.
PROCEDURE_DRUGS = ("plasma_exchange", "immunoadsorption")
# Treatments given as discrete administrations in clinic; the writer emits them as
# MedicationAdministration (everything else is a MedicationStatement, which can carry
# the stop reason). Consecutive daily alemtuzumab administrations merge into one course.
ADMINISTERED_DRUGS = ("alemtuzumab", "methylprednisolone", "ivig")
COURSE_DRUG = "alemtuzumab"

# MRI Observation (code OBSERVATION_SYSTEM#mri-lesions)
MRI_CODE = "mri-lesions"
EDSS_CODE = "edss"
REGION_TO_SNOMED = {"brain": "12738006", "spine": "2748008"}
SNOMED_TO_REGION = {v: k for k, v in REGION_TO_SNOMED.items()}
MRI_COMPONENTS = {  # component code -> mri column
    "contrast": "contrast",
    "new-t2": "new_t2",
    "gd-enhancing": "gd_enhancing",
    "ring-enhancing": "ring_enhancing",
}

# AdverseEvent.outcome (R4 adverse-event-outcome) <-> adverse_events.outcome
AE_OUTCOME_TO_CANONICAL = {
    "resolved": "recovered",
    "recovering": "recovering",
    "ongoing": "not_recovered",
    "resolvedWithSequelae": "recovered",
    "fatal": "fatal",
    "unknown": "unknown",
}
CANONICAL_TO_AE_OUTCOME = {
    "recovered": "resolved",
    "recovering": "recovering",
    "not_recovered": "ongoing",
    "fatal": "fatal",
    "unknown": "unknown",
}

# Finding severity -> DetectedIssue.severity; CDS Hooks card indicator.
SEVERITY_TO_ISSUE = {"urgent": "high", "high": "high", "routine": "moderate", "info": "low"}
SEVERITY_TO_INDICATOR = {
    "urgent": "critical",
    "high": "warning",
    "routine": "info",
    "info": "info",
}

# The interchange vocabularies that our own code systems carry, for validation.
OWN_VOCABULARIES = {
    DRUG_SYSTEM: DRUGS,
    STOP_REASON_SYSTEM: STOP_REASONS,
    AE_CATEGORY_SYSTEM: AE_CATEGORIES,
}
