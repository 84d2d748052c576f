"""Signal detection end to end: reports -> unique-report counts -> the four measures
(PRR, ROR, IC, EBGM) for every pair, the Gamma-Poisson Shrinker prior fitted on all of
them, then the rows asked for (`--drug`, `--min-count`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dmtwatch.errors import InputError
from dmtwatch.pv.counts import count_pairs
from dmtwatch.pv.gps import Prior, ebgm_quantities, fit_prior
from dmtwatch.pv.measures import disproportionality
from dmtwatch.pv.report_sets import ReportSets

OUTPUT_COLUMNS = (
    "drug", "event", "n", "expected", "rr", "prr", "prr_lo", "prr_hi", "chi2", "ror", "ror_lo",
    "ror_hi", "ic", "ic025", "ic975", "ebgm", "eb05", "eb95", "n_drug", "n_event",
    "prr_signal", "ror_signal", "ic_signal", "eb05_signal",
)  # fmt: skip


class SignalsError(InputError):
    """A request that cannot give a result (e.g. no pair for the drug asked about)."""


@dataclass
class Signals:
    pairs: pa.Table  # OUTPUT_COLUMNS: the rows asked for
    prior: Prior
    n_reports: int
    all_pairs: pa.Table  # every pair with n >= min_count, whatever the drug (for plots)

    def to_dict(self) -> dict:
        return {
            "prior": {k: v for k, v in asdict(self.prior).items() if k in PRIOR_KEYS},
            "n_reports": self.n_reports,
            "pairs": self.pairs.to_pylist(),
        }


PRIOR_KEYS = ("alpha1", "beta1", "alpha2", "beta2", "p", "neg_log_likelihood")


def detect(
    reports: pa.Table | ReportSets,
    strata: list[str] | None = None,
    drugs: list[str] | None = None,
    min_count: int = 1,
    squash: bool = False,
) -> Signals:
    """The four measures for every pair of a long reports table (a reports CSV, counted
    row by row) or of :class:`ReportSets` (FAERS, counted by a sparse product)."""
    pairs, n_reports = count_pairs(reports, strata)
    if pairs.num_rows == 0:
        raise SignalsError("the reports hold no drug-event pair")
    n = pairs["n"].to_numpy().astype(float)
    expected = pairs["expected"].to_numpy()
    cols = disproportionality(
        n,
        pairs["n_drug"].to_numpy().astype(float),
        pairs["n_event"].to_numpy().astype(float),
        float(n_reports),
        expected,
    )
    prior = fit_prior(n, expected, squash=squash)
    cols |= ebgm_quantities(n, expected, prior)
    cols["eb05_signal"] = cols["eb05"] >= 2
    table = pairs.select(["drug", "event", "n", "expected", "n_drug", "n_event"])
    for name in OUTPUT_COLUMNS:
        if name not in table.column_names:
            table = table.append_column(name, pa.array(np.asarray(cols[name])))
    table = table.select(list(OUTPUT_COLUMNS))
    counted = table.filter(pc.greater_equal(table["n"], min_count))
    table = counted
    if drugs:
        wanted = pa.array(sorted({d.strip().upper() for d in drugs}))
        table = counted.filter(pc.is_in(pc.utf8_upper(counted["drug"]), value_set=wanted))
    if table.num_rows == 0:
        what = f"drug(s) {', '.join(drugs)}" if drugs else "the request"
        raise SignalsError(f"no drug-event pair with n >= {min_count} for {what}")
    return Signals(table, prior, n_reports, counted)
