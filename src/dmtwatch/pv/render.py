"""The signal table as CSV, JSON (contract section 6), a Rich table, or an HTML page with
plots (EB05 and IC025 against the count, the chosen drug highlighted; a pair's IC025 by
quarter, cumulative, to see when it would first have been seen)."""

from __future__ import annotations

import csv
import html
import io
import json
import math
from typing import IO

import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from dmtwatch.pv.signals import Signals
from dmtwatch.render.output import safe_cell

TABLE_COLUMNS = ("drug", "event", "n", "expected", "prr", "ror", "ic025", "ebgm", "eb05")


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def to_json(result: Signals) -> str:
    doc = result.to_dict()
    doc["pairs"] = [{k: _clean(v) for k, v in row.items()} for row in doc["pairs"]]
    return json.dumps(doc, indent=1)


def to_csv(result: Signals) -> str:
    buf = io.StringIO()
    write_csv(result, buf)
    return buf.getvalue()


def write_csv(result: Signals, file: IO[str]) -> None:
    """The signal table as CSV, row by row. Text cells (drug, event, strata: from the
    reports) that a spreadsheet would evaluate are quoted (`safe_cell`); numbers are
    written as numbers, a negative IC025 included."""
    writer = csv.writer(file, lineterminator="\n")
    writer.writerow([safe_cell(c) for c in result.pairs.column_names])
    for row in result.pairs.to_pylist():
        writer.writerow([_csv_cell(v) for v in row.values()])


def _csv_cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return safe_cell(v)
    return _fmt(v)


def _fmt(v) -> str:
    if isinstance(v, float):
        return "" if not math.isfinite(v) else f"{v:.6g}"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def print_table(result: Signals, console: Console, limit: int = 50) -> None:
    t = result.pairs.sort_by([("eb05", "descending")])
    table = Table(
        title=f"Disproportionality: {result.n_reports:,} reports, {result.pairs.num_rows:,} pairs shown (top {limit} by EB05)"
    )
    for c in TABLE_COLUMNS:
        table.add_column(c, justify="left" if c in ("drug", "event") else "right")
    for row in t.slice(0, limit).to_pylist():
        table.add_row(
            *[
                _fmt(row[c]) if not isinstance(row[c], float) else f"{row[c]:.3g}"
                for c in TABLE_COLUMNS
            ]
        )
    console.print(table, soft_wrap=False)  # a table fits itself to the width
    p = result.prior
    console.print(
        f"prior: alpha1 {p.alpha1:.4g}, beta1 {p.beta1:.4g}, alpha2 {p.alpha2:.4g}, beta2 {p.beta2:.4g}, "
        f"p {p.p:.4g}; -logL {p.neg_log_likelihood:.3f}",
        highlight=False,
    )


def _scatter_svg(result: Signals, column: str, threshold: float, drugs: list[str]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "dmtwatch"
    plt.rcParams["svg.fonttype"] = "none"
    pairs = result.all_pairs
    n = pairs["n"].to_numpy()
    y = np.asarray(pairs[column].to_numpy(zero_copy_only=False), dtype=float)
    chosen = np.isin(
        np.char.upper(pairs["drug"].to_numpy(zero_copy_only=False).astype(str)),
        [d.upper() for d in drugs],
    )
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(
        n[~chosen],
        y[~chosen],
        s=12,
        color="#8c8c8c",
        alpha=0.5,
        label="other pairs",
        rasterized=len(n) > 20000,
    )
    if chosen.any():
        ax.scatter(n[chosen], y[chosen], s=18, color="#c0392b", label=", ".join(drugs))
    ax.axhline(threshold, color="#2c3e50", linewidth=0.8, linestyle="--")
    ax.set_xscale("log")
    if column == "eb05":
        ax.set_yscale("log")
    ax.set_xlabel("reports with the pair (n)")
    ax.set_ylabel(column.upper())
    ax.legend(loc="upper left", frameon=False)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def to_html(result: Signals, drugs: list[str], trend: pa.Table | None = None) -> str:
    rows = result.pairs.sort_by([("eb05", "descending")]).slice(0, 200).to_pylist()
    head = "".join(f"<th>{c}</th>" for c in TABLE_COLUMNS)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(_fmt(r[c]) if not isinstance(r[c], float) else f'{r[c]:.3g}')}</td>"
            for c in TABLE_COLUMNS
        )
        + "</tr>"
        for r in rows
    )
    p = result.prior
    trend_html = _trend_html(trend) if trend is not None and trend.num_rows else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>dmtwatch signals</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;font-size:12px}}td,th{{padding:2px 6px;border-bottom:1px solid #ddd;text-align:right}}
td:first-child,td:nth-child(2),th:first-child,th:nth-child(2){{text-align:left}}</style></head><body>
<h1>Disproportionality analysis</h1>
<p>{result.n_reports:,} unique reports; {result.pairs.num_rows:,} drug-event pairs shown.
Gamma-Poisson Shrinker prior: alpha1 {p.alpha1:.4g}, beta1 {p.beta1:.4g}, alpha2 {p.alpha2:.4g},
beta2 {p.beta2:.4g}, p {p.p:.4g} (-log likelihood {p.neg_log_likelihood:.3f}).</p>
<h2>EB05 against the number of reports</h2>{_scatter_svg(result, "eb05", 2.0, drugs)}
<p>Dashed line: EB05 = 2, the usual signal threshold.</p>
<h2>IC025 against the number of reports</h2>{_scatter_svg(result, "ic025", 0.0, drugs)}
<p>Dashed line: IC025 = 0.</p>
{trend_html}
<h2>Pairs by EB05 (top 200)</h2><table><tr>{head}</tr>{body}</table>
</body></html>"""


def _trend_html(trend: pa.Table) -> str:
    rows = trend.to_pylist()
    pairs = sorted({(r["drug"], r["event"]) for r in rows})
    out = ["<h2>IC025 by quarter, cumulative</h2><table><tr><th>drug</th><th>event</th>"]
    quarters = sorted({r["quarter"] for r in rows})
    out += [f"<th>{html.escape(q)}</th>" for q in quarters] + ["</tr>"]
    index = {(r["drug"], r["event"], r["quarter"]): r for r in rows}
    for d, e in pairs:
        cells = []
        for q in quarters:
            r = index.get((d, e, q))
            v = r["ic025"] if r else None
            style = ' style="background:#f5b7b1"' if v is not None and v > 0 else ""
            cells.append(f"<td{style}>{'' if v is None else f'{v:.2f}'}</td>")
        out.append(f"<tr><td>{html.escape(d)}</td><td>{html.escape(e)}</td>{''.join(cells)}</tr>")
    out.append("</table><p>Shaded: IC025 above 0, when the signal would first have been seen.</p>")
    return "".join(out)
