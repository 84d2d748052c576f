"""The command line: import, check, audit, signals, synth, docs, serve.

Errors go to stderr, one line each, naming file, row, column and value. Commands raise
the exception family (`dmtwatch.errors`); `_Commands.invoke` turns it into a message and
an exit code in one place (`EXIT_CODES`, documented in docs/contract.md): 2 for input
that cannot be used, 64 for a usage error, 1 for any other failure.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated

import pyarrow as pa
import typer
from rich.console import Console
from typer.core import TyperGroup

from dmtwatch.errors import DmtwatchError, InputError, InputRejected, UsageError
from dmtwatch.io import Problem, read_clinic
from dmtwatch.model.dataset import Dataset

EXIT_FAILURE = 1
"""Anything else expected that failed: a store, a server, writing an output, a key file."""
EXIT_INPUT = 2
"""Input that cannot be used (contract v1: a rejected import exits 2); nothing stored."""
EXIT_USAGE = 64
"""The command is wrong (an option, a combination of options, an --out path): sysexits'
EX_USAGE, since 2 (Click's usual code for this) already means rejected input."""

# The one mapping from the exception family to exit codes: the first class that matches.
EXIT_CODES: tuple[tuple[type[DmtwatchError], int], ...] = (
    (UsageError, EXIT_USAGE),
    (InputError, EXIT_INPUT),
    (DmtwatchError, EXIT_FAILURE),
)

# Click's usage error (an unknown option, a bad value), from the Click that Typer uses
# (recent Typer vendors its own copy): found through typer.BadParameter, its subclass.
_ClickUsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")

_outcome: ContextVar[str | None] = ContextVar("dmtwatch_outcome", default=None)


def exit_code(error: DmtwatchError) -> int:
    """The exit code of an error of the family (EXIT_CODES, the first match)."""
    return next(code for cls, code in EXIT_CODES if isinstance(error, cls))


def _on_rejection(outcome: str) -> None:
    """Say what a rejected input leaves undone ("nothing was stored"), for its message."""
    _outcome.set(outcome)


class _Commands(TyperGroup):
    """The command group, catching the exception family at one boundary: a one-line
    message on stderr and the exit code of EXIT_CODES. Click's own usage errors (an
    unknown option, a bad value) exit EXIT_USAGE too. Anything else is a bug and keeps
    its traceback."""

    def make_context(self, *args, **kwargs) -> typer.Context:
        try:
            return super().make_context(*args, **kwargs)
        except _ClickUsageError as e:
            e.exit_code = EXIT_USAGE
            raise

    def invoke(self, ctx: typer.Context) -> object:
        token = _outcome.set(None)
        try:
            return super().invoke(ctx)
        except _ClickUsageError as e:
            e.exit_code = EXIT_USAGE
            raise
        except DmtwatchError as e:
            _report_error(e, _outcome.get())
            raise typer.Exit(exit_code(e)) from None
        finally:
            _outcome.reset(token)


def _report_error(e: DmtwatchError, outcome: str | None) -> None:
    from dmtwatch.protocols.loading import ProtocolError

    if isinstance(e, ProtocolError):  # every refused file and key path, a line each
        for problem in e.problems:
            err.print(f"error: {problem}", markup=False, highlight=False)
    elif isinstance(e, InputRejected):
        _report_problems(e.problems, f"{e}: {outcome or 'nothing was read'}", always=True)
    elif isinstance(e, InputError) and outcome:
        err.print(f"error: {e}; {outcome}", markup=False, highlight=False)
    else:
        err.print(f"error: {e}", markup=False, highlight=False)


# Error output is read in pipes and logs, where people grep it: it is never hard-wrapped.
# On a terminal Typer's Rich panels and tracebacks are fine (the terminal can be widened);
# elsewhere Click's plain one-line usage errors and Python's plain traceback, because a
# Rich panel is cut to 80 columns there and splits a long path or value mid-word.
_STDERR_IS_TERMINAL = sys.stderr.isatty()

app = typer.Typer(
    cls=_Commands,
    help="Safety monitoring and outcomes audit for people with MS on high-efficacy therapies.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich" if _STDERR_IS_TERMINAL else None,
    pretty_exceptions_enable=_STDERR_IS_TERMINAL,
)
# Lines of text are soft-wrapped (never broken by Rich; a long path stays whole), on stdout
# and stderr alike. Only tables lay themselves out to a width (`print_table`): a worklist
# needs room, so when stdout is not a terminal (make demo, a pipe) that is 160 columns.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)

MAX_PROBLEMS_SHOWN = 200

DataOpt = Annotated[
    Path | None, typer.Option("--data", help="A folder of CSV files or one .xlsx workbook.")
]
DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="SQLAlchemy URL, e.g. sqlite:///clinic.db or postgresql://..."),
]
ProtocolsOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--protocols",
        metavar="DIR",
        help="A folder of the clinic's own protocol files and overlays (repeatable); "
        "added to the config file's [protocols] dirs.",
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="FILE",
        help="Settings file ([protocols] dirs); default $DMTWATCH_CONFIG, else ./dmtwatch.toml.",
    ),
]


