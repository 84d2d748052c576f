"""Compiled plans kept on disk, so `dmtwatch check` does not recompile the protocols
(about 2 s of Ibis work) on every run.

The key hashes everything the SQL depends on: the protocol set (its digest covers the
shipped protocol files, the CTCAE table, a clinic's own protocol files and overlays, and
which protocols are selected), the rule kinds, the model's catalogue and table
definitions, the engine's and the protocol schema's source, and the versions of the
libraries that write the SQL. Any change gives a new key; a cache that cannot be read or
written is simply not used.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dmtwatch.protocols.loading import ProtocolSet

# (package, file suffix): source and data files the compiled SQL depends on
_INPUTS = (
    ("dmtwatch.model", ".yaml"),
    ("dmtwatch.model", ".py"),
    ("dmtwatch.engine", ".py"),
    ("dmtwatch.rules", ".py"),  # each rule kind's query
    ("dmtwatch.protocols", ".py"),
)
_LIBRARIES = ("ibis-framework", "sqlglot", "pydantic", "duckdb")


def cache_dir() -> Path:
    base = os.environ.get("DMTWATCH_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    return Path(base) / "dmtwatch" if base else Path.home() / ".cache" / "dmtwatch"


def plan_key(protocols: ProtocolSet, rule_kinds: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    h.update(repr((protocols.ids, protocols.digest, rule_kinds)).encode())
    for package, pattern in _INPUTS:
        for entry in sorted(files(package).iterdir(), key=lambda p: p.name):
            if entry.name.endswith(pattern):
                h.update(f"{package}/{entry.name}".encode() + entry.read_bytes())
    for dist in _LIBRARIES:
        h.update(f"{dist}={metadata.version(dist)}".encode())
    return h.hexdigest()[:24]


def read(key: str) -> dict | None:
    try:
        return json.loads((cache_dir() / f"plan-{key}.json").read_text())
    except (OSError, ValueError):
        return None


def write(key: str, plan: dict) -> None:
    try:
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".plan-{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(plan))
        tmp.replace(folder / f"plan-{key}.json")
    except OSError:
        pass
