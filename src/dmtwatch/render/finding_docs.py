"""One Markdown page per finding code, generated from the protocol files.

The thresholds, windows, wording and sources on each page are read from the same
protocol objects the engine compiles, so a page cannot disagree with `check`. A test
regenerates the pages and compares them with docs/findings/.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dmtwatch.protocols.loading import ProtocolSet, in_force
from dmtwatch.protocols.schema import Protocol
from dmtwatch.rules import kind_of
from dmtwatch.rules.grading import Grading
from dmtwatch.rules.imaging_findings import ImagingFinding
from dmtwatch.rules.relapse_imaging import RelapseImaging


def _criteria_table(rule: Grading) -> list[str]:
    lines = ["| grade | criterion (canonical unit) | severity |", "|---|---|---|"]
    words = {
        "below": "value < {}",
        "below_lln": "value < {} x lower limit",
        "above_uln": "value > {} x upper limit",
        "above_baseline": "value > {} x baseline",
        "above_abnormal_baseline": "value > {} x baseline, when baseline is above the upper limit",
        "at_least_abnormal_baseline": "value >= {} x baseline, when baseline is above the upper limit",
    }
    for grade in sorted(rule.grades):
        c = rule.grades[grade].model_dump(exclude_none=True)
        text = " or ".join(words[k].format(f"{v:g}") for k, v in c.items())
        lines.append(f"| {grade} | {text} | {rule.severity[grade]} |")
    return lines


def _rule_lines(protocol: Protocol, rule) -> list[str]:
    out = [f"### {protocol.title} (`{protocol.id}.yaml`)", ""]
    out += [kind_of(rule).mechanism, ""]
    if isinstance(rule, Grading):
        out += [f"Test: `{rule.test}` ({rule.term}), direction {rule.direction}.", ""]
        out += _criteria_table(rule)
        out.append("")
    else:
        params = rule.model_dump(exclude={"code", "title", "detail", "action", "source"})
        out += ["| parameter | value |", "|---|---|"]
        out += [f"| {k} | {json.dumps(v)} |" for k, v in params.items()]
        if isinstance(rule, RelapseImaging | ImagingFinding) and protocol.repopulation_window_days:
            lo, hi = protocol.repopulation_window_days
            out.append(f"| B-cell repopulation window (days after the last infusion) | {lo}-{hi} |")
            for where, words in protocol.repopulation_wording.items():
                out.append(f"| wording {where} the window | {words} |")
        out.append("")
    out += [f"**Title**: {rule.title}", "", f"**Detail**: {rule.detail}", ""]
    out += [f"**Action**: {rule.action}", ""]
    out += ["**Sources**:", ""] + [f"- {protocol.sources[k]}" for k in rule.source] + [""]
    return out


def _schedule_lines(protocol: Protocol) -> list[str]:
    t = protocol.therapy
    out = [f"### {protocol.title} (`{protocol.id}.yaml`)", ""]
    out += [
        f"Episodes: `{t.drug}` rows less than {t.episode_gap_days} days apart form one episode; "
        f"the clock starts at the episode's {t.clock_starts.removeprefix('episode_')}; "
        f"monitoring ends {t.monitoring_days_after_end} days after the episode's last day "
        f"(an ongoing exposure ends on the as-of date: open end = {t.open_end}).",
        "",
        "An item is due one interval after the last time it was done (for `all`, the least "
        "recent of its tests' latest results). A test done in the latest episode's baseline "
        "window or since counts from the later of that day and the clock start; one last done "
        "before it is overdue from its own interval (a new course does not forgive it); one "
        "never done is due one interval after the first episode's clock start. It is overdue "
        "once the grace period has passed, and high severity once it is overdue by more than "
        "the escalation period. An item without an interval is a baseline only; an item's own "
        "monitoring tail and shorter intervals per risk stratum are listed.",
        "",
        "| item | tests | require | interval (days) | by risk stratum | grace | escalate after "
        "| baseline window (missing: severity) | monitored after the end (days) | why |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i in protocol.schedule:
        by_risk = ", ".join(f"{k}: {v}" for k, v in i.interval_by_risk.items()) or "-"
        once = ", first episode only" if i.baseline_first_episode_only else ""
        baseline = f"{i.baseline_days}{once} ({i.baseline_severity})" if i.baseline_days else "-"
        tail = t.monitoring_days_after_end if i.days_after_end is None else i.days_after_end
        out.append(
            f"| `{i.id}` {i.name} | {', '.join(i.tests)} | {i.require} | "
            f"{i.interval_days or 'baseline only'} | {by_risk} | {i.grace_days} | "
            f"{i.escalate_after_days} | {baseline} | {tail} | {i.why} |"
        )
    keys = list(dict.fromkeys(k for i in protocol.schedule for k in [*t.source, *i.source]))
    out += ["", "**Sources**:", ""] + [f"- {protocol.sources[k]}" for k in keys] + [""]
    return out


SCHEDULE_CODES = {
    "MON-OVERDUE": "A test the protocol schedules is overdue (one finding per patient and item; `test` names the item).",
    "MON-BASELINE": "The latest course or exposure (or the first, for a baseline asked once) started without the baseline test the protocol asks for (severity per item, routine by default).",
}


@dataclass(frozen=True)
class WorkedCase:
    """One entry of a vignette's expected.json: `want` is an `expect` entry (raises) or an
    `absent` entry (does not raise) of the case as of `as_of`."""

    vignette: Path
    as_of: str
    want: dict
    raises: bool


def _entries(folder: Path | None) -> Iterator[WorkedCase]:
    """Every expect and absent entry of the vignettes, by folder name, case and entry."""
    if folder is None or not folder.is_dir():
        return
    for case in sorted(p for p in folder.iterdir() if (p / "expected.json").exists()):
        spec = json.loads((case / "expected.json").read_text())
        for c in spec.get("cases", [spec]):
            for raises, key in ((True, "expect"), (False, "absent")):
                for e in c.get(key, []):
                    yield WorkedCase(case, c["as_of"], e, raises)


def _vignettes(folder: Path | None) -> dict[str, dict[str, list[str]]]:
    found: dict[str, dict[str, list[str]]] = defaultdict(lambda: {"raises": [], "clears": []})
    for w in _entries(folder):
        found[w.want["code"]]["raises" if w.raises else "clears"].append(w.vignette.name)
    return found


def worked_cases(folder: Path | None) -> dict[str, tuple[WorkedCase | None, WorkedCase | None]]:
    """code -> (a case that raises it, a case that does not), from the vignettes' expected.json.

    A vignette that has both for the code gives both (the same story, another date or
    patient, as ruff shows a rule's example and its fix); otherwise the first vignette by
    name that raises it and the first that does not. Within a vignette, its first case and
    entry for the code.
    """
    by_code: dict[str, dict[Path, list[WorkedCase]]] = defaultdict(lambda: defaultdict(list))
    for w in _entries(folder):
        by_code[w.want["code"]][w.vignette].append(w)
    out = {}
    for code, by_vignette in by_code.items():
        both = [ws for ws in by_vignette.values() if len({w.raises for w in ws}) == 2]
        pool = both[0] if both else [w for ws in by_vignette.values() for w in ws]
        raising = next((w for w in pool if w.raises), None)
        clearing = next((w for w in pool if not w.raises), None)
        out[code] = (raising, clearing)
    return out


# (vignette folder, as-of date, digest of its CSVs and of the protocol set) -> findings: one
# process regenerating the pages twice (`dmtwatch docs`, then the test comparing them) runs
# each vignette once; a changed CSV or protocol is a new key.
_CHECKED: dict[tuple[str, str, str], list[dict]] = {}


class _Runs:
    """The real `check` over a vignette as of a date (dmtwatch.io.read_clinic, then
    engine.run.run_check, as tests/clinic.py does), each clinic read and run once."""

    def __init__(self, protocols: ProtocolSet) -> None:
        self._protocols = protocols
        self.shipped = protocols.is_shipped
        self._clinics: dict[Path, object] = {}

    def findings(self, folder: Path, as_of: str) -> list[dict]:
        from dmtwatch.engine.run import run_check
        from dmtwatch.io import read_clinic

        digest = hashlib.sha256(self._protocols.digest.encode())
        for f in sorted(folder.glob("*.csv")):
            digest.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
        key = (str(folder.resolve()), as_of, digest.hexdigest())
        if key not in _CHECKED:
            if folder not in self._clinics:
                self._clinics[folder] = read_clinic(folder)[0]
            day = dt.date.fromisoformat(as_of)
            result = run_check(self._clinics[folder], day, self._protocols)
            _CHECKED[key] = result.findings.to_pylist()
        return _CHECKED[key]


def _cell(value: object) -> str:
    """A Markdown table cell: pipes and asterisks (10*9/L) taken literally."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*").replace("\n", " ")


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _input_lines(folder: Path) -> list[str]:
    """The vignette's CSV tables that have rows, as Markdown tables (empty columns left out)."""
    from dmtwatch.model.tables import TABLES

    order = {name: i for i, name in enumerate(TABLES)}
    files = sorted(folder.glob("*.csv"), key=lambda f: (order.get(f.stem, len(order)), f.name))
    out: list[str] = []
    for f in files:
        with f.open(newline="") as handle:
            header, *rows = list(csv.reader(handle)) or [[]]
        if not rows:
            continue
        keep = [i for i in range(len(header)) if any(i < len(r) and r[i].strip() for r in rows)]
        out += [f"`{f.name}`", ""]
        out += _table(
            [header[i] for i in keep], [[r[i] if i < len(r) else "" for i in keep] for r in rows]
        )
        out.append("")
    return out