def _protocols_in_force(ctx: typer.Context, dirs: list[Path] | None, config: Path | None):
    """The protocol set (shipped, the clinic's own, overlays), in force for this command;
    refused files exit 2 with every problem (file, key path, why)."""
    from dmtwatch.protocols import activate, active, protocol_set

    pset = protocol_set(dirs or (), config)
    before = active()
    activate(pset)  # the audit and CDS cards read the protocols in force
    ctx.call_on_close(lambda: activate(before))  # in-process callers (tests) get it back
    return pset


class CheckFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    fhir = "fhir"


def _date(text: str | None) -> dt.date:
    if text is None:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"'{text}' is not a date (YYYY-MM-DD)") from None


def _report_problems(problems: list[Problem], title: str, *, always: bool = False) -> None:
    if not problems and not always:
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


FhirOpt = Annotated[
    Path | None,
    typer.Option("--fhir", help="FHIR R4: a Bundle (.json) or a folder of Bulk Data *.ndjson."),
]
FhirUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--fhir-url",
        help="A FHIR R4 server's base URL, read by search with paging "
        "(bearer token from DMTWATCH_FHIR_TOKEN if set).",
    ),
]


@dataclass
class Loaded:
    """What a command reads: the dataset, and for FHIR input where each row came from."""

    dataset: Dataset
    provenance: pa.Table | None = None


def _load(
    data: Path | None,
    db: str | None,
    fhir: Path | None = None,
    fhir_url: str | None = None,
    rejected: str = "nothing was read",
) -> Loaded:
    given = [x for x in (data, db, fhir, fhir_url) if x is not None]
    if len(given) != 1:
        raise UsageError("give exactly one of --data, --db, --fhir or --fhir-url")
    if db is not None:
        from dmtwatch.store import load

        return Loaded(load(db))
    _on_rejection(rejected)
    if data is not None:
        dataset, warnings = read_clinic(data)
        loaded = Loaded(dataset)
    else:
        fhir_data = _read_fhir(fhir, fhir_url)
        loaded, warnings = Loaded(fhir_data.dataset, fhir_data.provenance), fhir_data.warnings
    _report_problems(warnings, f"{len(warnings)} warning(s):")
    return loaded


def _read_fhir(path: Path | None, url: str | None):
    from dmtwatch.fhir.read import read_fhir, read_fhir_resources

    if path is not None:
        return read_fhir(path)
    import os

    from dmtwatch.fhir.client import fetch_all_resources

    resources = fetch_all_resources(url, token=os.environ.get("DMTWATCH_FHIR_TOKEN"))
    return read_fhir_resources(resources)


