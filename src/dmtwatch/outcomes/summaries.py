"""Small helpers shared by the audit sections: quartiles and counts as plain dicts."""

from __future__ import annotations

from collections import Counter

import numpy as np


def quartiles(values: list[float | None]) -> dict | None:
    xs = np.array([v for v in values if v is not None], dtype=float)
    if len(xs) == 0:
        return None
    q1, med, q3 = np.percentile(xs, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "n": len(xs)}


def counts(values: list[str | None], missing: str = "not recorded") -> dict[str, int]:
    return dict(sorted(Counter(v if v is not None else missing for v in values).items()))
