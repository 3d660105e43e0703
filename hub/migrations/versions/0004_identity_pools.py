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


# Which copy of a user (new_id) stands for it in a product environment; filled and used
# within the upgrade, then dropped.
_copies = sa.Table(
    "_identity_copies",
    _meta,
    sa.Column("old_id", sa.Integer, nullable=False),
    sa.Column("product_id", sa.Integer, nullable=False),
    sa.Column("env", sa.String(8), nullable=False),
    sa.Column("new_id", sa.Integer, nullable=False),
    sa.Index("ix__identity_copies_place", "old_id", "product_id", "env"),
)


def _repoint(conn: sa.Connection) -> None:
    """Every row of a product environment that names a copied user now names its copy: one
    correlated UPDATE per table, however many users there are."""
    m, o = _copies, _organizations
    for table, column in _DIRECT:
        match = sa.select(m.c.new_id).where(
            m.c.old_id == table.c[column],
            m.c.product_id == table.c.product_id,
            m.c.env == table.c.env,
        )
        conn.execute(
            table.update().where(sa.exists(match)).values({column: match.scalar_subquery()})
        )
    for table, column in _BY_ORG:
        match = (
            sa.select(m.c.new_id)
            .select_from(m.join(o, sa.and_(o.c.product_id == m.c.product_id, o.c.env == m.c.env)))
            .where(o.c.id == table.c.organization_id, m.c.old_id == table.c[column])
        )
        conn.execute(
            table.update().where(sa.exists(match)).values({column: match.scalar_subquery()})
        )


def _split_users(conn: sa.Connection) -> None:
    now = datetime.now(UTC)
    pool_of: dict[int, int] = {}
    for product_id, slug in conn.execute(sa.select(_products.c.id, _products.c.slug)).all():
        pool_id = conn.execute(
            _pools.insert().values(name=slug, created_at=now).returning(_pools.c.id)
        ).scalar_one()
        conn.execute(
            _products.update().where(_products.c.id == product_id).values(identity_pool_id=pool_id)
        )
        pool_of[product_id] = pool_id
    presence = _presence(conn)
    if any(user_id not in presence for (user_id,) in conn.execute(sa.select(_users.c.id))):
        pool_of[0] = conn.execute(
            _pools.insert().values(name=UNASSIGNED_POOL, created_at=now).returning(_pools.c.id)
        ).scalar_one()
    next_id = (conn.execute(sa.select(sa.func.max(_users.c.id))).scalar() or 0) + 1
    keepers: list[dict[str, object]] = []
    copies: list[dict[str, object]] = []
    places: list[dict[str, object]] = []
    for user in conn.execute(sa.select(_users).order_by(_users.c.id)).mappings().all():
        # The first place keeps the row; today every pool holds exactly one product.
        first, *others = sorted(presence.get(user["id"], ())) or [(0, "live")]
        keepers.append({"b_id": user["id"], "b_pool": pool_of[first[0]], "b_env": first[1]})
        for product_id, env in others:
            copy = {k: v for k, v in user.items() if k not in ("id", "pool_id", "env")}
            copies.append({**copy, "id": next_id, "pool_id": pool_of[product_id], "env": env})
            places.append(
                {"old_id": user["id"], "product_id": product_id, "env": env, "new_id": next_id}
            )
            next_id += 1
    if keepers:
        conn.execute(
            _users.update()
            .where(_users.c.id == sa.bindparam("b_id"))
            .values(pool_id=sa.bindparam("b_pool"), env=sa.bindparam("b_env")),
            keepers,
        )
    _copies.create(conn)
    if copies:
        conn.execute(_users.insert(), copies)
        conn.execute(_copies.insert(), places)
        _repoint(conn)
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT setval('users_id_seq', (SELECT max(id) FROM users))"))
    _copies.drop(conn)


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
