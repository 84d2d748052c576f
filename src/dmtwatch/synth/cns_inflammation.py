"""Exacerbated CNS inflammation after alemtuzumab (report A; clinical.md section 7).

About 4-6 months after course 1 a severe relapse, an MRI within days with many
gadolinium-enhancing lesions of which several ring-enhancing, an adverse event, then
methylprednisolone without response, plasma exchange and rituximab, and a later MRI on
which the ring-enhancing lesions have receded. One object draws each case's dates once and
hands every table its rows, so the story is consistent across tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dmtwatch.model.tables import DRUGS
from dmtwatch.synth import rates as R
from dmtwatch.synth.cohort import Cohort
from dmtwatch.synth.days import uniform_days
from dmtwatch.synth.frames import Columns
from dmtwatch.synth.streams import stream


@dataclass(frozen=True)
class CnsCases:
    p: np.ndarray
    onset: np.ndarray
    mri: np.ndarray
    new_t2: np.ndarray
    gd: np.ndarray
    ring: np.ndarray
    steroid: np.ndarray
    plex_start: np.ndarray
    plex_end: np.ndarray
    rituximab: np.ndarray
    follow_up_mri: np.ndarray

    def relapses(self) -> Columns:
        k = len(self.p)
        return {
            "p": self.p,
            "day": self.onset,
            "confirmed": np.ones(k, dtype=bool),
            "severity": np.full(k, 2, dtype=np.int8),  # severe
        }

    def scans(self) -> Columns:
        k = len(self.p)
        zeros = np.zeros(k, dtype=np.int32)
        return {
            "p": np.r_[self.p, self.p],
            "day": np.r_[self.mri, self.follow_up_mri],
            "spine": np.zeros(2 * k, dtype=bool),
            "contrast": np.ones(2 * k, dtype=bool),
            "new_t2": np.r_[self.new_t2, zeros],
            "gd": np.r_[self.gd, np.minimum(self.gd // 8, 2)],
            "ring": np.r_[self.ring, zeros],
        }

    def treatments(self) -> Columns:
        k = len(self.p)
        drugs = ("methylprednisolone", "plasma_exchange", "rituximab")
        dose = [R.DOSE["methylprednisolone"][0], np.nan, R.DOSE["rituximab"][0]]
        return {
            "p": np.tile(self.p, 3),
            "drug": np.repeat([DRUGS.index(d) for d in drugs], k).astype(np.int8),
            "start": np.r_[self.steroid, self.plex_start, self.rituximab],
            "end": np.r_[
                self.steroid + R.CNS_STEROID_DAYS - 1,
                self.plex_end,
                self.rituximab + R.CNS_RITUXIMAB_DAYS - 1,
            ],
            "course": np.zeros(3 * k, dtype=np.int32),
            "dose": np.repeat(dose, k),
            "stop": np.full(3 * k, -1, dtype=np.int8),
        }


def draw_cns_cases(c: Cohort, seed: int) -> CnsCases:
    rng = stream(seed, "cns-story")
    p = np.flatnonzero(c.cns).astype(np.int32)
    k = len(p)
    onset = c.cns_day[p]
    mri = onset + uniform_days(rng, *R.CNS_MRI_AFTER, k)
    gd = rng.integers(R.CNS_GD[0], R.CNS_GD[1] + 1, k)
    ring = np.maximum(R.CNS_RING_MIN, np.round(gd * rng.uniform(0.3, 0.8, k))).astype(np.int32)
    plex_start = mri + uniform_days(rng, *R.CNS_PLEX_AFTER_MRI, k)
    plex_end = plex_start + uniform_days(rng, *R.CNS_PLEX_DAYS, k)
    rituximab = plex_end + uniform_days(rng, *R.CNS_RITUXIMAB_AFTER_PLEX, k)
    return CnsCases(
        p=p,
        onset=onset,
        mri=mri,
        new_t2=rng.integers(R.CNS_NEW_T2[0], R.CNS_NEW_T2[1] + 1, k).astype(np.int32),
        gd=gd.astype(np.int32),
        ring=ring,
        steroid=onset + uniform_days(rng, *R.CNS_STEROID_AFTER, k),
        plex_start=plex_start,
        plex_end=plex_end,
        rituximab=rituximab,
        follow_up_mri=rituximab + uniform_days(rng, *R.CNS_FOLLOW_UP_MRI, k),
    )
