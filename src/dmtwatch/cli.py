"""The command line: import, check, audit, synth, docs.

Errors go to stderr naming file, row, column and value; the exit code is 2 for a
rejected input, 1 for other failures.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from dmtwatch.io import InputRejected, Problem, read_clinic
from dmtwatch.model.dataset import Dataset

app = typer.Typer(
    help="Safety monitoring and outcomes audit for people with MS on high-efficacy therapies.",
    no_args_is_help=True,
    add_completion=False,
)
# A worklist needs room: when stdout is not a terminal (make demo, a pipe) use 160 columns.
out = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

MAX_PROBLEMS_SHOWN = 200

DataOpt = Annotated[
    Path | None, typer.Option("--data", help="A folder of CSV files or one .xlsx workbook.")
]
DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="SQLAlchemy URL, e.g. sqlite:///clinic.db or postgresql://..."),
]


class CheckFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def _date(text: str | None) -> dt.date:
    if text is None:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"'{text}' is not a date (YYYY-MM-DD)") from None


def _report_problems(problems: list[Problem], title: str) -> None:
    if not problems:
        return
    err.print(f"[bold]{title}[/]", highlight=False)
    for p in problems[:MAX_PROBLEMS_SHOWN]:
        err.print(f"  {p}", highlight=False, markup=False)
    rest = len(problems) - MAX_PROBLEMS_SHOWN
    if rest > 0:
        kinds = Counter((p.file, p.column, p.reason.split("'")[0].split(" (")[0]) for p in problems)
        err.print(f"  ... and {rest} more. All {len(problems)} by kind:", highlight=False)
        for (file, column, reason), n in kinds.most_common():
            err.print(
                f"  {n:>9} x {file}, column {column}: {reason}", highlight=False, markup=False
            )


def _load(data: Path | None, db: str | None) -> Dataset:
    if (data is None) == (db is None):
        err.print("give exactly one of --data or --db")
        raise typer.Exit(1)
    if db is not None:
        from dmtwatch.store import StoreError, load

        try:
            return load(db)
        except StoreError as e:
            err.print(f"error: {e}", markup=False)
            raise typer.Exit(1) from None
    try:
        dataset, warnings = read_clinic(data)
    except InputRejected as e:
        _report_problems(e.problems, f"{e} (nothing was read)")
        raise typer.Exit(2) from None
    _report_problems(warnings, f"{len(warnings)} warning(s):")
    return dataset


@app.command("import")
def import_(
    data: Annotated[
        Path, typer.Option("--data", help="A folder of CSV files or one .xlsx workbook.")
    ],
    db: Annotated[str, typer.Option("--db", help="SQLAlchemy URL.")] = "sqlite:///dmtwatch.db",
) -> None:
    """Validate a clinic export and store it; a rejected input stores nothing."""
    from dmtwatch.store import StoreError, save

    try:
        dataset, warnings = read_clinic(data)
    except InputRejected as e:
        _report_problems(e.problems, f"{e}: nothing was stored")
        raise typer.Exit(2) from None
    _report_problems(warnings, f"{len(warnings)} warning(s):")
    try:
        stored = save(dataset, db)
    except StoreError as e:
        err.print(f"error: {e}", markup=False)
        raise typer.Exit(1) from None
    read = dataset.row_counts()
    parts = ", ".join(f"{name} {stored.get(name, 0)}/{n}" for name, n in read.items() if n)
    out.print(f"stored (new/read): {parts}", highlight=False)


@app.command()
def check(
    data: DataOpt = None,
    db: DbOpt = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="YYYY-MM-DD; default today.")] = None,
    format: Annotated[CheckFormat, typer.Option("--format")] = CheckFormat.table,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of stdout.")
    ] = None,
    summary: Annotated[
        bool, typer.Option("--summary", help="Also print one line per code.")
    ] = False,
    limit: Annotated[int | None, typer.Option("--limit", help="Table rows to show.")] = None,
) -> None:
    """Run the monitoring protocols over the whole cohort: the worklist, most urgent first."""
    from dmtwatch.engine.run import run_check
    from dmtwatch.render import worklist

    day = _date(as_of)
    result = run_check(_load(data, db), day)
    if format is CheckFormat.table:
        console = Console(file=out_path.open("w"), width=200) if out_path else out
        worklist.print_table(result, console, limit)
    else:
        text = worklist.to_json(result) if format is CheckFormat.json else worklist.to_csv(result)
        if out_path:
            out_path.write_text(text)
        else:
            sys.stdout.write(text)
    if summary:
        target = err if format is not CheckFormat.table else out
        target.print(f"\nSummary as of {day.isoformat()}:", highlight=False)
        for line in worklist.summary_lines(result):
            target.print("  " + line, highlight=False)


class AuditFormat(StrEnum):
    html = "html"
    json = "json"
    pdf = "pdf"


@app.command()
def audit(
    data: DataOpt = None,
    db: DbOpt = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="YYYY-MM-DD; default today.")] = None,
    format: Annotated[AuditFormat, typer.Option("--format")] = AuditFormat.html,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Default: audit.<format>; '-' for stdout (json).")
    ] = None,
    pre_window: Annotated[
        str, typer.Option("--pre-window", help="Days before day 0, or 'therapy'.")
    ] = "365",
    post_window: Annotated[
        int, typer.Option("--post-window", min=1, help="Days from day 0.")
    ] = 365,
    where: Annotated[
        list[str] | None, typer.Option("--where", help="Subgroup, e.g. switch_reason=inefficacy.")
    ] = None,
) -> None:
    """The outcomes audit of the alemtuzumab cohort: HTML or PDF report, or JSON."""
    import json

    from dmtwatch.audit.context import AuditOptions
    from dmtwatch.audit.run import run_audit

    if pre_window != "therapy" and not pre_window.isdigit():
        raise typer.BadParameter(f"'{pre_window}' is neither a number of days nor 'therapy'")
    subgroup = {}
    for item in where or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"'{item}' is not KEY=VALUE")
        subgroup[key.strip()] = value.strip()
    options = AuditOptions(
        pre_window="therapy" if pre_window == "therapy" else int(pre_window),
        post_window_days=post_window,
        where=subgroup,
    )
    day = _date(as_of)
    try:
        result = run_audit(_load(data, db), day, options)
    except ValueError as e:
        err.print(f"error: {e}", markup=False)
        raise typer.Exit(1) from None
    target = out_path or Path(f"audit.{format.value}")
    if format is AuditFormat.json:
        text = json.dumps(result, indent=1)
        if str(target) == "-":
            sys.stdout.write(text + "\n")
            return
        target.write_text(text)
    else:
        from dmtwatch.audit.report import render_html, render_pdf

        if format is AuditFormat.html:
            target.write_text(render_html(result))
        else:
            render_pdf(result, target)
    n = result["cohort"]["n_patients"]
    out.print(f"wrote {target} ({n} patients, as of {day.isoformat()})", highlight=False)


@app.command()
def synth(
    patients: Annotated[int, typer.Option("--patients", min=1)] = 300,
    seed: Annotated[int, typer.Option("--seed")] = 1,
    out_dir: Annotated[Path, typer.Option("--out")] = Path("clinic"),
    until: Annotated[
        str, typer.Option("--until", help="Last day of data, YYYY-MM-DD.")
    ] = "2016-01-15",
) -> None:
    """Write a synthetic clinic in the contract's CSV format (deterministic for a seed)."""
    from dmtwatch.synth import generate, write_csv

    tables = generate(patients, seed, _date(until))
    write_csv(tables, out_dir)
    counts = ", ".join(f"{name} {t.num_rows}" for name, t in tables.items())
    out.print(f"wrote {out_dir}: {counts}", highlight=False)


@app.command()
def docs(
    out_dir: Annotated[Path, typer.Option("--out")] = Path("docs/findings"),
    vignettes: Annotated[Path | None, typer.Option("--vignettes")] = Path("tests/vignettes"),
) -> None:
    """Write one page per finding code, generated from the protocol files."""
    from dmtwatch.render.finding_docs import write

    written = write(out_dir, vignettes)
    out.print(f"wrote {len(written)} pages to {out_dir}", highlight=False)


if __name__ == "__main__":
    app()
