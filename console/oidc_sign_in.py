"""Single sign-on for the console: the OpenID Connect routes, bound to operator accounts.

`console/oidc*.py` proves who the provider says signed in; this module decides whether that
identity is an operator of this console (`find_or_link_oidc_account`: linked by issuer and
subject, or by an email the provider vouches for) and then signs them in exactly as a password
does (`start_console_session`: a new session id, the presented one ended, an audit row).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from auth.tokens import TokenSigner
from console.accounts import find_or_link_oidc_account
from console.guard import start_console_session
from console.oidc import OidcClient, OidcConfig, VerifiedIdentity
from console.oidc_errors import OidcError
from console.oidc_pending import CALLBACK_PATH
from console.oidc_routes import oidc_routes
from console.services import console_services
from infra.settings import Settings


async def sign_in_operator(request: Request, identity: VerifiedIdentity) -> Response:
    """Start a console session for the operator `identity` names, or refuse with the page."""
    account = await find_or_link_oidc_account(
        console_services(request).db,
        identity.issuer,
        identity.subject,
        identity.email,
        identity.email_verified,
    )
    if account is None or not account.active:
        # One answer for "nobody" and "disabled": the page does not tell which addresses exist.
        raise OidcError("oidc.not_allowed", "this identity has no console account here")
    return await start_console_session(
        request, account, how="oidc", next_url=request.state.oidc_return_to
    )


def single_sign_on(
    settings: Settings, signer: TokenSigner
) -> tuple[OidcClient | None, list[BaseRoute]]:
    """The OpenID Connect client and its two routes, or (None, []) when it is not configured
    (the settings have already refused a partial or malformed configuration)."""
    console = settings.console
    if not console.oidc_enabled:
        return None, []
    client = OidcClient(
        OidcConfig(
            issuer=console.oidc_issuer or "",
            client_id=console.oidc_client_id or "",
            client_secret=console.oidc_client_secret or "",
            redirect_uri=f"{settings.public_url}{CALLBACK_PATH}",
            label=console.oidc_name,
        )
    )
    routes = oidc_routes(
        client, sign_in_operator, signer=signer, secure_cookies=settings.production
    )
    return client, routes
