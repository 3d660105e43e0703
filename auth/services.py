"""The auth domain's collaborators as one typed object, and the one way routes reach it.

`create_app` builds every service once, with its collaborators as constructor arguments, and
stores the app's services as `app.state.services`; the auth floor's part of it is the
`auth` attribute (an `AuthServices`). Routes, guards and the cable read it through
`auth_services(connection)`: one typed accessor instead of an ad-hoc `app.state` name each.
Nothing here holds a database handle: route handlers never see one.
"""

from __future__ import annotations

from dataclasses import dataclass

from databases import Database
from starlette.requests import HTTPConnection

from auth.account_flows import AccountFlows
from auth.alerts import SecurityAlerts
from auth.credentials import AnnounceProductChanged, Credentials
from auth.extensions import Extensions
from auth.key_cache import KeyCache
from auth.mail import Mailer
from auth.mailed_links import MailedLinks
from auth.org_admin import OrgAdmin
from auth.org_callers import OrgCallers
from auth.org_credentials import OrgCredentials
from auth.passwords import PasswordHasher
from auth.product_admin import ProductAdmin
from auth.products import ProductDirectory
from auth.ratelimit import RateLimiter
from auth.session_tokens import SessionsRevoked, SessionTokens
from auth.tokens import TokenSigner
from auth.user_admin import UserAdmin
from infra.settings import Settings


@dataclass(frozen=True)
class AuthServices:
    settings: Settings
    limiter: RateLimiter
    signer: TokenSigner
    products: ProductDirectory
    tokens: SessionTokens
    links: MailedLinks
    accounts: AccountFlows
    credentials: Credentials
    org_credentials: OrgCredentials
    extensions: Extensions
    org_callers: OrgCallers
    product_admin: ProductAdmin
    # The console's views of a product environment's users (and their sessions) and orgs.
    user_admin: UserAdmin
    org_admin: OrgAdmin


def auth_services(connection: HTTPConnection) -> AuthServices:
    """The auth services of the app serving `connection` (an HTTP request or a WebSocket)."""
    return connection.app.state.services.auth


def build_auth_services(
    *,
    db: Database,
    settings: Settings,
    signer: TokenSigner,
    hasher: PasswordHasher,
    mailer: Mailer,
    limiter: RateLimiter,
    alerts: SecurityAlerts,
    on_sessions_revoked: SessionsRevoked,
    announce_product_changed: AnnounceProductChanged | None = None,
) -> AuthServices:
    """Every auth service, each given its collaborators when it is made (nothing is
    patched in afterwards)."""
    live_keys = KeyCache()
    products = ProductDirectory(db, live_keys)
    tokens = SessionTokens(
        db=db,
        settings=settings,
        signer=signer,
        limiter=limiter,
        products=products,
        on_sessions_revoked=on_sessions_revoked,
    )
    links = MailedLinks(
        db=db, settings=settings, hasher=hasher, mailer=mailer, limiter=limiter, tokens=tokens
    )
    credentials = Credentials(db, settings, alerts, live_keys, announce_product_changed)
    org_credentials = OrgCredentials(db, signer)
    extensions = Extensions(db)
    return AuthServices(
        settings=settings,
        limiter=limiter,
        signer=signer,
        products=products,
        tokens=tokens,
        links=links,
        accounts=AccountFlows(
            db=db, settings=settings, hasher=hasher, limiter=limiter, tokens=tokens, links=links
        ),
        credentials=credentials,
        org_credentials=org_credentials,
        extensions=extensions,
        org_callers=OrgCallers(
            db=db,
            credentials=credentials,
            org_credentials=org_credentials,
            extensions=extensions,
            signer=signer,
        ),
        product_admin=ProductAdmin(db, credentials.product_changed),
        user_admin=UserAdmin(db, tokens.revoked),
        org_admin=OrgAdmin(db, org_credentials, extensions),
    )
