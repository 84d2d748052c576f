"""A canonical Dataset as FHIR R4: Bulk Data NDJSON files or one Bundle per patient.

    from dmtwatch.fhir.write import write_ndjson, write_bundles
    write_ndjson(dataset, Path("out/ndjson"))     # Patient.ndjson, Observation.ndjson, ...
    write_bundles(dataset, Path("out/bundles"))   # <patient_id>.json, a collection Bundle each

The resources are a lossless image of the tables: `dmtwatch.fhir.read` gives back the same
Dataset. Ids are stable (a hash of the table and the row's natural key), so writing the
same clinic twice gives the same files and a later export updates rather than duplicates.

Per-row Python is the cost (millions of lab rows), so what can be done on whole columns
is done once in DuckDB (sorting, dates as text, the id hashes) and the labs' JSON is
built by Arrow kernels (`lab_json`); the other tables go row by row through `build`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from dmtwatch.fhir import build
from dmtwatch.fhir.lab_json import Texts, observation_json
from dmtwatch.model.dataset import Dataset
from dmtwatch.model.tables import CANONICAL_TYPES, TABLES

BATCH_ROWS = 32_768
CHUNK_ROWS = 100_000  # rows per group of patients when writing bundles (bounds memory)
# (table, id tag, builder) in the order a patient's bundle lists them.
PLAN: tuple[tuple[str, str, build.Builder], ...] = (
    ("patients", "patient", build.patient),
    ("patients", "ms", build.ms_condition),
    ("treatments", "treatment", build.treatment),
    ("relapses", "relapse", build.relapse),
    ("labs", "lab", build.lab),
    ("mri", "mri", build.mri),
    ("edss", "edss", build.edss),
    ("adverse_events", "ae", build.adverse_event),
)
FHIR_ID = r"^[A-Za-z0-9\-.]{1,64}$"


def check_patient_ids(dataset: Dataset) -> None:
    """Patient.id is the patient_id (and names its bundle file), so each must be a valid
    FHIR id: say which are not."""
    bad_ids: set[str] = set()
    for table in dataset.tables.values():
        ids = pc.unique(table.column("patient_id"))
        bad_ids.update(ids.filter(pc.invert(pc.match_substring_regex(ids, FHIR_ID))).to_pylist())
    if bad_ids:
        shown = ", ".join(repr(i) for i in sorted(bad_ids)[:10])
        raise ValueError(f"patient_id not usable as a FHIR id (1-64 of A-Z a-z 0-9 - .): {shown}")


def _text(column: str, table: str) -> str:
    quoted = f'"{column}"'
    return f"CAST({quoted} AS VARCHAR)" if CANONICAL_TYPES[table][column] == "DATE" else quoted


def prepare(table: pa.Table, name: str, tag: str) -> pa.Table:
    """The table sorted by natural key, dates as ISO text, plus `_h`: md5(tag | key |
    repeat number) in hex, whose first 16 digits are the resource id. Rows repeating a
    key are numbered in content order, so their ids are stable too. Labs (all
    Observations) also get `_u`, the md5 behind their fullUrl (see `full_url`)."""
    key = TABLES[name].key
    columns = list(CANONICAL_TYPES[name])
    parts = ", ".join(f"coalesce({_text(c, name)}, '')" for c in key)
    quoted_key = ", ".join(f'"{c}"' for c in key)
    every = ", ".join(f'"{c}"' for c in columns)
    select = ", ".join(f'{_text(c, name)} AS "{c}"' for c in columns)
    url = ", md5('Observation/' || left(_h, 16)) AS _u" if name == "labs" else ""
    sql = f"""
        SELECT *{url} FROM (
          SELECT {select},
                 md5(concat_ws('|', '{tag}', {parts}, CASE WHEN _n > 0 THEN '#' || _n END)) AS _h
          FROM (SELECT *, row_number() OVER (PARTITION BY {quoted_key} ORDER BY {every}) - 1 AS _n
                FROM src)
          ORDER BY {quoted_key}, _n)
    """
    con = duckdb.connect()
    try:
        con.register("src", table)
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def _uuid(hex32: str) -> str:
    h = hex32
    return f"urn:uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def full_url(resource: dict) -> str:
    """The entry's fullUrl: a urn:uuid from md5 of "<type>/<id>", the same in every bundle."""
    name = f"{resource['resourceType']}/{resource['id']}"
    return _uuid(hashlib.md5(name.encode()).hexdigest())


def _built(table: pa.Table, builder: build.Builder) -> Iterator[dict]:
    for batch in table.to_batches(BATCH_ROWS):
        for row in batch.to_pylist():
            resource = builder(row, row["_h"][:16])
            if resource is not None:
                yield resource


def _prepared(dataset: Dataset) -> list[tuple[str, pa.Table, build.Builder]]:
    check_patient_ids(dataset)
    return [(name, prepare(dataset[name], name, tag), b) for name, tag, b in PLAN]


def resources(dataset: Dataset) -> Iterator[dict]:
    """Every resource of the dataset as a dict, table by table (Patients first).

    Resources of a kind share their constant parts (a test's code, the category): treat
    them as read-only.
    """
    for _, table, builder in _prepared(dataset):
        yield from _built(table, builder)


