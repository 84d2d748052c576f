"""FHIR input through the commands, as a user runs them: --fhir on import, check and
audit, --fhir-url against a FHIR server running as its own process on loopback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import orjson

from tests.fhir_server import fhir_server
from tests.test_cli import dmtwatch

VIGNETTES = Path(__file__).parent / "vignettes"
CASE = VIGNETTES / "ring_relapse_6_months"
AS_OF = "2015-09-01"


def _findings(*source: str) -> list[dict]:
    proc = dmtwatch("check", *source, "--as-of", AS_OF, "--format", "json")
    return json.loads(proc.stdout)["findings"]


def test_check_fhir_bundle_equals_csv() -> None:
    from_csv = _findings("--data", str(CASE))
    from_fhir = _findings("--fhir", str(CASE / "fhir" / "H02.json"))
    assert any(f["code"] == "CNS-RING" for f in from_fhir)
    assert from_fhir == from_csv


def test_check_fhir_url_reads_a_server_by_search_with_paging(tmp_path: Path) -> None:
    # page size 3: the patient's dozen resources come over several pages
    with fhir_server(CASE / "fhir" / "H02.json", token="s3cret", page_size=3) as base:
        env = os.environ | {"DMTWATCH_FHIR_TOKEN": "s3cret"}
        proc = _run_with_env(env, "check", "--fhir-url", base, "--as-of", AS_OF, "--format", "json")
        assert proc.returncode == 0, proc.stderr
        from_server = json.loads(proc.stdout)["findings"]
        denied = _run_with_env(
            os.environ | {"DMTWATCH_FHIR_TOKEN": "wrong"}, "check", "--fhir-url", base
        )
    assert from_server == _findings("--data", str(CASE))
    assert denied.returncode != 0 and "401" in denied.stderr


def _run_with_env(env: dict, *args: str):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "dmtwatch", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_import_fhir_then_check_db(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'clinic.db'}"
    dmtwatch("import", "--fhir", str(CASE / "fhir"), "--db", db)
    assert _findings("--db", db) == _findings("--data", str(CASE))


def test_audit_fhir_equals_csv(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    dmtwatch("synth", "--patients", "40", "--seed", "11", "--out", str(out), "--format", "fhir")
    dmtwatch("synth", "--patients", "40", "--seed", "11", "--out", str(tmp_path / "csv"))
    docs = []
    for source in (["--fhir", str(out / "ndjson")], ["--data", str(tmp_path / "csv")]):
        dmtwatch(
            "audit",
            *source,
            "--as-of",
            "2016-01-15",
            "--format",
            "json",
            "--out",
            str(tmp_path / "a.json"),
        )
        docs.append(json.loads((tmp_path / "a.json").read_text()))
    assert docs[0]["cohort"]["n_patients"] > 0
    assert docs[0] == docs[1]


def test_rejected_fhir_names_resource_and_element(tmp_path: Path) -> None:
    bundle = orjson.loads((VIGNETTES / "monitoring_ended_48_months/fhir/E01.json").read_bytes())
    obs = next(e["resource"] for e in bundle["entry"] if "valueQuantity" in e["resource"])
    obs["valueQuantity"]["code"] = "furlongs"
    broken = tmp_path / "broken.json"
    broken.write_bytes(orjson.dumps(bundle))
    db = tmp_path / "clinic.db"
    proc = dmtwatch("import", "--fhir", str(broken), "--db", f"sqlite:///{db}", check=False)
    assert proc.returncode == 2
    assert f"Observation/{obs['id']}, element valueQuantity.code: 'furlongs'" in proc.stderr
    assert "nothing was stored" in proc.stderr and not db.exists()
