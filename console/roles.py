"""Who may do what on a product: the four roles, the actions, and the one matrix.

The README's "Roles" table shows the same matrix (tests/test_console_roles.py keeps the
two equal); every console page asks `allowed(role, action)` through `guard.require`. A
console admin acts as owner on every product.
"""

from __future__ import annotations

ROLES = ("owner", "admin", "developer", "viewer")

# Roles an admin may grant, change or remove (an owner may do all of them).
ADMIN_MANAGES = ("admin", "developer", "viewer")

_ALL = frozenset(ROLES)
_BUILDERS = frozenset({"owner", "admin", "developer"})
_MANAGERS = frozenset({"owner", "admin"})

# action → the roles allowed it. Descriptions are the first column of the README's table.
ACTIONS: dict[str, str] = {
    "product.view": "View the product, its status and notification log",
    "keys.view": "See keys (prefix, last used; never secrets)",
    "keys.manage": "Create, rotate and revoke keys",
    "origins.edit": "Edit allowed origins",
    "settings.edit": "Edit webhooks, alert destinations and mail branding",
    "users.view": "See users",
    "users.revoke_sessions": "Revoke user sessions",
    "notifications.test": "Send a test notification",
    "members.manage": "Invite members and change roles (an admin cannot grant or remove owner)",
    "audit.view": "Read the audit log",
    "org_credentials.revoke": "Revoke organization workspace tokens and OAuth apps",
    "product.delete": "Delete the product",
}

MATRIX: dict[str, frozenset[str]] = {
    "product.view": _ALL,
    "keys.view": _ALL,
    "keys.manage": _BUILDERS,
    "origins.edit": _BUILDERS,
    "settings.edit": _MANAGERS,
    "users.view": _BUILDERS,
    "users.revoke_sessions": _MANAGERS,
    "notifications.test": _BUILDERS,
    "members.manage": _MANAGERS,
    "audit.view": _MANAGERS,
    "org_credentials.revoke": _MANAGERS,
    "product.delete": frozenset({"owner"}),
}


def allowed(role: str | None, action: str) -> bool:
    """Whether `role` may do `action`; an unknown action is refused (so is no role)."""
    return role is not None and role in MATRIX.get(action, frozenset())


def may_manage_role(acting_role: str, role: str) -> bool:
    """Whether a member with `acting_role` may grant, change or remove `role`."""
    if acting_role == "owner":
        return role in ROLES
    return acting_role == "admin" and role in ADMIN_MANAGES
