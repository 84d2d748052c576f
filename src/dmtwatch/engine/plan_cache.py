"""Compiled plans kept on disk, so `dmtwatch check` does not recompile the protocols
(about 2 s of Ibis work) on every run.

The key hashes everything the SQL depends on: the protocol and catalogue files, the
engine's own source, and the Ibis and sqlglot versions. Any change gives a new key; a
cache that cannot be read or written is simply not used.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from importlib.resources import files
from pathlib import Path


def cache_dir() -> Path:
    base = os.environ.get("DMTWATCH_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    return Path(base) / "dmtwatch" if base else Path.home() / ".cache" / "dmtwatch"


def plan_key(protocol_ids: tuple[str, ...], rule_kinds: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    h.update(repr((protocol_ids, rule_kinds)).encode())
    for package, pattern in (
        ("dmtwatch.protocols", ".yaml"),
        ("dmtwatch.model", ".yaml"),
        ("dmtwatch.engine", ".py"),
        ("dmtwatch.protocols", ".py"),
    ):
        for entry in sorted(files(package).iterdir(), key=lambda p: p.name):
            if entry.name.endswith(pattern):
                h.update(entry.name.encode() + entry.read_bytes())
    for dist in ("ibis-framework", "sqlglot"):
        h.update(metadata.version(dist).encode())
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
