"""Every console route: the pages under /console (HTML, not part of the OpenAPI document:
`hub/openapi.py` excludes them) and the audit log's API route (declared, documented)."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

import console.pages_delete as pages_delete
import console.pages_orgs as pages_orgs
import console.pages_users as pages_users
from console import pages_auth, pages_keys, pages_members, pages_products
from console.audit_routes import routes as audit_api_routes
from console.pages_notifications import notifications_page, send_test
from console.pages_status import status_json, status_page
from console.web import STATIC_DIR

PRODUCT = "/products/{slug}"

page_routes: list[BaseRoute] = [
    Route("/sign-in", pages_auth.sign_in_form, methods=["GET"]),
    Route("/sign-in", pages_auth.sign_in, methods=["POST"]),
    Route("/sign-out", pages_auth.sign_out, methods=["POST"]),
    Route("/invitations/{token}", pages_auth.invitation_form, methods=["GET"]),
    Route("/invitations/{token}", pages_auth.accept_invitation, methods=["POST"]),
    Route("/audit", pages_members.deployment_audit_page, methods=["GET"]),
    Route("/products", pages_products.product_list, methods=["GET"]),
    Route("/products", pages_products.create_product, methods=["POST"]),
    Route("/products/new", pages_products.new_product, methods=["GET"]),
    Route(PRODUCT, pages_products.product_page, methods=["GET"]),
    Route(PRODUCT + "/origins", pages_products.edit_origins, methods=["POST"]),
    Route(PRODUCT + "/settings", pages_products.edit_settings, methods=["POST"]),
    Route(PRODUCT + "/members", pages_members.members_page, methods=["GET"]),
    Route(PRODUCT + "/members/invite", pages_members.invite, methods=["POST"]),
    Route(PRODUCT + "/members/{account_id}/role", pages_members.change_role, methods=["POST"]),
    Route(PRODUCT + "/members/{account_id}/remove", pages_members.remove_member, methods=["POST"]),
    Route(
        PRODUCT + "/invitations/{invitation_id}/withdraw",
        pages_members.withdraw_invitation,
        methods=["POST"],
    ),
    Route(PRODUCT + "/audit", pages_members.audit_page, methods=["GET"]),
    Route(PRODUCT + "/keys", pages_keys.keys_page, methods=["GET"]),
    Route(PRODUCT + "/keys", pages_keys.create_key, methods=["POST"]),
    Route(PRODUCT + "/keys/{key_id}/rotate", pages_keys.rotate_key, methods=["POST"]),
    Route(PRODUCT + "/keys/{key_id}/revoke", pages_keys.revoke_key, methods=["POST"]),
    Route(PRODUCT + "/users", pages_users.users_page, methods=["GET"]),
    Route(PRODUCT + "/users/{user_id}", pages_users.user_page, methods=["GET"]),
    Route(
        PRODUCT + "/users/{user_id}/sessions/revoke",
        pages_users.revoke_all_sessions,
        methods=["POST"],
    ),
    Route(
        PRODUCT + "/users/{user_id}/sessions/{session_id}/revoke",
        pages_users.revoke_session,
        methods=["POST"],
    ),
    Route(PRODUCT + "/organizations", pages_orgs.organizations_page, methods=["GET"]),
    Route(PRODUCT + "/organizations/{org_id}", pages_orgs.organization_page, methods=["GET"]),
    Route(
        PRODUCT + "/organizations/{org_id}/credentials/{kind}/{credential_id}/revoke",
        pages_orgs.revoke_credential,
        methods=["POST"],
    ),
    Route(PRODUCT + "/delete", pages_delete.delete_form, methods=["GET"]),
    Route(PRODUCT + "/delete", pages_delete.delete, methods=["POST"]),
    Route(PRODUCT + "/status", status_page, methods=["GET"]),
    Route(PRODUCT + "/status.json", status_json, methods=["GET"]),
    Route(PRODUCT + "/notifications", notifications_page, methods=["GET"]),
    Route(PRODUCT + "/notifications/test", send_test, methods=["POST"]),
    Mount("/static", StaticFiles(directory=STATIC_DIR), name="console-static"),
]

routes: list[BaseRoute] = [
    Route("/console", pages_auth.home, methods=["GET"]),
    Mount("/console", routes=page_routes),
    *audit_api_routes,
]