def bundle(patient_id: str, entries: Iterable[dict]) -> dict:
    """A collection Bundle of one patient's resources, each entry with its fullUrl."""
    return {
        "resourceType": "Bundle",
        "id": patient_id,
        "type": "collection",
        "entry": [{"fullUrl": full_url(r), "resource": r} for r in entries],
    }


def _lab_lines(labs: pa.Table, suffix: str) -> pa.Array:
    return pc.binary_join_element_wise(observation_json(labs), suffix, "")


def write_ndjson(dataset: Dataset, folder: Path) -> dict[str, int]:
    """Bulk Data layout: one `<ResourceType>.ndjson` per type present. Returns the counts."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files: dict = {}
    counts: dict[str, int] = {}

    def output(kind: str):
        if kind not in files:
            files[kind] = (folder / f"{kind}.ndjson").open("wb", buffering=1 << 20)
            counts[kind] = 0
        return files[kind]

    try:
        for name, table, builder in _prepared(dataset):
            if name == "labs":
                for start in range(0, table.num_rows, CHUNK_ROWS):
                    part = table.slice(start, CHUNK_ROWS)
                    lines = Texts(_lab_lines(part, "\n"))
                    output("Observation").write(lines.run(0, part.num_rows))
                    counts["Observation"] += part.num_rows
                continue
            for resource in _built(table, builder):
                kind = resource["resourceType"]
                output(kind).write(orjson.dumps(resource, option=orjson.OPT_APPEND_NEWLINE))
                counts[kind] += 1
    finally:
        for f in files.values():
            f.close()
    return counts


def _bounds(table: pa.Table, edges: list[str]) -> np.ndarray:
    """Where each edge patient's rows start in a table sorted by patient_id."""
    ids = table.column("patient_id").to_numpy(zero_copy_only=False)
    return np.searchsorted(ids, edges)


def _patient_of(resource: dict) -> str:
    if resource["resourceType"] == "Patient":
        return resource["id"]
    return resource["subject"]["reference"][len("Patient/") :]


def write_bundles(dataset: Dataset, folder: Path) -> int:
    """One `<patient_id>.json` collection Bundle per patient. Returns how many.

    A group of patients (about CHUNK_ROWS rows) at a time: each table is sorted by
    patient, so a group is one slice of every table.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prepared = _prepared(dataset)
    patients = sorted(
        set().union(*(pc.unique(t.column("patient_id")).to_pylist() for _, t, _ in prepared))
    )
    rows = sum(t.num_rows for _, t, _ in prepared)
    step = max(1, int(CHUNK_ROWS * len(patients) / max(1, rows)))
    starts = patients[::step]  # the first patient of each group
    bounds = [np.append(_bounds(t, starts), t.num_rows) for _, t, _ in prepared]
    for i in range(len(starts)):
        pieces: dict[str, list[bytes]] = {}
        for (name, table, builder), b in zip(prepared, bounds, strict=True):
            part = table.slice(int(b[i]), int(b[i + 1] - b[i]))
            if name == "labs":
                _lab_entries(part, pieces)
                continue
            for resource in _built(part, builder):
                entry = {"fullUrl": full_url(resource), "resource": resource}
                pieces.setdefault(_patient_of(resource), []).append(orjson.dumps(entry))
        for patient_id, entries in pieces.items():
            head = b'{"resourceType":"Bundle","id":"%s","type":"collection","entry":['
            text = head % patient_id.encode() + b",".join(entries) + b"]}"
            (folder / f"{patient_id}.json").write_bytes(text)
    return len(patients)


def _lab_entries(labs: pa.Table, pieces: dict[str, list[bytes]]) -> None:
    """Each patient's lab entries as one comma-joined run of bytes."""
    if labs.num_rows == 0:
        return
    h = labs.column("_u").combine_chunks()
    part = lambda a, b: pc.utf8_slice_codeunits(h, a, b)  # noqa: E731
    urls = pc.binary_join_element_wise(
        "urn:uuid:",
        part(0, 8),
        "-",
        part(8, 12),
        "-",
        part(12, 16),
        "-",
        part(16, 20),
        "-",
        part(20, 32),
        "",
    )
    entries = pc.binary_join_element_wise(
        '{"fullUrl":"', urls, '","resource":', observation_json(labs), "},", ""
    )
    texts = Texts(entries)
    ids = labs.column("patient_id").combine_chunks()
    runs = pc.run_end_encode(ids)
    start = 0
    for patient_id, end in zip(runs.values.to_pylist(), runs.run_ends.to_pylist(), strict=True):
        pieces.setdefault(patient_id, []).append(texts.run(start, end)[:-1])
        start = end


def write_fhir(dataset: Dataset, out_dir: Path) -> dict[str, int]:
    """The clinic both ways: `ndjson/` (Bulk Data) and `bundles/` (one per patient)."""
    out_dir = Path(out_dir)
    counts = write_ndjson(dataset, out_dir / "ndjson")
    counts["Bundle"] = write_bundles(dataset, out_dir / "bundles")
    return counts
