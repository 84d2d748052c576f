"""Clinical vignettes as data: each folder under vignettes/ holds the CSVs a clinic would
export, a README saying the case in words, and expected.json with what `check` must and
must not raise. A clinician can review a case without reading Python.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dmtwatch.render.finding_docs import matches
from tests.clinic import findings

VIGNETTES = Path(__file__).parent / "vignettes"


def _cases():
    for folder in sorted(p for p in VIGNETTES.iterdir() if p.is_dir()):
        spec = json.loads((folder / "expected.json").read_text())
        for i, case in enumerate(spec.get("cases", [spec])):
            yield pytest.param(folder, case, id=f"{folder.name}-{case['as_of']}-{i}")


@pytest.mark.parametrize(("folder", "case"), list(_cases()))
def test_vignette(folder: Path, case: dict) -> None:
    found = findings(folder, case["as_of"])
    for want in case.get("expect", []):
        same_code = [f for f in found if f["code"] == want["code"]]
        assert any(matches(f, want) for f in same_code), (
            f"{folder.name}: expected {want}, got {same_code}"
        )
    for unwanted in case.get("absent", []):
        hits = [f for f in found if matches(f, unwanted)]
        assert not hits, f"{folder.name}: unexpected {hits}"


def test_every_vignette_is_explained() -> None:
    for folder in (p for p in VIGNETTES.iterdir() if p.is_dir()):
        assert (folder / "README.md").read_text().strip(), folder.name
