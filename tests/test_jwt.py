"""ES256 JWTs: forged and misused tokens are refused, the JWKS is usable, rotation works.

Attacks run against a real hub (SQLite and PostgreSQL). Every forged token starts from the
claims of a genuine access token, so session, user, organization and product are real, and
each attack case first proves that a correctly signed token with those same claims is
accepted: a 401 then comes from the attack alone. A second JOSE library (joserfc) checks the
JWKS and the hub's tokens independently of PyJWT, which the hub itself uses.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, KeySet

from auth.tokens import (
    ACCESS,
    REFRESH,
    InvalidToken,
    SigningKey,
    TokenSigner,
    generate_private_key_pem,
    load_signing_keys,
)
from tests.support import HubServer, Mailbox, bearer, register

ISSUER = "notification-hub"
ME = "/api/v1/auth/me"
REFRESH_PATH = "/api/v1/auth/refresh"
JWKS_PATH = "/.well-known/jwks.json"
DROP = object()  # a claim value meaning "leave this claim out"


# -- token crafting -------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: dict) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def unverified_claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def hub_key(pem: str) -> SigningKey:
    """The key a hub configured with `pem` signs with (the last PEM block)."""
    return load_signing_keys(pem)[-1]


def public_pem(key: SigningKey) -> bytes:
    return key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fresh_claims(claims: dict, **changes: object) -> dict:
    """`claims` with a new iat/exp/jti, then `changes` applied (`DROP` removes a claim)."""
    now = int(time.time())
    merged = {**claims, "iat": now, "exp": now + 600, "jti": uuid.uuid4().hex, **changes}
    return {name: value for name, value in merged.items() if value is not DROP}


def sign_es256(claims: dict, private_key: ec.EllipticCurvePrivateKey, kid: str) -> str:
    return jwt.encode(claims, private_key, algorithm="ES256", headers={"kid": kid})


def unsigned(header: dict, claims: dict, signature: bytes = b"") -> str:
    return f"{b64url_json(header)}.{b64url_json(claims)}.{b64url(signature)}"


def hs256(claims: dict, secret: bytes, kid: str) -> str:
    """HS256 by hand: PyJWT refuses to use a PEM public key as an HMAC secret."""
    signing_input = (
        f"{b64url_json({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{b64url_json(claims)}"
    )
    signature = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


# -- the attacks ----------------------------------------------------------------------------


@dataclass
class Forgery:
    """What an attacker works from: a user's genuine tokens and the hub's (public) key."""

    tokens: dict  # the register() response
    claims: dict  # the access token's claims, unverified
    key: SigningKey  # the hub's key; attacks may only use its public half
    victim_sub: str  # another real user's id

    def genuine(self, **changes: object) -> str:
        """Correctly signed by the hub's key: what every refusal is measured against."""
        return sign_es256(fresh_claims(self.claims, **changes), self.key.private_key, self.key.kid)


def alg_none(f: Forgery) -> str:
    return unsigned({"alg": "none", "typ": "JWT", "kid": f.key.kid}, fresh_claims(f.claims))


def hs256_with_public_key(f: Forgery) -> str:
    return hs256(fresh_claims(f.claims), public_pem(f.key), f.key.kid)


def expired(f: Forgery) -> str:
    now = int(time.time())
    return f.genuine(iat=now - 7200, exp=now - 3600)


def missing_exp(f: Forgery) -> str:
    return f.genuine(exp=DROP)


def wrong_issuer(f: Forgery) -> str:
    return f.genuine(iss="evil-hub")


def issuer_substring(f: Forgery) -> str:
    # PyJWT 2.10.0 matched a string issuer with `in`: "notification" passed.
    return f.genuine(iss=ISSUER[:-4])


def tampered_sub(f: Forgery) -> str:
    header, _, signature = f.tokens["access_token"].split(".")
    payload = b64url_json({**f.claims, "sub": f.victim_sub})
    return f"{header}.{payload}.{signature}"


