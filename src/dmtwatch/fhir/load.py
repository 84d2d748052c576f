"""Gather FHIR resources from Bundles, Bulk Data NDJSON or memory into one DuckDB table.

The table `res` has one row per resource: where it came from (`src`), the Bundle
entry's fullUrl, and the resource parsed into `structure.RESOURCE` (column `r`). DuckDB
reads and parses the JSON in C++, so a 2M-line export costs seconds, not minutes; only
a file DuckDB refuses is read again in Python, to name its broken lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa

from dmtwatch.duck import sql_literal
from dmtwatch.fhir.structure import ndjson_columns, presence_signature, sql_type, structure
from dmtwatch.io.problems import Problem, element_problem

BUNDLE_TYPES = ("collection", "transaction", "batch-response", "searchset")
_BUNDLE = '{"resourceType": "VARCHAR", "type": "VARCHAR", "entry": [{"fullUrl": "VARCHAR", "resource": "JSON"}]}'


def load_files(con: duckdb.DuckDBPyConnection, path: Path) -> list[Problem]:
    """Fill `res` from a Bundle file or a folder of *.ndjson (and *.json Bundles)."""
    if path.is_dir():
        ndjson = sorted(path.glob("*.ndjson"))
        bundles = sorted(path.glob("*.json"))
        if not ndjson and not bundles:
            return [element_problem(str(path), None, None, "holds no .ndjson or .json files")]
    elif path.is_file():
        ndjson, bundles = ([path], []) if path.suffix == ".ndjson" else ([], [path])
    else:
        return [element_problem(str(path), None, None, "does not exist")]
    _create(con)
    problems: list[Problem] = []
    for file in ndjson:
        problems += _load_ndjson(con, file)
    for file in bundles:
        problems += _load_bundle(con, file)
    return problems


def load_resources(con: duckdb.DuckDBPyConnection, resources: Iterable[dict]) -> list[Problem]:
    """Fill `res` from resources in memory (a CDS Hooks prefetch, a server's search)."""
    _create(con)
    texts, problems = [], []
    for i, resource in enumerate(resources, start=1):
        try:
            texts.append(orjson.dumps(resource).decode())
        except (orjson.JSONEncodeError, TypeError) as e:  # nested too deep, NaN keys...
            problems.append(element_problem(_name(resource, i), None, None, f"is not JSON ({e})"))
    con.register("mem_json", pa.table({"json": pa.array(texts, pa.string())}))
    _insert(con, "'request'", "NULL", "json", "mem_json")
    con.unregister("mem_json")
    return problems


def _name(resource: object, i: int) -> str:
    """How a problem names a resource in memory: Type/id, else its place in the request."""
    if isinstance(resource, dict):
        rtype, rid = resource.get("resourceType"), resource.get("id")
        if isinstance(rtype, str) and isinstance(rid, str):
            return f"{rtype}/{rid}"
    return f"resource {i}"


def _create(con: duckdb.DuckDBPyConnection) -> None:
    """`json` keeps the text of resources read on the general path (for the R4 model
    checks); `shape` groups resources for those checks."""
    con.execute(
        "CREATE TEMP TABLE IF NOT EXISTS res (src VARCHAR, full_url VARCHAR, "
        f"r {sql_type()}, json VARCHAR, shape UBIGINT)"
    )


def _insert(con: duckdb.DuckDBPyConnection, src: str, full_url: str, json: str, frm: str) -> None:
    """Parse and append resources. `shape` (type and top-level elements) lets the R4
    model checks see one resource per distinct shape instead of millions of Observations."""
    con.execute(
        f"INSERT INTO res SELECT {src}, {full_url}, from_json(js, {sql_literal(structure())}), js, "
        f"hash(js->>'$.resourceType', json_keys(js)) "
        f"FROM (SELECT *, CAST({json} AS VARCHAR) AS js FROM {frm})"
    )


def _load_ndjson(con: duckdb.DuckDBPyConnection, file: Path) -> list[Problem]:
    if _load_observations(con, file):
        return []
    try:
        _insert(
            con,
            sql_literal(file.name),
            "NULL",
            "json",
            f"read_ndjson_objects({sql_literal(str(file))})",
        )
        return []
    except duckdb.Error:
        pass
    # DuckDB refused the file: find every broken line, then load the good ones.
    good, problems = [], []
    with file.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                good.append(orjson.loads(line))
            except orjson.JSONDecodeError as e:
                problems.append(Problem(file.name, number, None, None, f"is not JSON ({e})"))
    if not problems:  # not a JSON problem after all: report DuckDB's reason
        problems.append(element_problem(file.name, None, None, "could not be read as NDJSON"))
    return problems


def _load_observations(con: duckdb.DuckDBPyConnection, file: Path) -> bool:
    """The fast path: a Bulk Data file of Observations only, read by DuckDB's typed JSON
    reader (3-4x faster than parsing text into the struct). False: use the general path.

    The text is not kept: the R4 model checks see these Observations as parsed.
    """
    if not _first_is_observation(file):
        return False
    src = sql_literal(file.name)
    try:
        con.execute(
            f"INSERT INTO res SELECT {src}, NULL, t, NULL, {presence_signature('t')} "
            f"FROM read_ndjson({sql_literal(str(file))}, columns={ndjson_columns()}) t"
        )
    except duckdb.Error:
        return False
    others = con.execute(
        f"SELECT count(*) FROM res WHERE src = {src} AND json IS NULL "
        "AND r.resourceType IS DISTINCT FROM 'Observation'"
    ).fetchall()[0][0]
    if others:
        con.execute(f"DELETE FROM res WHERE src = {src}")
    return not others


def _first_is_observation(file: Path) -> bool:
    """Bulk Data files hold one resource type each: the first line tells which."""
    with file.open("rb") as f:
        for line in f:
            if line.strip():
                try:
                    return orjson.loads(line).get("resourceType") == "Observation"
                except (orjson.JSONDecodeError, AttributeError):
                    return False
    return False


def _load_bundle(con: duckdb.DuckDBPyConnection, file: Path) -> list[Problem]:
    size = max(file.stat().st_size + 1, 16 * 1024 * 1024)
    try:
        head = con.execute(
            f"SELECT b.resourceType, b.type FROM (SELECT from_json(json, {sql_literal(_BUNDLE)}) b "
            f"FROM read_json_objects({sql_literal(str(file))}, maximum_object_size={size}))"
        ).fetchall()
    except duckdb.Error as e:
        return [element_problem(file.name, None, None, f"is not JSON ({str(e).splitlines()[0]})")]
    if len(head) != 1 or head[0][0] != "Bundle":
        found = head[0][0] if len(head) == 1 else f"{len(head)} JSON values"
        return [element_problem(file.name, "resourceType", found, "is not a Bundle")]
    if head[0][1] not in BUNDLE_TYPES:
        return [
            element_problem(
                file.name,
                "Bundle.type",
                head[0][1],
                "is not a Bundle type dmtwatch reads (" + ", ".join(BUNDLE_TYPES) + ")",
            )
        ]
    _insert(
        con,
        sql_literal(file.name),
        "e.fullUrl",
        "e.resource",
        f"(SELECT unnest(from_json(json, {sql_literal(_BUNDLE)}).entry) e "
        f"FROM read_json_objects({sql_literal(str(file))}, maximum_object_size={size})) "
        "WHERE e.resource IS NOT NULL",
    )
    return []
