"""Contract v1.1 (additive): labs keep the value and unit as reported.

`value_reported` and `unit_reported` are nullable text beside the canonical `value` and
`unit`. Rows stored before this revision keep NULL there; their row keys stay valid
(presentation columns are outside the key), and importing the same rows again fills them.

Revision ID: 0002
Revises: 0001
Create Date: 2025-06-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("labs", sa.Column("value_reported", sa.Text(), nullable=True))
    op.add_column("labs", sa.Column("unit_reported", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("labs") as batch:  # SQLite drops columns by copying the table
        batch.drop_column("unit_reported")
        batch.drop_column("value_reported")