def matches(finding: dict, want: dict) -> bool:
    """A finding (a row of the findings table) fits an entry of a vignette's
    expected.json: every key equal, `date` as ISO text, `detail_contains` as parts of
    the detail. The one reading of those entries, for the pages and tests/test_vignettes.py."""
    for key, value in want.items():
        if key == "detail_contains":
            if not all(part in finding["detail"] for part in value):
                return False
        elif key == "date":
            if finding["date"].isoformat() != value:
                return False
        elif finding.get(key) != value:
            return False
    return True


def _findings_table(rows: list[dict]) -> list[str]:
    rows = sorted(rows, key=lambda r: (r["patient_id"], r["test"] or "", r["date"], r["title"]))
    with_test = any(r["test"] for r in rows)
    header = ["patient", *(["test"] if with_test else []), "severity", "date", "title", "detail"]
    return _table(
        header,
        [
            [
                r["patient_id"],
                *([r["test"] or ""] if with_test else []),
                r["severity"],
                r["date"].isoformat(),
                r["title"],
                r["detail"],
            ]
            for r in rows
        ],
    )


def _whom(want: dict) -> str:
    words = [f"for patient {want['patient_id']}" if "patient_id" in want else "for any patient"]
    words += [
        f"with {k} `{v}`"
        for k, v in want.items()
        if k not in ("code", "patient_id", "detail_contains")
    ]
    if "detail_contains" in want:
        words.append("whose detail reads " + ", ".join(f'"{p}"' for p in want["detail_contains"]))
    return " ".join(words)


