"""Findings as CDS Hooks cards: one card per finding, wording taken whole from the engine.

Only formatting happens here (style: renderers never compute clinical facts). The one
decision is which CNS-MRI finding gets an "order a contrast MRI" suggestion: the one whose
facts name no scan since the relapse (none at all, not a late one).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import cache

from dmtwatch.cds.models import Action, Card, Coding, Link, Source, Suggestion
from dmtwatch.fhir import codes
from dmtwatch.protocols.schema import Protocol, load_protocol
from dmtwatch.rules.relapse_imaging import RelapseImaging

SUMMARY_MAX = 139  # the specification: "<140-character summary"
ORDER_SYSTEM = codes.own("order")  # no standard order code for this scan in the reference
REGION_DISPLAY = {"brain": "Brain structure", "spine": "Spinal cord structure"}
# Card and suggestion ids are stable for a finding, so feedback on the same finding in
# later chart views names the same card.
CARD_NAMESPACE = uuid.UUID("5b0f8a52-3c7e-4f1b-9d2a-6f0e3c1d8b47")

DocUrl = Callable[[str], str]


@cache
def _protocol(protocol_id: str) -> Protocol:
    return load_protocol(protocol_id)


def card_id(finding: dict, salt: str = "") -> str:
    key = "|".join(str(finding.get(k)) for k in ("patient_id", "code", "test", "date", "protocol"))
    return str(uuid.uuid5(CARD_NAMESPACE, key + salt))


def summary(finding: dict) -> str:
    test = f" ({finding['test']})" if finding.get("test") else ""
    text = f"{finding['code']}{test}: {finding['title']}"
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1].rstrip() + "…"


def _cell(value: object) -> str:
    """A Markdown table cell: pipes escaped, line breaks folded."""
    return " ".join(str(value if value is not None else "").split()).replace("|", "\\|")


def detail(finding: dict, as_of: str) -> str:
    grade = f", CTCAE grade {finding['grade']}" if finding.get("grade") is not None else ""
    lines = [
        f"**{finding['title']}**: severity {finding['severity']}{grade}, "
        f"dated {finding['date']} (evaluated as of {as_of}).",
        "",
        finding["detail"],
        "",
        f"**Recommended action**: {finding['action']}",
    ]
    if finding["evidence"]:
        lines += ["", "| record | date | item | value |", "|---|---|---|---|"]
        lines += [
            f"| {_cell(e['table'])} | {_cell(e['date'])} | {_cell(e['item'])} | {_cell(e['value'])} |"
            for e in finding["evidence"]
        ]
    lines += ["", f"**Source**: {finding['source']}"]
    return "\n".join(lines)


def _mri_rule(finding: dict) -> RelapseImaging | None:
    """The CNS-MRI rule behind a finding when no scan exists yet: the finding's facts
    name the scan that satisfied (late) or none (`scan_date` absent)."""
    if finding["code"] != "CNS-MRI" or "scan_date" in finding["facts"]:
        return None
    rules = _protocol(finding["protocol"]).relapse_imaging
    return next((rule for rule in rules if rule.code == finding["code"]), None)


def mri_order(finding: dict, region: str, contrast: bool) -> dict:
    """A draft ServiceRequest (FHIR R4) for the scan the protocol asks for."""
    with_contrast = " with gadolinium contrast" if contrast else ""
    display = f"MRI {region}{with_contrast}"
    return {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "proposal",
        "priority": "urgent" if finding["severity"] == "urgent" else "routine",
        "code": {
            "coding": [
                {
                    "system": ORDER_SYSTEM,
                    "code": f"mri-{region}" + ("-contrast" if contrast else ""),
                    "display": display,
                }
            ],
            "text": display,
        },
        "subject": {"reference": f"Patient/{finding['patient_id']}"},
        "bodySite": [
            {
                "coding": [
                    {
                        "system": codes.SNOMED,
                        "code": codes.REGION_TO_SNOMED[region],
                        "display": REGION_DISPLAY[region],
                    }
                ]
            }
        ],
        "reasonCode": [
            {
                "coding": [
                    {
                        "system": codes.SNOMED,
                        "code": codes.RELAPSE_CONDITION,
                        "display": "Exacerbation of multiple sclerosis",
                    }
                ],
                "text": f"Relapse on {finding['date']}; {finding['title']}",
            }
        ],
        "note": [{"text": finding["action"]}],
    }


def _suggestions(finding: dict) -> list[Suggestion] | None:
    rule = _mri_rule(finding)
    if rule is None:
        return None
    scans = " and ".join(rule.regions)
    actions = [
        Action(
            type="create",
            description=f"Order an MRI {region}"
            + (" with gadolinium contrast" if rule.contrast else ""),
            resource=mri_order(finding, region, rule.contrast),
        )
        for region in rule.regions
    ]
    label = f"Order a contrast-enhanced MRI ({scans})" if rule.contrast else f"Order MRI ({scans})"
    return [
        Suggestion(
            label=label,
            uuid=card_id(finding, "|suggestion"),
            isRecommended=True,
            actions=actions,
        )
    ]


def card(finding: dict, as_of: str, doc_url: DocUrl) -> Card:
    protocol = _protocol(finding["protocol"])
    url = doc_url(finding["code"])
    suggestions = _suggestions(finding)
    return Card(
        uuid=card_id(finding),
        summary=summary(finding),
        detail=detail(finding, as_of),
        indicator=codes.SEVERITY_TO_INDICATOR[finding["severity"]],
        source=Source(
            label=f"dmtwatch: {protocol.title} ({protocol.id}.yaml)",
            url=url,
            topic=Coding(
                system=codes.FINDING_SYSTEM, code=finding["code"], display=finding["title"]
            ),
        ),
        suggestions=suggestions,
        selectionBehavior="at-most-one" if suggestions else None,
        links=[Link(label=f"{finding['code']}: what raises it and why", url=url, type="absolute")],
    )


def cards(findings: list[dict], as_of: str, doc_url: DocUrl) -> list[Card]:
    return [card(f, as_of, doc_url) for f in findings]


def not_evaluated(problems: list[str], total: int, doc_url: DocUrl) -> Card:
    """Said instead of nothing when the record cannot be read: silence would read as
    "no findings", which is false reassurance."""
    shown = "\n".join(f"- {p}" for p in problems)
    more = f"\n- ... and {total - len(problems)} more" if total > len(problems) else ""
    return Card(
        summary=f"dmtwatch could not check this patient: {total} problem(s) in the FHIR record",
        detail=(
            "Safety monitoring was **not** evaluated, so the absence of other dmtwatch cards "
            "means nothing. The record was refused as a whole:\n\n" + shown + more
        ),
        indicator="warning",
        source=Source(label="dmtwatch (FHIR profile v1)", url=doc_url("")),
    )
