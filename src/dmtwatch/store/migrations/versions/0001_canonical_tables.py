"""The seven canonical tables (interchange contract section 1).

Written out explicitly rather than derived from CANONICAL_TYPES: a migration records the
schema as it was. When the canonical columns change, add a migration; the store tests
fail until the migrated database matches `dmtwatch.store.schema` again.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)


def _patient_id() -> sa.Column:
    return sa.Column("patient_id", sa.Text(), nullable=False)


def _row_key() -> sa.Column:
    return sa.Column("row_key", sa.String(40), nullable=False)


def _keyed(name: str, *columns: sa.Column) -> None:
    """A table whose rows are stored once each: surrogate id, UNIQUE row_key."""
    op.create_table(
        name,
        _id(),
        _patient_id(),
        *columns,
        _row_key(),
        sa.UniqueConstraint("row_key", name=f"uq_{name}_row_key"),
    )
    op.create_index(f"ix_{name}_patient_id", name, ["patient_id"])


def upgrade() -> None:
    op.create_table(
        "patients",
        sa.Column("patient_id", sa.Text(), nullable=False, primary_key=True),
        sa.Column("sex", sa.Text()),
        sa.Column("birth_date", sa.Text()),
        sa.Column("ms_type", sa.Text()),
        sa.Column("ms_onset_date", sa.Date()),
        _row_key(),
    )
    _keyed(
        "treatments",
        sa.Column("drug", sa.Text()),
        sa.Column("start_date", sa.Date()),
        sa.Column("end_date", sa.Date()),
        sa.Column("course", sa.Integer()),
        sa.Column("dose", sa.Double()),
        sa.Column("dose_unit", sa.Text()),
        sa.Column("stop_reason", sa.Text()),
    )
    _keyed(
        "labs",
        sa.Column("date", sa.Date()),
        sa.Column("test", sa.Text()),
        sa.Column("value", sa.Double()),
        sa.Column("value_text", sa.Text()),
        sa.Column("unit", sa.Text()),
        sa.Column("ref_low", sa.Double()),
        sa.Column("ref_high", sa.Double()),
    )
    _keyed(
        "relapses",
        sa.Column("onset_date", sa.Date()),
        sa.Column("confirmed", sa.Boolean()),
        sa.Column("severity", sa.Text()),
    )
    _keyed(
        "mri",
        sa.Column("date", sa.Date()),
        sa.Column("region", sa.Text()),
        sa.Column("contrast", sa.Boolean()),
        sa.Column("new_t2", sa.Integer()),
        sa.Column("gd_enhancing", sa.Integer()),
        sa.Column("ring_enhancing", sa.Integer()),
    )
    _keyed(
        "edss",
        sa.Column("date", sa.Date()),
        sa.Column("score", sa.Double()),
    )
    _keyed(
        "adverse_events",
        sa.Column("onset_date", sa.Date()),
        sa.Column("term", sa.Text()),
        sa.Column("category", sa.Text()),
        sa.Column("serious", sa.Boolean()),
        sa.Column("grade", sa.Integer()),
        sa.Column("outcome", sa.Text()),
        sa.Column("resolution_date", sa.Date()),
    )


def downgrade() -> None:
    for name in ("adverse_events", "edss", "mri", "relapses", "labs", "treatments"):
        op.drop_index(f"ix_{name}_patient_id", table_name=name)
        op.drop_table(name)
    op.drop_table("patients")