def _case_lines(code: str, case: WorkedCase, runs: _Runs, story_above: bool) -> list[str]:
    name = case.vignette.name
    heading = "Raises it" if case.raises else "Does not raise it"
    out = [f"### {heading}: `{name}` (as of {case.as_of})", ""]
    if story_above:
        out += [f"The same vignette (story and input above), as of {case.as_of}.", ""]
    else:
        out += [case.vignette.joinpath("README.md").read_text().strip(), ""]
        out += [f"Input (`tests/vignettes/{name}/`):", ""]
        out += _input_lines(case.vignette)
    command = f"`dmtwatch check --data tests/vignettes/{name} --as-of {case.as_of}`"
    found = [f for f in runs.findings(case.vignette, case.as_of) if f["code"] == code]
    same_patient = [
        f
        for f in found
        if "patient_id" not in case.want or f["patient_id"] == case.want["patient_id"]
    ]
    key = {k: v for k, v in case.want.items() if k in ("patient_id", "test")}
    shown = [f for f in same_patient if matches(f, key)] if case.raises else same_patient
    matched = any(matches(f, case.want) for f in found)
    if matched != case.raises:
        if runs.shipped:  # the vignette tests would fail too: never document an untrue case
            verb = "does not raise" if case.raises else "raises"
            raise ValueError(f"{name} as of {case.as_of}: check {verb} {case.want}")
        out += [
            "With the protocols in force (not the shipped ones) this case does not come "
            "out as the vignette expects.",
            "",
        ]
    if shown and (case.raises or matched):
        out += [f"{command} gives, for {code}:", ""]
    else:
        out += [f"{command} raises no {code} finding {_whom(case.want)}.", ""]
        if shown:
            out += [f"The {code} findings it does raise there:", ""]
    if shown:
        out += [*_findings_table(shown), ""]
    return out