def unknown_kid(f: Forgery) -> str:
    return sign_es256(fresh_claims(f.claims), f.key.private_key, "not-one-of-ours")


def other_key_real_kid(f: Forgery) -> str:
    return sign_es256(fresh_claims(f.claims), ec.generate_private_key(ec.SECP256R1()), f.key.kid)


def refresh_token_as_access(f: Forgery) -> str:
    return f.tokens["refresh_token"]


# Malformed claims under a genuine signature: only a key holder could mint these, but they
# must still be a 401, never a 500.
def non_numeric_sub(f: Forgery) -> str:
    return f.genuine(sub="admin")


def missing_org(f: Forgery) -> str:
    return f.genuine(org=DROP)


def out_of_range_sub(f: Forgery) -> str:
    return f.genuine(sub="99999999999999999999999")


ATTACKS = [
    pytest.param(attack, id=attack.__name__)
    for attack in (
        alg_none,
        hs256_with_public_key,
        expired,
        missing_exp,
        wrong_issuer,
        issuer_substring,
        tampered_sub,
        unknown_kid,
        other_key_real_kid,
        refresh_token_as_access,
        non_numeric_sub,
        missing_org,
        out_of_range_sub,
    )
]


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "auth.unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


async def get_me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get(ME, headers=bearer(token))


@pytest.fixture
async def forgery(client: httpx.AsyncClient, hub: HubServer, email: str) -> Forgery:
    tokens = await register(client, email)
    victim = await register(client, f"victim-{email}")
    return Forgery(
        tokens=tokens,
        claims=unverified_claims(tokens["access_token"]),
        key=hub_key(hub.private_key_pem),
        victim_sub=str(victim["user"]["id"]),
    )


async def test_forged_token_with_real_key_is_accepted(client, forgery):
    claims = forgery.claims
    assert claims["iss"] == ISSUER
    assert claims["type"] == ACCESS
    assert jwt.get_unverified_header(forgery.tokens["access_token"])["kid"] == forgery.key.kid
    response = await get_me(client, forgery.genuine())
    assert response.status_code == 200, response.text
    assert response.json()["user"]["id"] == int(claims["sub"])
    assert response.json()["organization"]["id"] == claims["org"]


@pytest.mark.parametrize("attack", ATTACKS)
async def test_attack_on_me_is_refused(client, forgery, attack: Callable[[Forgery], str]):
    assert (await get_me(client, forgery.genuine())).status_code == 200
    assert_unauthorized(await get_me(client, attack(forgery)))


async def test_access_token_is_refused_as_refresh_token(client, forgery):
    refused = await client.post(
        REFRESH_PATH, json={"refresh_token": forgery.tokens["access_token"]}
    )
    assert_unauthorized(refused)
    # The genuine refresh token of the same session still rotates.
    ok = await client.post(REFRESH_PATH, json={"refresh_token": forgery.tokens["refresh_token"]})
    assert ok.status_code == 200, ok.text


# -- JWKS -----------------------------------------------------------------------------------


async def test_jwks_publishes_public_es256_key(client, hub):
    response = await client.get(JWKS_PATH)
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert len(keys) == 1
    [jwk] = keys
    assert jwk["kty"] == "EC"
    assert jwk["crv"] == "P-256"
    assert jwk["alg"] == "ES256"
    assert jwk["use"] == "sig"
    assert "d" not in jwk
    # Independently of the hub's code: the published point is the signing key's public
    # half, and the kid is its RFC 7638 thumbprint.
    expected = ECKey.import_key(public_pem(hub_key(hub.private_key_pem)))
    assert (jwk["x"], jwk["y"]) == (expected.as_dict()["x"], expected.as_dict()["y"])
    assert jwk["kid"] == expected.thumbprint()


