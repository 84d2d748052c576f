"""One Markdown page per finding code, generated from the protocol files.

The thresholds, windows, wording and sources on each page are read from the same
protocol objects the engine compiles, so a page cannot disagree with `check`. A test
regenerates the pages and compares them with docs/findings/.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from dmtwatch.protocols.schema import Protocol, load_protocols
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


def _vignettes(folder: Path | None) -> dict[str, dict[str, list[str]]]:
    found: dict[str, dict[str, list[str]]] = defaultdict(lambda: {"raises": [], "clears": []})
    if folder is None or not folder.is_dir():
        return found
    for case in sorted(p for p in folder.iterdir() if (p / "expected.json").exists()):
        spec = json.loads((case / "expected.json").read_text())
        for c in spec.get("cases", [spec]):
            for e in c.get("expect", []):
                found[e["code"]]["raises"].append(case.name)
            for e in c.get("absent", []):
                found[e["code"]]["clears"].append(case.name)
    return found


def pages(vignettes: Path | None = None) -> dict[str, str]:
    """code -> Markdown page."""
    protocols = load_protocols()
    examples = _vignettes(vignettes)
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
        ex = examples.get(code)
        if ex:
            lines += ["## Examples (clinical vignettes in tests/vignettes)", ""]
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
