"""models_hub: an upload session's parts are checked by CRC32C, not SHA-256

Revision ID: c7d8e9f0a1b2
Revises: b6c7d8e9f0a1
Create Date: 2026-12-06 10:40:00

A part's checksum only tells the client that the part arrived intact (as S3's and GCS's
part checksums do); the file's SHA-256, computed as the parts arrive, stays its identity.
Parts recorded before this revision are dropped: their open sessions list them as missing
and the clients send them again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c7d8e9f0a1b2"
down_revision: str | None = "b6c7d8e9f0a1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DELETE FROM upload_session_parts")
    op.drop_column("upload_session_parts", "sha256")
    op.add_column("upload_session_parts", sa.Column("crc32c", sa.String(8), nullable=False))


def downgrade() -> None:
    op.execute("DELETE FROM upload_session_parts")
    op.drop_column("upload_session_parts", "crc32c")
    op.add_column("upload_session_parts", sa.Column("sha256", sa.String(64), nullable=False))
