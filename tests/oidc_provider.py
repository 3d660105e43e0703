"""A real OpenID Connect provider for the console's sign-in tests: Authlib's Flask authorization
server with the OpenID Connect code grant and PKCE (`CodeChallenge(required=True)`), served by
werkzeug on a free port in a thread. It is the third party's side; the hub's own client
(console/oidc.py) is never mocked or patched.

It has discovery and JWKS endpoints, an RSA key made per instance, one registered confidential
client, and an authorize endpoint that approves at once for `user` (no login page: the tests
play the browser). Its codes are single-use (Authlib deletes a code when it is exchanged).

Switches the tests flip to make it misbehave, each a plain attribute:
`sign_with_rogue_key` (ID tokens signed with a key it does not publish, under the published
`kid`, so the signature is bad), `rogue_kid` (that rogue key under a `kid` it does not publish),
`audience` (the ID token's `aud`), `nonce` (echo this instead of the request's nonce),
`discovery_issuer` (the `issuer` the discovery document claims), `discovery_extra` (fields
merged into the discovery document), `deny` (the user refuses), `rewrite_id_token` (a function
given the ID token Authlib issued, returning the one to send instead), `token_status` (the token
endpoint answers this status with a plain-text body), `token_padding` (bytes of filler added
to the token answer) and `token_chunked` (the token answer streamed without a length).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, Response, jsonify, request
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server

from tests.support import free_port

# Authlib's server refuses plain http unless told otherwise; this provider lives on localhost.
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

CLIENT_ID = "hub-console"
CLIENT_SECRET = "provider-side-secret-for-tests"
SCOPES = "openid email profile"


@dataclass
class User:
    sub: str = "user-1234"
    email: str = "ada@example.com"
    email_verified: bool = True
    name: str = "Ada Lovelace"


class Client(ClientMixin):
    def __init__(self, redirect_uri: str) -> None:
        self.client_id = CLIENT_ID
        self.client_secret = CLIENT_SECRET
        self.redirect_uri = redirect_uri

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_allowed_scope(self, scope: str) -> str:
        allowed = set(SCOPES.split())
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri == self.redirect_uri

    def check_client_secret(self, client_secret: str) -> bool:
        return client_secret == self.client_secret

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class AuthorizationCode:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: User
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


class OidcProvider:
    """One provider on `http://127.0.0.1:{port}`; `start()`, flip switches, `stop()`."""

    def __init__(self, redirect_uri: str) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.client = Client(redirect_uri)
        self.user = User()
        self.key = RSAKey.generate_key(2048, parameters={"kid": "good-key", "alg": "RS256"})
        self.rogue_key = RSAKey.generate_key(2048, parameters={"alg": "RS256"})
        self.codes: dict[str, AuthorizationCode] = {}
        self.hits: dict[str, int] = {"discovery": 0, "jwks": 0, "authorize": 0, "token": 0}
        self.authorize_requests: list[dict[str, str]] = []
        self.token_errors: list[str] = []
        self.reset()
        self._server = make_server("127.0.0.1", self.port, self._app(), threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def reset(self) -> None:
        """Back to an honest provider."""
        self.sign_with_rogue_key = False
        self.rogue_kid: str | None = None
        self.audience: str | list[str] | None = None
        self.nonce: str | None = None
        self.discovery_issuer: str | None = None
        self.discovery_extra: dict = {}
        self.deny = False
        self.rewrite_id_token: Callable[[str], str] | None = None
        self.token_status: int | None = None
        self.token_padding = 0
        self.token_chunked = False

    def start(self) -> OidcProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)

    def rotate_key(self) -> None:
        """Publish and sign with a new key (as a provider rotating its keys does)."""
        self.key = RSAKey.generate_key(
            2048, parameters={"kid": f"key-{time.monotonic_ns()}", "alg": "RS256"}
        )

    def discovery(self) -> dict:
        base = self.issuer
        return {
            "issuer": self.discovery_issuer or self.issuer,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "jwks_uri": f"{base}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": SCOPES.split(),
            **self.discovery_extra,
        }

    # -- the Authlib side ---------------------------------------------------------------------

    def _signing(self) -> tuple[RSAKey, str]:
        """The key ID tokens are signed with now, and the kid their header names."""
        if self.rogue_kid is not None:
            return self.rogue_key, self.rogue_kid
        if self.sign_with_rogue_key:
            return self.rogue_key, self.key.kid
        return self.key, self.key.kid

    def _app(self) -> Flask:
        provider = self
        app = Flask("oidc_provider")

        class CodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")

            def save_authorization_code(self, code: str, req) -> None:
                provider.codes[code] = AuthorizationCode(
                    code=code,
                    client_id=req.client.get_client_id(),
                    redirect_uri=req.payload.redirect_uri,
                    scope=req.payload.scope,
                    user=req.user,
                    nonce=req.payload.data.get("nonce"),
                    code_challenge=req.payload.data.get("code_challenge"),
                    code_challenge_method=req.payload.data.get("code_challenge_method"),
                )

            def query_authorization_code(self, code: str, client):
                found = provider.codes.get(code)
                return found if found and found.client_id == client.get_client_id() else None

            def delete_authorization_code(self, authorization_code) -> None:
                provider.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code) -> User:
                return authorization_code.user

        class OpenIdCode(OpenIDCode):
            def exists_nonce(self, nonce: str, req) -> bool:
                return False

            def resolve_client_private_key(self, client) -> RSAKey:
                return provider._signing()[0]

            def get_client_algorithm(self, client) -> str:
                return "RS256"

            def get_encode_header(self, client) -> dict:
                return {"alg": "RS256", "kid": provider._signing()[1]}

            def get_client_claims(self, client) -> dict:
                audience = provider.audience or [client.get_client_id()]
                return {"iss": provider.issuer, "aud": audience}

            def get_authorization_code_claims(self, authorization_code) -> dict:
                claims = super().get_authorization_code_claims(authorization_code)
                if provider.nonce is not None:
                    claims["nonce"] = provider.nonce
                return claims

            def generate_user_info(self, user: User, scope: str) -> UserInfo:
                return UserInfo(
                    sub=user.sub,
                    email=user.email,
                    email_verified=user.email_verified,
                    name=user.name,
                )

        server = AuthorizationServer(
            app,
            query_client=lambda client_id: (
                provider.client if client_id == provider.client.client_id else None
            ),
            save_token=lambda token, req: None,
        )
        server.register_grant(
            CodeGrant, [OpenIdCode(require_nonce=True), CodeChallenge(required=True)]
        )

        @app.get("/.well-known/openid-configuration")
        def discovery():
            provider.hits["discovery"] += 1
            return jsonify(provider.discovery())

        @app.get("/jwks")
        def jwks():
            provider.hits["jwks"] += 1
            public = provider.key.as_dict(private=False)
            return jsonify({"keys": [{**public, "use": "sig"}]})

        @app.get("/authorize")
        def authorize():
            provider.hits["authorize"] += 1
            provider.authorize_requests.append(dict(request.args))
            try:
                grant = server.get_consent_grant(end_user=provider.user)
            except OAuth2Error as error:
                return server.handle_error_response(None, error)
            # No consent page: the user approves (or, with `deny`, refuses) at once.
            return server.create_authorization_response(
                grant_user=None if provider.deny else provider.user, grant=grant
            )

        @app.post("/token")
        def token():
            provider.hits["token"] += 1
            if provider.token_status is not None:
                return Response("upstream trouble", status=provider.token_status)
            response = server.create_token_response()
            if response.status_code != 200:
                provider.token_errors.append(response.get_json().get("error_description", ""))
                return response
            answer = response.get_json()
            if provider.rewrite_id_token is not None:
                answer["id_token"] = provider.rewrite_id_token(answer["id_token"])
            if provider.token_padding:
                answer["padding"] = "x" * provider.token_padding
            body = json.dumps(answer)
            if provider.token_chunked:  # no Content-Length: the size shows only as it streams
                chunks = (body[i : i + 8192] for i in range(0, len(body), 8192))
                return Response(chunks, content_type="application/json")
            return Response(body, headers=dict(response.headers))

        return app
