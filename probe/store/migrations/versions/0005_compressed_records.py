"""measurement records compressed at rest

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 06:20:00

Why: an imported OONI measurement kept about 4.3 KB of canonical JSON, above the 4 KB
per measurement target (issue 17).  New records are stored zlib-compressed
(:mod:`probe.store.record_codec`); old rows are not rewritten and stay readable:

- PostgreSQL needs a binary column: ``record`` becomes ``bytea`` holding each old
  record's UTF-8 text (``convert_to``), which the codec reads as uncompressed text.
  (This rewrites the table once.)
- SQLite is left as it is: a TEXT column stores a BLOB as given, so old rows stay text
  and new rows are blobs; rebuilding the table would cost a copy of the whole database
  and, with ``foreign_keys`` on, would cascade into the observation index.

Downgrade (PostgreSQL) decompresses nothing: it refuses if compressed rows exist.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE measurements ALTER COLUMN record TYPE bytea USING convert_to(record, 'UTF8')")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    compressed = (
        op.get_bind()
        .execute(
            sa.text("SELECT count(*) FROM measurements WHERE substring(record from 1 for 1) = '\\x01'::bytea")
        )
        .scalar()
    )
    if compressed:
        raise RuntimeError(f"{compressed} records are compressed; downgrading would make them unreadable")
    op.execute("ALTER TABLE measurements ALTER COLUMN record TYPE text USING convert_from(record, 'UTF8')")
