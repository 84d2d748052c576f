"""Independent random streams per topic, so a seed fixes every table and changing how
one table is drawn does not reshuffle the others."""

from __future__ import annotations

import zlib

import numpy as np


def stream(seed: int, topic: str) -> np.random.Generator:
    """The generator for one topic ("cohort", "labs", ...) of a seed."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([seed, zlib.crc32(topic.encode())]))
    )


def choose(rng: np.random.Generator, weights: dict[str, float], size: int) -> np.ndarray:
    """Indices into `weights` (in its order) drawn with its probabilities."""
    p = np.fromiter(weights.values(), dtype=float)
    return rng.choice(len(p), size=size, p=p / p.sum()).astype(np.int8)
