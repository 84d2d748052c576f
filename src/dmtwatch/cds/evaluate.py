"""One patient through the engine, with a cache of results by input content.

Reading a record and running the engine cost ~0.3 s however small the record (DuckDB
plans ~70 statements each time; see docs/cds-hooks.md), while an EHR calls the hook on
every chart view. Findings depend only on the input and the as-of date, so the same
record on the same day is answered from the cache: identical findings, no engine run.
What the reader makes of a record does not depend on the day at all, so the same record
on a later day is read from the cache too, and only the engine runs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import threading
from collections import OrderedDict
from collections.abc import Callable

import orjson
import pyarrow as pa

from dmtwatch.engine.run import run_check
from dmtwatch.model.dataset import Dataset
from dmtwatch.protocols.loading import ProtocolSet
from dmtwatch.render.worklist import finding_dicts

Findings = list[dict]  # the contract's finding JSON (render/worklist.py), one patient


class Evaluator:
    def __init__(self, cache_size: int = 256, protocols: ProtocolSet | None = None):
        self.cache_size = cache_size
        self.protocols = protocols
        self._cache: OrderedDict[str, Findings] = OrderedDict()
        self._records: OrderedDict[str, Dataset] = OrderedDict()  # the reader's, by content
        self._lock = threading.Lock()
        # cold evaluations at once: one per core (each is CPU-bound DuckDB work)
        self._slots = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))
        self.hits = 0
        self.misses = 0

    def warm(self) -> None:
        """Load the compiled plan and DuckDB before the first chart is opened."""
        run_check(Dataset(), dt.date.today(), self.protocols)

    def from_resources(
        self, resources: list[dict], patient_id: str, as_of: dt.date, read: Callable
    ) -> Findings:
        """`read` turns resources into a Dataset (the FHIR reader); raises InputRejected."""
        content = _content_key(resources)
        key = _day_key(content, patient_id, as_of)
        return self._cached(
            key, lambda: self._run(self._read(content, resources, read), patient_id, as_of)
        )

    def _read(self, content: str, resources: list[dict], read: Callable) -> Dataset:
        with self._lock:
            if content in self._records:
                self._records.move_to_end(content)
                return self._records[content]
        dataset = read(resources)  # a refused record raises: nothing kept
        with self._lock:
            self._records[content] = dataset
            while len(self._records) > self.cache_size:
                self._records.popitem(last=False)
        return dataset

    def peek(self, resources: list[dict], patient_id: str, as_of: dt.date) -> Findings | None:
        """The cached findings for these resources, without evaluating anything."""
        key = _day_key(_content_key(resources), patient_id, as_of)
        with self._lock:
            if key not in self._cache:
                return None
            self._cache.move_to_end(key)
            self.hits += 1
            return self._cache[key]

    def from_dataset(self, dataset: Dataset, patient_id: str, as_of: dt.date) -> Findings:
        key = _day_key(hashlib.sha256(_dataset_bytes(dataset)).hexdigest(), patient_id, as_of)
        return self._cached(key, lambda: self._run(dataset, patient_id, as_of))

    def _run(self, dataset: Dataset, patient_id: str, as_of: dt.date) -> Findings:
        found = finding_dicts(run_check(dataset, as_of, self.protocols))
        return [f for f in found if f["patient_id"] == patient_id]

    def _cached(self, key: str, compute: Callable[[], Findings]) -> Findings:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                self.hits += 1
                return self._cache[key]
        with self._slots:  # outside the lock: evaluations of different patients overlap
            result = compute()
        with self._lock:
            self.misses += 1
            if self.cache_size > 0:
                self._cache[key] = result
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return result


def _content_key(resources: list[dict]) -> str:
    return hashlib.sha256(orjson.dumps(resources, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _day_key(content: str, patient_id: str, as_of: dt.date) -> str:
    return f"{content}|{patient_id}|{as_of.isoformat()}"


def _dataset_bytes(dataset: Dataset) -> bytes:
    buf = io.BytesIO()
    for name in sorted(dataset.tables):
        table = dataset[name]
        buf.write(name.encode())
        with pa.ipc.new_stream(buf, table.schema) as writer:
            writer.write_table(table)
    return buf.getvalue()