def _worked_lines(
    code: str, cases: tuple[WorkedCase | None, WorkedCase | None], runs: _Runs
) -> list[str]:
    out = ["## Worked cases (clinical vignettes in tests/vignettes)", ""]
    out += [
        "Each case is a vignette folder: its story, the rows it holds, and what `check` gives "
        "for this code as of the case's date (the real engine, run when this page was "
        "generated; it reads only rows dated on or before that day; other codes it raises "
        "are on their own pages).",
        "",
    ]
    shown: set[Path] = set()
    for case, missing in zip(cases, ("raises", "does not raise"), strict=True):
        if case is None:
            out += [f"No vignette yet {missing} {code}.", ""]
        else:
            out += _case_lines(code, case, runs, story_above=case.vignette in shown)
            shown.add(case.vignette)
    return out


def pages(vignettes: Path | None = None) -> dict[str, str]:
    """code -> Markdown page."""
    pset = in_force()  # the protocols in force: the pages and the engine runs read the same
    protocols = list(pset.protocols)
    examples = _vignettes(vignettes)
    worked = worked_cases(vignettes)
    runs = _Runs(pset)
    by_code: dict[str, list[str]] = defaultdict(list)
    for code, summary in SCHEDULE_CODES.items():
        by_code[code] += [summary, ""]
        for p in protocols:
            if p.schedule:
                by_code[code] += _schedule_lines(p)
    for p in protocols:
        for rule in p.rules():
            by_code[rule.code] += _rule_lines(p, rule)
    out = {}
    for code, body in sorted(by_code.items()):
        lines = [
            f"# {code}",
            "",
            "<!-- generated by `dmtwatch docs` from the protocol files; do not edit -->",
            "",
        ]
        lines += body
        if worked:
            lines += _worked_lines(code, worked.get(code, (None, None)), runs)
        ex = examples.get(code)
        if ex:
            lines += ["## All vignettes for this code (tests/vignettes)", ""]
            lines += [f"- raises it: `{n}`" for n in dict.fromkeys(ex["raises"])]
            lines += [f"- does not raise it: `{n}`" for n in dict.fromkeys(ex["clears"])]
            lines.append("")
        out[code] = "\n".join(lines)
    return out


def index(all_pages: dict[str, str]) -> str:
    lines = ["# Finding codes", "", "<!-- generated by `dmtwatch docs`; do not edit -->", ""]
    lines += [f"- [{code}]({code}.md)" for code in all_pages]
    return "\n".join(lines) + "\n"


def write(out_dir: Path, vignettes: Path | None = None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    all_pages = pages(vignettes)
    written = []
    for code, text in all_pages.items():
        path = out_dir / f"{code}.md"
        path.write_text(text)
        written.append(path)
    (out_dir / "README.md").write_text(index(all_pages))
    return written
