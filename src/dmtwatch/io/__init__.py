"""Readers: clinic exports in, a validated canonical Dataset out."""

from __future__ import annotations

from pathlib import Path

from dmtwatch.io.problems import InputRejected, Problem
from dmtwatch.io.tabular import read_raw
from dmtwatch.io.validate import validate
from dmtwatch.model.dataset import Dataset

__all__ = ["InputRejected", "Problem", "read_clinic"]


def read_clinic(path: Path | str, max_unpacked: int | None = None) -> tuple[Dataset, list[Problem]]:
    """Read and validate a CSV folder or an .xlsx workbook (contract section 1).

    Returns the dataset and its warnings; raises InputRejected naming every error.
    `max_unpacked` bounds a workbook's uncompressed size in bytes (default 512 MiB, or
    the environment's DMTWATCH_XLSX_MAX_BYTES).
    """
    raws, problems = read_raw(Path(path), max_unpacked)
    return validate(raws, problems)
