"""collector: signing keys bound to the probe that first uploaded with them

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 20:30:00

Existing submissions are carried over: each key already seen belongs to the probe
that delivered its earliest measurement.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "probe_keys",
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("probe_id", sa.String(length=36), nullable=False),
        sa.Column("bound_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["probe_id"], ["probes.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("key_id", "probe_id"),
    )
    with op.batch_alter_table("probe_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_probe_keys_probe_id"), ["probe_id"], unique=False)
    op.execute(
        "INSERT INTO probe_keys (key_id, probe_id, bound_at) "
        "SELECT m.key_id, MIN(s.probe_id), MIN(s.received_at) FROM measurements m "
        "JOIN submissions s ON s.measurement_id = m.id WHERE m.key_id IS NOT NULL GROUP BY m.key_id"
    )


def downgrade() -> None:
    with op.batch_alter_table("probe_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_probe_keys_probe_id"))
    op.drop_table("probe_keys")
