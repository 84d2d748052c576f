"""The whole store evaluated once for the day, so a chart view is a lookup.

Evaluating one patient costs a few hundred milliseconds however small the record (DuckDB
plans the protocol's ~30 statements each time; docs/cds-hooks.md), and the engine's cost
barely grows with the cohort: the whole store runs in seconds. So with `serve --db` the
service runs `check` over every stored patient for today, then answers each chart view
from that worklist. It runs again when the day changes or the store does (an import adds
rows: the row counts and highest ids move), and at least every `max_age` seconds, which
catches a re-import that changed only a patient's attributes.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

from sqlalchemy import func, select

from dmtwatch.engine.run import run_check
from dmtwatch.protocols.loading import ProtocolSet
from dmtwatch.render.worklist import finding_dicts
from dmtwatch.store import load
from dmtwatch.store.schema import ID, KEYED_BY_PATIENT, TABLES


class DailyWorklist:
    def __init__(
        self, url: str, engine, protocols: ProtocolSet | None = None, max_age: float = 600
    ):
        self.url = url
        self.engine = engine  # the service's open store (SQLAlchemy engine)
        self.protocols = protocols
        self.max_age = max_age
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._made = 0.0
        self._by_patient: dict[str, list[dict]] = {}
        self.runs = 0

    def findings(self, patient_id: str, day: dt.date) -> list[dict]:
        """The patient's findings as of `day`, from the day's worklist of the whole store."""
        key = (day, self._fingerprint())
        with self._lock:
            if key != self._key or time.monotonic() - self._made > self.max_age:
                self._evaluate(day, key)
            return self._by_patient.get(patient_id, [])

    def _evaluate(self, day: dt.date, key: tuple) -> None:
        found = finding_dicts(run_check(load(self.url), day, self.protocols))
        by_patient: dict[str, list[dict]] = {}
        for f in found:
            by_patient.setdefault(f["patient_id"], []).append(f)
        self._by_patient, self._key, self._made = by_patient, key, time.monotonic()
        self.runs += 1

    def _fingerprint(self) -> tuple:
        """Row counts and highest ids of every table, in one round trip."""
        parts = []
        for name, table in TABLES.items():
            parts.append(select(func.count()).select_from(table).scalar_subquery())
            if name != KEYED_BY_PATIENT:
                parts.append(select(func.max(table.c[ID])).scalar_subquery())
        with self.engine.connect() as connection:
            return tuple(connection.execute(select(*parts)).one())
