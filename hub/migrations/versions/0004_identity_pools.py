"""identity pools, environments and proven emails

Each existing product becomes its own identity pool. Each existing user becomes one user row
per (pool, environment) where it has presence (memberships, external identities, sessions,
one-time tokens, notifications, unread counts, workspace tokens and OAuth applications it
owns): the first keeps the row and its id, the others are copies with the same email,
password hash, name and locale, and every row of that product environment is re-pointed to
its copy. A user two products shared becomes two independent identities. Existing emails
count as unverified (nobody proved them). Users with no presence at all go to a pool named
`_unassigned` (live), where no product can reach them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 18:50:00
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UNASSIGNED_POOL = "_unassigned"

_meta = sa.MetaData()
_pools = sa.Table(
    "identity_pools",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64)),
    sa.Column("created_at", sa.DateTime(timezone=True)),
)
_products = sa.Table(
    "products",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("slug", sa.String(64)),
    sa.Column("identity_pool_id", sa.Integer),
)
_users = sa.Table(
    "users",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("pool_id", sa.Integer),
    sa.Column("env", sa.String(8)),
    sa.Column("email", sa.String(320)),
    sa.Column("password_hash", sa.String(255)),
    sa.Column("name", sa.String(200)),
    sa.Column("locale", sa.String(8)),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)
_organizations = sa.Table(
    "organizations",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("product_id", sa.Integer),
    sa.Column("env", sa.String(8)),
)


def _table(name: str, user_column: str, *, by_org: bool) -> sa.Table:
    columns = [sa.Column("id", sa.Integer), sa.Column(user_column, sa.Integer)]
    if by_org:
        columns.append(sa.Column("organization_id", sa.Integer))
    else:
        columns += [sa.Column("product_id", sa.Integer), sa.Column("env", sa.String(8))]
    return sa.Table(name, _meta, *columns)


# Every table that points at a user, with how its rows name their product environment.
_DIRECT = [  # (table, user column): rows carry product_id and env
    (_table("external_identities", "user_id", by_org=False), "user_id"),
    (_table("auth_sessions", "user_id", by_org=False), "user_id"),
    (_table("one_time_tokens", "user_id", by_org=False), "user_id"),
    (_table("notifications", "user_id", by_org=False), "user_id"),
    (_table("unread_counts", "user_id", by_org=False), "user_id"),
]
_BY_ORG = [  # rows name an organization, which carries product_id and env
    (_table("memberships", "user_id", by_org=True), "user_id"),
    (_table("workspace_tokens", "owner_id", by_org=True), "owner_id"),
    (_table("oauth_applications", "owner_id", by_org=True), "owner_id"),
]


def _presence(conn: sa.Connection) -> dict[int, set[tuple[int, str]]]:
    """user id → the (product id, env) pairs where it has rows."""
    found: dict[int, set[tuple[int, str]]] = {}
    for table, column in _DIRECT:
        query = sa.select(table.c[column], table.c.product_id, table.c.env).distinct()
        for user_id, product_id, env in conn.execute(query):
            found.setdefault(user_id, set()).add((product_id, env))
    for table, column in _BY_ORG:
        query = (
            sa.select(table.c[column], _organizations.c.product_id, _organizations.c.env)
            .select_from(table.join(_organizations, table.c.organization_id == _organizations.c.id))
            .distinct()
        )
        for user_id, product_id, env in conn.execute(query):
            found.setdefault(user_id, set()).add((product_id, env))
    return found


def _repoint(conn: sa.Connection, old: int, new: int, product_id: int, env: str) -> None:
    for table, column in _DIRECT:
        conn.execute(
            table.update()
            .where(table.c[column] == old, table.c.product_id == product_id, table.c.env == env)
            .values({column: new})
        )
    orgs = sa.select(_organizations.c.id).where(
        _organizations.c.product_id == product_id, _organizations.c.env == env
    )
    for table, column in _BY_ORG:
        conn.execute(
            table.update()
            .where(table.c[column] == old, table.c.organization_id.in_(orgs))
            .values({column: new})
        )


def _split_users(conn: sa.Connection) -> None:
    now = datetime.now(UTC)
    pool_of: dict[int, int] = {}
    for product_id, slug in conn.execute(sa.select(_products.c.id, _products.c.slug)):
        pool_id = conn.execute(
            _pools.insert().values(name=slug, created_at=now).returning(_pools.c.id)
        ).scalar_one()
        conn.execute(
            _products.update().where(_products.c.id == product_id).values(identity_pool_id=pool_id)
        )
        pool_of[product_id] = pool_id
    presence = _presence(conn)
    unassigned: int | None = None
    for user in conn.execute(sa.select(_users)).mappings().all():
        places = sorted(presence.get(user["id"], ()))
        if not places:
            if unassigned is None:
                unassigned = conn.execute(
                    _pools.insert()
                    .values(name=UNASSIGNED_POOL, created_at=now)
                    .returning(_pools.c.id)
                ).scalar_one()
            conn.execute(
                _users.update()
                .where(_users.c.id == user["id"])
                .values(pool_id=unassigned, env="live")
            )
            continue
        # One identity per (pool, env); today every pool holds one product.
        identities: dict[tuple[int, str], int] = {}
        for product_id, env in places:
            key = (pool_of[product_id], env)
            if not identities:
                conn.execute(
                    _users.update().where(_users.c.id == user["id"]).values(pool_id=key[0], env=env)
                )
                identities[key] = user["id"]
            elif key not in identities:
                copy = {k: v for k, v in user.items() if k not in ("id", "pool_id", "env")}
                identities[key] = conn.execute(
                    _users.insert().values(**copy, pool_id=key[0], env=env).returning(_users.c.id)
                ).scalar_one()
            if identities[key] != user["id"]:
                _repoint(conn, user["id"], identities[key], product_id, env)


def upgrade() -> None:
    op.create_table(
        "identity_pools",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_pools")),
        sa.UniqueConstraint("name", name=op.f("uq_identity_pools_name")),
    )
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identity_pool_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "require_verified_email", sa.Boolean(), server_default=sa.false(), nullable=False
            )
        )
        batch_op.add_column(sa.Column("verify_url_template", sa.String(2000), nullable=True))
    with op.batch_alter_table("users", schema=None) as batch_op:
        # One email may now have several identities (one per pool and environment).
        batch_op.drop_constraint(batch_op.f("uq_users_email"), type_="unique")
        batch_op.add_column(sa.Column("pool_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("env", sa.String(length=8), nullable=True))
        batch_op.add_column(
            sa.Column("email_verified_at", sa.DateTime(timezone=True), nullable=True)
        )

    _split_users(op.get_bind())

    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.alter_column("identity_pool_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_products_identity_pool_id_identity_pools"),
            "identity_pools",
            ["identity_pool_id"],
            ["id"],
        )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column("pool_id", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("env", existing_type=sa.String(length=8), nullable=False)
        batch_op.create_unique_constraint(
            batch_op.f("uq_users_pool_id_env_email"), ["pool_id", "env", "email"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_users_pool_id_identity_pools"),
            "identity_pools",
            ["pool_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    # The split cannot be undone: two identities with one email cannot share a unique email.
    raise NotImplementedError("0004 (identity pools) cannot be downgraded")
