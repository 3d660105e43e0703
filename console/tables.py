"""Tables owned by the console: operator accounts, their cookie sessions, their roles per
product, invitations and the audit log of every console action.

Operator accounts are not the products' end users (`auth.tables.users`): they sign in to
the console only. Secrets (session ids, invitation tokens) are stored as SHA-256 hex digests.
"""

from __future__ import annotations

import sqlalchemy as sa

from auth.tables import Timestamp
from infra.db import metadata

console_accounts = sa.Table(
    "console_accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    # NULL: the account signs in through OpenID Connect only.
    sa.Column("password_hash", sa.String(255), nullable=True),
    # A deployment-wide admin: creates products and acts as owner on every one.
    sa.Column("is_admin", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("oidc_issuer", sa.String(2000), nullable=True),
    sa.Column("oidc_subject", sa.String(255), nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("disabled_at", Timestamp, nullable=True),
    sa.UniqueConstraint("oidc_issuer", "oidc_subject"),
)

console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("id_hash", sa.String(64), nullable=False, unique=True),
    sa.Column(
        "account_id", sa.ForeignKey("console_accounts.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("last_seen_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),  # the absolute expiry
    sa.Column("revoked_at", Timestamp, nullable=True),
    sa.Column("ip", sa.String(64), nullable=True),
    sa.Column("user_agent", sa.String(500), nullable=True),
    sa.Index(None, "account_id"),
)

console_members = sa.Table(
    "console_members",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("product_id", sa.ForeignKey("products.id", ondelete="CASCADE"), nullable=False),
    sa.Column(
        "account_id", sa.ForeignKey("console_accounts.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.UniqueConstraint("product_id", "account_id"),
    sa.Index(None, "account_id"),
)

console_invitations = sa.Table(
    "console_invitations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("product_id", sa.ForeignKey("products.id", ondelete="CASCADE"), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column(
        "invited_by", sa.ForeignKey("console_accounts.id", ondelete="SET NULL"), nullable=True
    ),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
    sa.Column("accepted_at", Timestamp, nullable=True),
    sa.Index(None, "email"),
)

# Kept when the account or product is gone (no foreign keys): the log outlives both.
console_audit = sa.Table(
    "console_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("account_id", sa.Integer, nullable=True),
    sa.Column("account_email", sa.String(320), nullable=True),
    sa.Column("product_id", sa.Integer, nullable=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(500), nullable=True),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Column("ip", sa.String(64), nullable=True),
    sa.Column("user_agent", sa.String(500), nullable=True),
    sa.Index(None, "product_id", "id"),
)