@app.command("import")
def import_(
    data: DataOpt = None,
    db: Annotated[str, typer.Option("--db", help="SQLAlchemy URL.")] = "sqlite:///dmtwatch.db",
    fhir: FhirOpt = None,
    fhir_url: FhirUrlOpt = None,
) -> None:
    """Validate a clinic export (CSV, XLSX or FHIR) and store it; a rejected input stores nothing."""
    from dmtwatch.store import save

    dataset = _load(data, None, fhir, fhir_url, rejected="nothing was stored").dataset
    stored = save(dataset, db)
    read = dataset.row_counts()
    parts = ", ".join(f"{name} {stored.get(name, 0)}/{n}" for name, n in read.items() if n)
    out.print(f"stored (new/read): {parts}", highlight=False)


@app.command()
def check(
    ctx: typer.Context,
    data: DataOpt = None,
    db: DbOpt = None,
    fhir: FhirOpt = None,
    fhir_url: FhirUrlOpt = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="YYYY-MM-DD; default today.")] = None,
    format: Annotated[CheckFormat, typer.Option("--format")] = CheckFormat.table,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of stdout.")
    ] = None,
    summary: Annotated[
        bool, typer.Option("--summary", help="Also print one line per code.")
    ] = False,
    limit: Annotated[int | None, typer.Option("--limit", help="Table rows to show.")] = None,
    protocols: ProtocolsOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run the monitoring protocols over the whole cohort: the worklist, most urgent first."""
    from dmtwatch.engine.run import run_check
    from dmtwatch.render import worklist

    day = _date(as_of)
    pset = _protocols_in_force(ctx, protocols, config)
    loaded = _load(data, db, fhir, fhir_url)
    result = run_check(loaded.dataset, day, pset)
    if format is CheckFormat.table:
        if out_path:
            with _output(out_path) as f:
                console = Console(file=f, width=200, soft_wrap=True)
                worklist.print_header(pset, console)
                worklist.print_table(result, console, limit)
        else:
            worklist.print_header(pset, out)
            worklist.print_table(result, out, limit)
    elif format is CheckFormat.csv:
        if out_path:
            with _output(out_path) as f:
                worklist.write_csv(result, f)
        else:
            worklist.write_csv(result, sys.stdout)
    else:
        if format is CheckFormat.fhir:
            from dmtwatch.fhir.detected_issues import to_json

            text = to_json(result, loaded.provenance)
        else:
            text = worklist.to_json(result)
        _write_whole(text, out_path, say=False)
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
    ctx: typer.Context,
    data: DataOpt = None,
    db: DbOpt = None,
    fhir: FhirOpt = None,
    fhir_url: FhirUrlOpt = None,
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
    protocols: ProtocolsOpt = None,
    config: ConfigOpt = None,
) -> None:
    """The outcomes audit of the alemtuzumab cohort: HTML or PDF report, or JSON."""
    import json

    from dmtwatch.api import check_subgroup
    from dmtwatch.outcomes.context import AuditOptions
    from dmtwatch.outcomes.run import run_audit

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
        where=check_subgroup(subgroup),
    )
    day = _date(as_of)
    _protocols_in_force(ctx, protocols, config)
    result = run_audit(_load(data, db, fhir, fhir_url).dataset, day, options)
    target = out_path or Path(f"audit.{format.value}")
    if format is AuditFormat.json:
        text = json.dumps(result, indent=1)
        if str(target) == "-":
            sys.stdout.write(text + "\n")
            return
        _write_whole(text, target, say=False)
    else:
        from dmtwatch.outcomes.report import render_html, render_pdf

        if format is AuditFormat.html:
            _write_whole(render_html(result), target, say=False)
        else:
            from dmtwatch.render.output import write_via

            write_via(target, lambda tmp: render_pdf(result, tmp))
    n = result["cohort"]["n_patients"]
    out.print(f"wrote {target} ({n} patients, as of {day.isoformat()})", highlight=False)


class SignalsFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    html = "html"


@app.command()
def signals(
    reports: Annotated[
        Path | None, typer.Option("--reports", help="CSV: report_id, drug, event[, strata].")
    ] = None,
    faers: Annotated[
        list[Path] | None, typer.Option("--faers", help="FAERS quarterly ASCII folders or zips.")
    ] = None,
    stratify: Annotated[
        list[str] | None, typer.Option("--stratify", help="Stratum column(s).")
    ] = None,
    drug: Annotated[
        list[str] | None, typer.Option("--drug", help="Keep the pairs of these drugs.")
    ] = None,
    min_count: Annotated[int, typer.Option("--min-count", min=1)] = 1,
    format: Annotated[SignalsFormat, typer.Option("--format")] = SignalsFormat.table,
    out_path: Annotated[Path | None, typer.Option("--out")] = None,
    drug_map: Annotated[
        Path | None, typer.Option("--drug-map", help="CSV name,ingredient.")
    ] = None,
    all_roles: Annotated[
        bool, typer.Option("--all-roles", help="FAERS: every drug, not only suspects.")
    ] = False,
    squash: Annotated[
        bool, typer.Option("--squash", help="Fit the prior on squashed data.")
    ] = False,
    more_quarters: Annotated[
        list[Path] | None, typer.Argument(help="More FAERS quarters: --faers Q1 Q2 Q3 ...")
    ] = None,
) -> None:
    """Disproportionality (PRR, ROR, IC, EBGM) for every drug-event pair of spontaneous reports."""
    from dmtwatch.api import reports_table, stratum_columns
    from dmtwatch.pv import render
    from dmtwatch.pv.signals import detect

    if more_quarters:
        if not faers:
            raise UsageError(f"unexpected argument(s): {' '.join(map(str, more_quarters))}")
        faers = [*faers, *more_quarters]

    if (reports is None) == (not faers):
        raise UsageError("give exactly one of --reports or --faers")
    table, problems = reports_table(reports, faers, drug_map=drug_map, all_roles=all_roles)
    _report_problems(problems, f"{len(problems)} line(s) skipped:")
    strata = stratum_columns(table, stratify or [])
    _on_rejection("nothing was written")
    result = detect(table, strata, drug, min_count, squash)
    if format is SignalsFormat.table:
        if out_path is None:
            render.print_table(result, out)
            return
        with _output(out_path) as f:
            render.print_table(result, Console(file=f, width=200, soft_wrap=True))
        out.print(f"wrote {out_path}", highlight=False)
        return
    if format is SignalsFormat.html:
        from dmtwatch.pv.trend import quarterly_trend

        top = result.pairs.sort_by([("eb05", "descending")]).slice(0, 10)
        pairs = (
            list(zip(top["drug"].to_pylist(), top["event"].to_pylist(), strict=True))
            if drug
            else []
        )
        text = render.to_html(result, list(drug or []), quarterly_trend(table, pairs))
    elif format is SignalsFormat.csv:
        if out_path is None:
            render.write_csv(result, sys.stdout)
            return
        with _output(out_path) as f:
            render.write_csv(result, f)
        out.print(f"wrote {out_path}", highlight=False)
        return
    else:
        text = render.to_json(result)
    _write_whole(text, out_path)


@contextmanager
def _output(path: Path) -> Iterator[IO[str]]:
    """A file to write `path` through, all or nothing (`render.output.atomic_file`);
    missing folders are created; a failure is an OutputError (one line, never a
    traceback; an unusable path is a usage error)."""
    from dmtwatch.render.output import atomic_file

    with atomic_file(path) as f:
        yield f


def _write_whole(text: str, path: Path | None, *, say: bool = True) -> None:
    """Write all or nothing: a temporary file renamed into place; None: stdout."""
    if path is None:
        sys.stdout.write(text)
        return
    with _output(path) as f:
        f.write(text)
    if say:
        out.print(f"wrote {path}", highlight=False)


class SynthFormat(StrEnum):
    csv = "csv"
    fhir = "fhir"


@app.command()
def synth(
    patients: Annotated[int, typer.Option("--patients", min=1)] = 300,
    seed: Annotated[int, typer.Option("--seed")] = 1,
    out_dir: Annotated[Path, typer.Option("--out")] = Path("clinic"),
    until: Annotated[
        str, typer.Option("--until", help="Last day of data, YYYY-MM-DD.")
    ] = "2016-01-15",
    format: Annotated[
        SynthFormat,
        typer.Option("--format", help="csv, or fhir: <out>/ndjson/ and <out>/bundles/."),
    ] = SynthFormat.csv,
) -> None:
    """Write a synthetic clinic in the contract's CSV format or as FHIR R4 (deterministic)."""
    from dmtwatch.render.output import ensure_folder
    from dmtwatch.synth import generate, write_csv

    tables = generate(patients, seed, _date(until))
    if format is SynthFormat.fhir:
        import tempfile

        from dmtwatch.fhir.write import write_fhir

        with tempfile.TemporaryDirectory() as tmp:  # through the validator, as a clinic's CSV
            write_csv(tables, Path(tmp))
            dataset, _ = read_clinic(Path(tmp))
        ensure_folder(out_dir)
        counts = ", ".join(f"{k} {n}" for k, n in write_fhir(dataset, out_dir).items())
        out.print(f"wrote {out_dir}/ndjson and {out_dir}/bundles: {counts}", highlight=False)
        return
    write_csv(tables, out_dir)
    counts = ", ".join(f"{name} {t.num_rows}" for name, t in tables.items())
    out.print(f"wrote {out_dir}: {counts}", highlight=False)


