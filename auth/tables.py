"""Tables owned by `auth`: products and their keys, users, organizations, sessions, tokens.

Other domains refer to these rows by id only and go through `auth`'s public functions.
Every secret is stored as a SHA-256 hex digest (`*_hash`), never in the clear.
"""

from __future__ import annotations

import sqlalchemy as sa

from infra.db import metadata

ENVIRONMENTS = ("live", "test")

Timestamp = sa.DateTime(timezone=True)

# The products whose users share log-ins ("same identity, separate data"). By default every
# product has a pool of its own (named after its slug).
identity_pools = sa.Table(
    "identity_pools",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", Timestamp, nullable=False),
)

products = sa.Table(
    "products",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("slug", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("default_locale", sa.String(8), nullable=False, server_default="en"),
    sa.Column("mail_from_name", sa.String(200), nullable=True),
    sa.Column("mail_from_address", sa.String(320), nullable=True),
    sa.Column("reset_url_template", sa.String(2000), nullable=True),
    sa.Column("origins", sa.JSON, nullable=False),
    # Where security alerts are POSTed (they always go to the log as well).
    sa.Column("alert_webhook_url", sa.String(2000), nullable=True),
    # Security alerts by email to the product's owners and admins (console members), and to a
    # Slack-compatible incoming webhook (its URL is a secret, like the webhook's).
    sa.Column("alert_email", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("alert_slack_url", sa.String(2000), nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("identity_pool_id", sa.ForeignKey("identity_pools.id"), nullable=False),
    # Login answers 403 until the user has proven their email.
    sa.Column("require_verified_email", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("verify_url_template", sa.String(2000), nullable=True),
)

plans = sa.Table(
    "plans",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("product_id", sa.ForeignKey("products.id", ondelete="CASCADE"), nullable=False),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("features", sa.JSON, nullable=False),
    sa.Column("is_default", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.UniqueConstraint("product_id", "code"),
)

product_keys = sa.Table(
    "product_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("product_id", sa.ForeignKey("products.id", ondelete="CASCADE"), nullable=False),
    sa.Column("env", sa.String(8), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("key_prefix", sa.String(32), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("revoked_at", Timestamp, nullable=True),
    # Why: "revoked", "rotated", or "compromised" (sent over plain HTTP).
    sa.Column("revoked_reason", sa.String(16), nullable=True),
    sa.Column("last_used_at", Timestamp, nullable=True),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Index(None, "product_id", "env", "kind"),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # An identity lives in one identity pool and one environment; its email is unique there.
    sa.Column("pool_id", sa.ForeignKey("identity_pools.id", ondelete="CASCADE"), nullable=False),
    sa.Column("env", sa.String(8), nullable=False),
    # NULL for users a product created through the server API without an email.
    sa.Column("email", sa.String(320), nullable=True),
    sa.Column("password_hash", sa.String(255), nullable=True),
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("locale", sa.String(8), nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    # Set when the owner proved the email (verification link or completed password reset).
    sa.Column("email_verified_at", Timestamp, nullable=True),
    sa.UniqueConstraint("pool_id", "env", "email"),
)

organizations = sa.Table(
    "organizations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("product_id", sa.ForeignKey("products.id", ondelete="CASCADE"), nullable=False),
    sa.Column("env", sa.String(8), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    # The environment's organization for users a product manages itself (server API).
    sa.Column("is_default", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Index(None, "product_id", "env"),
)

memberships = sa.Table(
    "memberships",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "organization_id", sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.UniqueConstraint("organization_id", "user_id"),
    sa.Index(None, "user_id"),
)

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "organization_id",
        sa.ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    sa.Column("plan_id", sa.ForeignKey("plans.id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

# A product's own id for a user, for products that keep their own login (server API upsert).
external_identities = sa.Table(
    "external_identities",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("product_id", sa.ForeignKey("products.id", ondelete="CASCADE"), nullable=False),
    sa.Column("env", sa.String(8), nullable=False),
    sa.Column("external_id", sa.String(255), nullable=False),
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.UniqueConstraint("product_id", "env", "external_id"),
    sa.Index(None, "user_id"),
)

# A refresh session is one login: every refresh token it hands out shares its id (`sid`).
# Only the newest token (`refresh_jti`) may be used; the one before it (`previous_jti`) is
# accepted once more (`grace_used`) within `refresh_reuse_grace` seconds, so two tabs
# refreshing at once both succeed.
auth_sessions = sa.Table(
    "auth_sessions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column(
        "organization_id", sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("product_id", sa.ForeignKey("products.id", ondelete="CASCADE"), nullable=False),
    sa.Column("env", sa.String(8), nullable=False),
    sa.Column("refresh_jti", sa.String(32), nullable=False),
    sa.Column("previous_jti", sa.String(32), nullable=True),
    sa.Column("rotated_at", Timestamp, nullable=True),
    sa.Column("grace_used", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
    sa.Column("revoked_at", Timestamp, nullable=True),
    sa.Column("revoked_reason", sa.String(32), nullable=True),
    sa.Index(None, "user_id"),
)

# Single-use secrets mailed or handed out by auth: `login` (choose an organization after a
# password check), `password_reset` and `verify_email`.
one_time_tokens = sa.Table(
    "one_time_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("purpose", sa.String(16), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("product_id", sa.ForeignKey("products.id", ondelete="CASCADE"), nullable=False),
    sa.Column("env", sa.String(8), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
    sa.Column("used_at", Timestamp, nullable=True),
    sa.Index(None, "user_id", "purpose"),
)


# Organization-scoped bearer tokens (`wksp_…`) that org owners and admins issue for their
# automation (Kiket's workspace API tokens).
workspace_tokens = sa.Table(
    "workspace_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "organization_id", sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("owner_id", sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("token_prefix", sa.String(32), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("revoked_at", Timestamp, nullable=True),
    sa.Column("last_used_at", Timestamp, nullable=True),
    sa.Index(None, "organization_id"),
)

# OAuth 2.0 client-credentials applications of an organization.
oauth_applications = sa.Table(
    "oauth_applications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "organization_id", sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("owner_id", sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("client_id", sa.String(64), nullable=False, unique=True),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("revoked_at", Timestamp, nullable=True),
    sa.Column("last_used_at", Timestamp, nullable=True),
    sa.Index(None, "organization_id"),
)

# Extensions an organization installed from a manifest; each holds one `ext_…` key with the
# manifest's scopes. Rotating replaces `key_hash` in place (the old key is unknown at once);
# uninstalling sets `uninstalled_at` (the key is refused, and alerted if used).
extensions = sa.Table(
    "extensions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "organization_id", sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("installed_by", sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("webhook_url", sa.String(2000), nullable=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("key_prefix", sa.String(32), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("rotated_at", Timestamp, nullable=True),
    sa.Column("uninstalled_at", Timestamp, nullable=True),
    sa.Column("last_used_at", Timestamp, nullable=True),
    sa.Index(None, "organization_id"),
)
