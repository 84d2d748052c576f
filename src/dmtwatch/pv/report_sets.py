"""Reports held as FAERS holds them: each report's drugs and its events in two lists.

FAERS lists a report's drugs (DRUG) and its reactions (REAC) in separate files, so each
drug of a report goes with each of its reactions: the (report, drug, event) rows are the
cross product per report. Kept apart, the two lists are a fraction of that product (20M
synthetic reports: 90M mentions against 101M pairs of rows), and the pair counts are one
sparse matrix product (:mod:`dmtwatch.pv.set_counts`) instead of a DISTINCT and a
GROUP BY over every row. A reports CSV, where a row is one drug-event pair that need not
be a cross product, stays a long table counted row by row (:mod:`dmtwatch.pv.counts`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import scipy.sparse as sp
from numpy.typing import NDArray

IntArray = NDArray[np.int32]


@dataclass(frozen=True)
class ReportSets:
    """Reports, their drugs and their events.

    ``reports``: one row per report, ``report_id`` then the strata (a report is in one
    stratum). ``drug_report``/``drug``: one element per drug mention, the report's row in
    ``reports`` and a code into ``drug_names``; likewise ``event_report``/``event`` into
    ``event_names``. Mentions may repeat (counts are of unique reports) and come in any
    order; a report without a drug or without an event has no pair and is not counted.
    """

    reports: pa.Table
    drug_report: IntArray
    drug: IntArray
    event_report: IntArray
    event: IntArray
    drug_names: pa.Array
    event_names: pa.Array

    def __post_init__(self) -> None:
        if self.reports.column_names[:1] != ["report_id"]:
            raise ValueError("reports needs report_id as its first column")
        for report, code, names, what in (
            (self.drug_report, self.drug, self.drug_names, "drug"),
            (self.event_report, self.event, self.event_names, "event"),
        ):
            if report.shape != code.shape or report.dtype != np.int32 or code.dtype != np.int32:
                raise ValueError(f"{what}_report and {what} must be int32 arrays of one length")
            if names.null_count:
                raise ValueError(f"{what}_names must not hold nulls")
            if code.size and (
                min(report.min(), code.min()) < 0
                or report.max() >= self.num_reports
                or code.max() >= len(names)
            ):
                raise ValueError(f"a {what} mention points outside reports or {what}_names")

    @property
    def num_reports(self) -> int:
        return self.reports.num_rows

    @property
    def strata(self) -> list[str]:
        return self.reports.column_names[1:]

    @property
    def column_names(self) -> list[str]:
        """The columns of :meth:`to_table`, so callers can check strata as on a table."""
        return ["report_id", "drug", "event", *self.strata]

    def incidence(self) -> tuple[sp.csr_array, sp.csr_array]:
        """0/1 report x drug and report x event matrices (repeated mentions once)."""
        n = self.num_reports
        return (
            incidence(self.drug_report, self.drug, n, len(self.drug_names)),
            incidence(self.event_report, self.event, n, len(self.event_names)),
        )

    def to_table(self, keep: NDArray[np.bool_] | None = None) -> pa.Table:
        """The long table: one row per unique (report, drug, event), the cross product of
        each report's drugs and events, with the report's strata (:meth:`column_names`).

        ``keep`` (one bool per report) limits it to those reports. Rows come by report,
        then drug code, then event code.
        """
        drugs, events = self.incidence()
        rows = np.arange(self.num_reports)
        if keep is not None:
            rows = rows[keep]
            drugs, events = drugs[rows], events[rows]
        per_drug = np.diff(drugs.indptr)
        report_of_mention = np.repeat(np.arange(rows.size), per_drug)
        # each drug mention gives a block of rows, one per event of its report
        block = np.diff(events.indptr)[report_of_mention]
        block_start = np.cumsum(block) - block
        total = int(block.sum())
        first_event = events.indptr[:-1][report_of_mention]
        event_pos = np.repeat(first_event - block_start, block) + np.arange(total)
        report = rows[np.repeat(report_of_mention, block)]
        columns = {
            "report_id": self.reports["report_id"].take(report),
            "drug": self.drug_names.take(np.repeat(drugs.indices, block)),
            "event": self.event_names.take(events.indices[event_pos]),
        }
        columns |= {s: self.reports[s].take(report) for s in self.strata}
        return pa.table(columns)


def incidence(report: IntArray, code: IntArray, n_reports: int, n_codes: int) -> sp.csr_array:
    """The 0/1 report x code matrix of (report, code) mentions, in canonical CSR form."""
    ones = np.ones(report.size, dtype=np.int32)
    matrix = sp.csr_array((ones, (report, code)), shape=(n_reports, n_codes))
    matrix.sum_duplicates()  # also sorts each row's codes
    matrix.data[:] = 1
    return matrix
