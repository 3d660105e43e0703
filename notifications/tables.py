"""Tables owned by the notifications service."""

from __future__ import annotations

import sqlalchemy as sa

from infra.db import metadata

Timestamp = sa.DateTime(timezone=True)
# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit id.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("product_id", sa.ForeignKey("products.id", ondelete="CASCADE"), nullable=False),
    sa.Column("env", sa.String(8), nullable=False),
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("message", sa.Text, nullable=False, server_default=""),
    sa.Column("url", sa.String(2000), nullable=True),
    sa.Column("type", sa.String(64), nullable=True),
    sa.Column("data", sa.JSON, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("read_at", Timestamp, nullable=True),
    sa.Index(None, "user_id", "product_id", "env", "id"),
)

# Kept in step with `notifications` inside the same transactions, so reading a badge never
# counts rows.
unread_counts = sa.Table(
    "unread_counts",
    metadata,
    sa.Column("product_id", sa.ForeignKey("products.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("env", sa.String(8), primary_key=True),
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False, server_default="0"),
)

# A publish request's Idempotency-Key and the answer it got, replayed on retries.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("product_id", sa.ForeignKey("products.id", ondelete="CASCADE"), nullable=False),
    sa.Column("env", sa.String(8), nullable=False),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("response", sa.JSON, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.UniqueConstraint("product_id", "env", "key"),
)
