"""The worklist as the contract's JSON (section 4), as CSV, and as a Rich table.

Renderers only format: every clinical fact (severity, wording, evidence) comes from the
engine's findings table.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from typing import IO

from rich.console import Console
from rich.table import Table

from dmtwatch.engine.run import Findings
from dmtwatch.render.output import safe_cell

SEVERITY_STYLE = {"urgent": "bold red", "high": "red", "routine": "yellow", "info": "dim"}


def finding_dicts(result: Findings) -> list[dict]:
    evidence = {
        key: [{**e, "date": e["date"].isoformat() if e["date"] else None} for e in rows]
        for key, rows in result.evidence_by_finding().items()
    }
    out = []
    for f in result.findings.to_pylist():
        item = {
            "code": f["code"],
            "patient_id": f["patient_id"],
            "severity": f["severity"],
            "date": f["date"].isoformat(),
            "title": f["title"],
            "detail": f["detail"],
            "action": f["action"],
            "evidence": evidence.get((f["code"], f["patient_id"], f["test"]), []),
            "source": f["source"],
            "protocol": f["protocol"],
            "key": f["key"],
            "facts": json.loads(f["facts"]),
        }
        if f["test"] is not None:
            item["test"] = f["test"]
        if f["grade"] is not None:
            item["grade"] = f["grade"]
        out.append(item)
    return out


def to_json(result: Findings) -> str:
    return json.dumps(
        {"as_of": result.as_of.isoformat(), "findings": finding_dicts(result)}, indent=1
    )


CSV_COLUMNS = (
    "severity",
    "date",
    "patient_id",
    "code",
    "test",
    "grade",
    "title",
    "detail",
    "action",
    "evidence",
    "source",
    "protocol",
    "key",  # v1.2
)


def to_csv(result: Findings) -> str:
    buf = io.StringIO()
    write_csv(result, buf)
    return buf.getvalue()


def write_csv(result: Findings, file: IO[str]) -> None:
    """The worklist as CSV, row by row; text a spreadsheet would evaluate is quoted
    (`safe_cell`: ids, terms, evidence from the clinic's export are not trusted)."""
    writer = csv.DictWriter(file, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for f in finding_dicts(result):
        row = {k: f.get(k, "") for k in CSV_COLUMNS}
        row["evidence"] = "; ".join(
            f"{e['table']} {e['date']} {e['item']}: {e['value']}" for e in f["evidence"]
        )
        writer.writerow({k: safe_cell(v) for k, v in row.items()})


def summary_lines(result: Findings) -> list[str]:
    """One line per code: how many findings and patients, by severity."""
    rows = result.findings.select(["code", "patient_id", "severity"]).to_pylist()
    by_code: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_code[r["code"]].append(r)
    lines = []
    for code in sorted(by_code):
        items = by_code[code]
        sev = Counter(r["severity"] for r in items)
        parts = ", ".join(f"{sev[s]} {s}" for s in ("urgent", "high", "routine", "info") if sev[s])
        patients = len({r["patient_id"] for r in items})
        lines.append(f"{code:<22} {len(items):>6} finding(s), {patients:>5} patient(s): {parts}")
    return lines


def print_header(protocols, console: Console) -> None:
    """The line above the table: the protocols in force (a `ProtocolSet`), and every value
    a clinic's overlay changed."""
    console.print(protocols.summary(), highlight=False, markup=False)


def print_table(result: Findings, console: Console, limit: int | None = None) -> None:
    findings = finding_dicts(result)
    table = Table(title=f"dmtwatch worklist as of {result.as_of.isoformat()}", show_lines=False)
    table.add_column("severity", no_wrap=True)
    table.add_column("date", no_wrap=True)
    table.add_column("patient", no_wrap=True)
    table.add_column("code", no_wrap=True)
    table.add_column("finding", overflow="fold", ratio=1)
    shown = findings if limit is None else findings[:limit]
    for f in shown:
        style = SEVERITY_STYLE[f["severity"]]
        code = f["code"] + (f" ({f['test']})" if "test" in f else "")
        table.add_row(
            f"[{style}]{f['severity']}[/]",
            f["date"],
            f["patient_id"],
            code,
            f"[bold]{f['title']}[/]\n[dim]{f['detail']}[/]",
        )
    console.print(table, soft_wrap=False)  # a table fits itself to the width
    if limit is not None and len(findings) > limit:
        console.print(
            f"... {len(findings) - limit} more finding(s); use --format json or csv for all."
        )
