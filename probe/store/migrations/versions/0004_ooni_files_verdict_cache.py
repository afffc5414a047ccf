"""ooni archive files imported, and verdicts cached per rules version

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 20:30:00

Why: ``kuzot ooni sync`` must know which archive files (and which version of each,
by ETag) it already imported, so a second run imports only what is new; and a second
``kuzot episodes`` must not judge a million measurements again when neither the rules
nor the fingerprints changed.  Both tables are derived data: dropping them loses
nothing but time.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ooni_files",
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("etag", sa.String(length=80), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("measurements", sa.Integer(), nullable=False),
        sa.Column("stored", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("path"),
    )
    op.create_table(
        "verdict_cache",
        sa.Column("measurement_id", sa.String(length=64), nullable=False),
        sa.Column("rules_version", sa.String(length=40), nullable=False),
        sa.Column("fingerprints", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("blocking", sa.String(length=24), nullable=True),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("observation_ids", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["measurement_id"], ["measurements.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("measurement_id", "rules_version", "fingerprints"),
    )


def downgrade() -> None:
    op.drop_table("verdict_cache")
    op.drop_table("ooni_files")
