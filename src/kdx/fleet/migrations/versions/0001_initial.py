"""The first schema: dumps, labels, outputs, jobs, problems, signatures, events, watched.

Revision ID: 0001
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "problems",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("signature", sa.String(64), nullable=False),
        sa.Column("signature_version", sa.Integer, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("culprit", sa.String(255)),
        sa.Column("module", sa.String(64)),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("merged_into", sa.Integer, sa.ForeignKey("problems.id")),
    )
    op.create_table(
        "dumps",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("received", sa.DateTime, nullable=False),
        sa.Column("companion", sa.String(64)),
        sa.Column("host", sa.String(255)),
        sa.Column("release", sa.String(255)),
        sa.Column("build_id", sa.String(64), index=True),
        sa.Column("captured", sa.DateTime),
        sa.Column("problem_id", sa.Integer, sa.ForeignKey("problems.id"), index=True),
        sa.Column("pinned", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("signature", sa.String(64)),
        sa.Column("signature_version", sa.Integer),
        sa.Column("failure", sa.Text),
        sa.Column("debug_source", sa.String(16)),
        sa.Column("fast", sa.JSON),
        sa.Column("verdict", sa.JSON),
        sa.Column("first_result", sa.DateTime),
        sa.Column("analysed", sa.DateTime),
    )
    op.create_table(
        "labels",
        sa.Column("dump_id", sa.Integer, sa.ForeignKey("dumps.id"), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
    )
    op.create_table(
        "outputs",
        sa.Column("dump_id", sa.Integer, sa.ForeignKey("dumps.id"), primary_key=True),
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dump_id", sa.Integer, sa.ForeignKey("dumps.id"), nullable=False,
                  index=True),
        sa.Column("stage", sa.String(8), nullable=False),
        sa.Column("state", sa.String(8), nullable=False, index=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lease", sa.String(32)),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("started", sa.DateTime),
        sa.Column("finished", sa.DateTime),
        sa.Column("failure", sa.Text),
        sa.Column("seconds", sa.Float),
        sa.Column("completions", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "signatures",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("problem_id", sa.Integer, sa.ForeignKey("problems.id"), nullable=False),
        sa.UniqueConstraint("hash", "version"),
    )
    op.create_table(
        "problem_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("problem_id", sa.Integer, sa.ForeignKey("problems.id"), nullable=False,
                  index=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("who", sa.String(255), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_table(
        "watched",
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("dump_id", sa.Integer, sa.ForeignKey("dumps.id")),
        sa.Column("at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    for table in ("watched", "problem_events", "signatures", "jobs", "outputs", "labels",
                  "dumps", "problems"):
        op.drop_table(table)
