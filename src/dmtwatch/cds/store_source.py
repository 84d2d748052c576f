"""One patient's rows from the dmtwatch store, for `serve --db` when the EHR sends no data.

The store's own `load` reads every patient; a hook call needs one, by the indexed
`patient_id`. The engine is opened once (schema checked then) and kept for the service's
lifetime.
"""

from __future__ import annotations

from contextlib import ExitStack

import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from dmtwatch.model.dataset import Dataset, arrow_schema
from dmtwatch.store import StoreError
from dmtwatch.store.connection import open_store
from dmtwatch.store.errors import mask_url
from dmtwatch.store.schema import ID, KEYED_BY_PATIENT, PATIENT_ID, TABLES


class PatientStore:
    def __init__(self, url: str):
        self.url = url
        self._stack = ExitStack()
        self.engine = self._stack.enter_context(open_store(url, create=False))

    def close(self) -> None:
        self._stack.close()

    def dataset(self, patient_id: str) -> Dataset:
        """Every canonical table cut to one patient, rows in insertion order."""
        try:
            with self.engine.connect() as connection, connection.begin():
                return Dataset({name: self._rows(connection, name, patient_id) for name in TABLES})
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read {mask_url(self.url)}: {type(exc).__name__}") from exc

    @staticmethod
    def _rows(connection, name: str, patient_id: str) -> pa.Table:
        target = TABLES[name]
        schema = arrow_schema(name)
        order = target.c[PATIENT_ID] if name == KEYED_BY_PATIENT else target.c[ID]
        query = (
            select(*(target.c[n] for n in schema.names))
            .where(target.c[PATIENT_ID] == patient_id)
            .order_by(order)
        )
        rows = connection.execute(query).all()
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema.names]
        return pa.table(
            [pa.array(v, f.type) for v, f in zip(columns, schema, strict=True)], schema=schema
        )