@app.command()
def docs(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Option("--out")] = Path("docs/findings"),
    vignettes: Annotated[Path | None, typer.Option("--vignettes")] = Path("tests/vignettes"),
    protocols: ProtocolsOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write one page per finding code, generated from the protocol files."""
    _protocols_in_force(ctx, protocols, config)
    from dmtwatch.render.finding_docs import index, pages
    from dmtwatch.render.output import write_text

    all_pages = pages(vignettes)
    for code, text in all_pages.items():  # each page whole (atomically); the index last
        write_text(out_dir / f"{code}.md", text)
    write_text(out_dir / "README.md", index(all_pages))
    out.print(f"wrote {len(all_pages)} pages to {out_dir}", highlight=False)


class ProtocolsFormat(StrEnum):
    text = "text"
    json = "json"


@app.command("protocols")
def protocols_(
    ctx: typer.Context,
    protocols: ProtocolsOpt = None,
    config: ConfigOpt = None,
    format: Annotated[ProtocolsFormat, typer.Option("--format")] = ProtocolsFormat.text,
) -> None:
    """List the protocols in force, the file of each, and every value an overlay changed."""
    import json

    pset = _protocols_in_force(ctx, protocols, config)
    listing = pset.listing()
    if format is ProtocolsFormat.json:
        sys.stdout.write(json.dumps(listing, indent=1) + "\n")
        return
    for p in listing:
        out.print(
            f"{p['id']} {p['version']}: {p['title']} (drug {p['drug']})",
            highlight=False,
            markup=False,
        )
        out.print(f"  file: {p['file']}", highlight=False, markup=False)
        if not p["changes"]:
            out.print("  no local changes", highlight=False, markup=False)
        for c in p["changes"]:
            out.print(
                f"  changed {c['path']}: {json.dumps(c['shipped'])} -> {json.dumps(c['value'])}",
                highlight=False,
                markup=False,
            )
            out.print(
                f"    by {c['overlay']} (LOCAL-POLICY): {c['note']}", highlight=False, markup=False
            )


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", help="Interface to listen on (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Store URL: patients the EHR sends no FHIR data for."),
    ] = None,
    trust: Annotated[
        list[str] | None,
        typer.Option(
            "--trust",
            metavar="ISSUER=JWKS",
            help="An EHR allowed to call: its JWT issuer and a JWK Set file of its public "
            "keys (repeatable). With any, every /cds-services call needs a signed JWT.",
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="The base URL EHRs call (a JWT's audience); default http://HOST:PORT.",
        ),
    ] = None,
    allow_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-origin",
            metavar="ORIGIN",
            help="A browser origin allowed to read answers (CORS), e.g. "
            "https://sandbox.cds-hooks.org (repeatable; none by default, never '*').",
        ),
    ] = None,
    fhir_allow: Annotated[
        list[str] | None,
        typer.Option(
            "--fhir-allow",
            metavar="URL",
            help="A FHIR server base URL the service may read when a call names it as "
            "fhirServer (repeatable; none by default).",
        ),
    ] = None,
    fetch_timeout: Annotated[
        float,
        typer.Option("--fetch-timeout", min=0.1, help="Seconds for all FHIR reads of one call."),
    ] = 10.0,
    max_fetch_mb: Annotated[
        float, typer.Option("--max-fetch-mb", min=0.01, help="MB one call may read from FHIR.")
    ] = 20.0,
    max_body_mb: Annotated[
        float, typer.Option("--max-body-mb", min=0.01, help="MB of a request body (413 beyond).")
    ] = 5.0,
    max_token_age: Annotated[
        int,
        typer.Option("--max-token-age", min=1, help="Seconds a client JWT may live (exp - iat)."),
    ] = 300,
    cold_workers: Annotated[
        int, typer.Option("--cold-workers", min=1, help="Evaluations run at once.")
    ] = 2,
    cold_queue: Annotated[
        int,
        typer.Option("--cold-queue", min=0, help="Evaluations waiting; beyond, 503 at once."),
    ] = 2,
    protocols: ProtocolsOpt = None,
    config: ConfigOpt = None,
) -> None:
    """The CDS Hooks 2.0 service (patient-view); discovery at http://HOST:PORT/cds-services."""
    from urllib.parse import urlsplit

    import uvicorn
    from httpx import InvalidURL

    from dmtwatch.cds.app import create_app
    from dmtwatch.cds.client_auth import ClientAuth, TrustError
    from dmtwatch.fhir.client import OutboundPolicy, origin

    pset = _protocols_in_force(ctx, protocols, config)
    origins = []
    for value in allow_origin or []:
        parts = urlsplit(value)
        if value == "*" or parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(
                f"--allow-origin {value!r}: expected an origin such as "
                "https://ehr.example.org (never '*': answers hold patient data)"
            )
        origins.append(f"{parts.scheme}://{parts.netloc}")
    for value in fhir_allow or []:
        try:
            parts = urlsplit(value)
            origin(value)
        except (ValueError, InvalidURL):  # not a URL httpx takes: no call could match it
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"--fhir-allow {value!r}: expected an http(s) URL")
    fetch = OutboundPolicy(
        allowed=tuple(fhir_allow or ()),
        deadline=fetch_timeout,
        max_bytes=int(max_fetch_mb * 1024 * 1024),
    )

    auth = None
    if trust:
        trusted: dict[str, Path] = {}
        for value in trust:
            issuer, eq, path = value.rpartition("=")  # an issuer URL may hold '=' itself
            if not (eq and issuer and path):
                raise UsageError(f"--trust {value!r}: expected ISSUER=JWKS_FILE")
            trusted[issuer] = Path(path)
        try:
            auth = ClientAuth.from_files(trusted, max_lifetime=max_token_age)
        except TrustError as e:  # not an exit: the message names the option it came from
            raise TrustError(f"--trust: {e}") from e

    if db is not None:
        from dmtwatch.store.connection import open_store

        with open_store(db, create=False):
            pass
    import logging

    # the service's own lines (feedback received, records refused) beside uvicorn's
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
    logging.getLogger("dmtwatch").addHandler(handler)
    logging.getLogger("dmtwatch").setLevel(logging.INFO)
    if auth is None and host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("dmtwatch").warning(
            "listening on %s without --trust: any caller reaching it gets answers", host
        )
    if public_url is None and auth is not None:  # the JWT audience: never a Host header
        public_url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    app = create_app(
        db,
        auth=auth,
        public_url=public_url,
        cors_origins=tuple(origins),
        fetch=fetch,
        max_body=int(max_body_mb * 1024 * 1024),
        cold_workers=cold_workers,
        cold_queue=cold_queue,
        protocols=pset,
    )
    uvicorn.run(app, host=host, port=port, log_level="info")


if __name__ == "__main__":
    app()