async def test_hub_token_verifies_with_joserfc_and_jwks(client, email):
    tokens = await register(client, email)
    key_set = KeySet.import_key_set((await client.get(JWKS_PATH)).json())
    token = jose_jwt.decode(tokens["access_token"], key_set, algorithms=["ES256"])
    assert token.header["alg"] == "ES256"
    assert token.header["kid"] == key_set.keys[0].kid
    jose_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        exp={"essential": True},
        sub={"essential": True, "value": str(tokens["user"]["id"])},
        jti={"essential": True},
    ).validate(token.claims)
    assert token.claims["type"] == ACCESS
    assert token.claims["org"] == tokens["organization"]["id"]
    assert token.claims["product"] == "demo"
    assert token.claims["exp"] - token.claims["iat"] == tokens["expires_in"]


# -- key rotation ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rotated_hub(
    tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox, redis_url: str | None
) -> Iterator[HubServer]:
    """A hub (SQLite) configured with an old and a new key, the new one last."""
    server = HubServer(
        workdir=tmp_path_factory.mktemp("hub-rotated"),
        smtp_port=mailbox.port,
        redis_url=redis_url,
        private_key_pem=generate_private_key_pem() + generate_private_key_pem(),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_key_rotation_signs_with_new_key_and_accepts_old(rotated_hub, email):
    old, new = load_signing_keys(rotated_hub.private_key_pem)
    assert old.kid != new.kid
    async with httpx.AsyncClient(base_url=rotated_hub.url, timeout=30) as client:
        published = (await client.get(JWKS_PATH)).json()["keys"]
        assert sorted(k["kid"] for k in published) == sorted([old.kid, new.kid])

        tokens = await register(client, email)
        assert jwt.get_unverified_header(tokens["access_token"])["kid"] == new.kid
        assert jwt.get_unverified_header(tokens["refresh_token"])["kid"] == new.kid

        claims = fresh_claims(unverified_claims(tokens["access_token"]))
        by_old_key = sign_es256(claims, old.private_key, old.kid)
        response = await get_me(client, by_old_key)
        assert response.status_code == 200, response.text
        assert response.json()["user"]["email"] == email
        # The kid picks the key: the old key's signature under the new kid is refused.
        assert_unauthorized(await get_me(client, sign_es256(claims, old.private_key, new.kid)))


# -- TokenSigner, in process ----------------------------------------------------------------


def new_signing_key() -> SigningKey:
    return SigningKey.from_private_key(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture
def signer() -> TokenSigner:
    return TokenSigner([new_signing_key()], "test-issuer")


def test_signer_roundtrip(signer):
    token, payload = signer.issue(ACCESS, {"sub": "7", "org": 3}, ttl=60)
    claims = signer.verify(token, ACCESS)
    assert claims == payload
    assert claims["sub"] == "7"
    assert claims["org"] == 3
    assert claims["iss"] == "test-issuer"
    assert claims["exp"] - claims["iat"] == 60
    assert claims["jti"]


def test_signer_refuses_wrong_type(signer):
    access, _ = signer.issue(ACCESS, {"sub": "7"}, ttl=60)
    refresh, _ = signer.issue(REFRESH, {"sub": "7"}, ttl=60)
    with pytest.raises(InvalidToken):
        signer.verify(access, REFRESH)
    with pytest.raises(InvalidToken):
        signer.verify(refresh, ACCESS)


def test_signer_refuses_oversized_token(signer):
    # Both tokens are genuine; only the size differs.
    small, _ = signer.issue(ACCESS, {"sub": "7", "pad": "x" * 4000}, ttl=60)
    assert signer.verify(small, ACCESS)["pad"] == "x" * 4000
    large, _ = signer.issue(ACCESS, {"sub": "7", "pad": "x" * 7000}, ttl=60)
    assert len(large) > 8192
    with pytest.raises(InvalidToken):
        signer.verify(large, ACCESS)


def test_signer_refuses_other_signers_tokens(signer):
    foreign, _ = TokenSigner([new_signing_key()], "test-issuer").issue(ACCESS, {"sub": "7"}, 60)
    with pytest.raises(InvalidToken):
        signer.verify(foreign, ACCESS)
