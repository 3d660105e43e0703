"""No token, password or key ever reaches a log line."""

from __future__ import annotations

import logging

from infra.logs import RedactingFormatter, logging_config, redact, redact_url
from tests.support import bearer, product_headers, register


def test_redact_masks_credential_shapes():
    text = (
        "GET /cable?token=eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl HTTP/1.1 "
        "Authorization: Bearer abc.def.ghi sk_live_FAKEKEY123 pk_test_abcdefghijkl "
        "wksp_7d5c9c1a0e8c4f58 hubsec_QmFzZTY0c2VjcmV0 rk_live_FAKEKEY456 "
        "{'password': 'hunter2hunter2'} "
        '{"refresh_token": "opaque-value"} $argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA'
    )
    masked = redact(text)
    for secret in (
        "eyJhbGciOiJFUzI1NiJ9",
        "abc.def.ghi",
        "sk_live_FAKEKEY123",
        "pk_test_abcdefghijkl",
        "wksp_7d5c9c1a",
        "hubsec_QmFzZTY0",
        "rk_live_FAKEKEY456",
        "hunter2hunter2",
        "opaque-value",
        "$argon2id$",
    ):
        assert secret not in masked, secret
    assert "GET /cable?token=[REDACTED]" in masked


def test_redact_masks_the_password_of_a_url():
    for url, shown in [
        ("postgresql://hub:s3cr@t-pw@db:5432/hub", "postgresql://hub:[REDACTED]@db:5432/hub"),
        ("redis://:hunter2@127.0.0.1:6379/0", "redis://:[REDACTED]@127.0.0.1:6379/0"),
        ("redis+cluster://u:pw@a:7000,b:7001", "redis+cluster://u:[REDACTED]@a:7000,b:7001"),
        (
            "smtp://mailer:p%40ss@smtp:587?starttls=1",
            "smtp://mailer:[REDACTED]@smtp:587?starttls=1",
        ),
        ("postgresql://hub@db/hub", "postgresql://hub@db/hub"),
        ("http://127.0.0.1:8000/path", "http://127.0.0.1:8000/path"),
    ]:
        assert redact_url(url) == shown
        assert redact(f"connecting to {url} failed") == f"connecting to {shown} failed"


def test_formatter_honours_the_development_exception_only_when_allowed():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "link token=%s", ("s3cret",), None)
    record.hub_allow_secret = True
    formatter = RedactingFormatter("%(message)s")
    RedactingFormatter.allow_secrets = False
    try:
        assert formatter.format(record) == "link token=[REDACTED]"
        RedactingFormatter.allow_secrets = True
        assert formatter.format(record) == "link token=s3cret"
    finally:
        RedactingFormatter.allow_secrets = False


async def test_server_logs_carry_no_secrets(hub, client, email):
    password = "Unique-Log-Canary-Pass-1"
    tokens = await register(client, email, password=password)
    await client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    # A token in a query string lands in the access log line unless it is redacted.
    await client.get(f"/api/v1/auth/me?token={tokens['access_token']}")
    await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    await client.post(
        "/api/v1/auth/login",
        headers=product_headers(),
        json={"email": email, "password": password + "-wrong"},
    )
    logs = hub.logs()
    assert "/api/v1/auth/me?token=[REDACTED]" in logs  # the line is there, masked
    for secret in (password, tokens["access_token"], tokens["refresh_token"]):
        assert secret not in logs
        assert secret[:40] not in logs


async def test_production_logs_json_lines_with_request_ids(tmp_path):
    import json

    import httpx

    from tests.support import CableClient, api_user, create_product, production_hub

    with production_hub(tmp_path) as server:
        product = create_product(server)
        async with httpx.AsyncClient(base_url=server.url) as client:
            # A cable socket skips the HTTP middleware, and still logs under its request id.
            # (over HTTPS, as a trusted proxy reports it: a key seen over plain HTTP is revoked)
            async with httpx.AsyncClient(
                base_url=server.url, headers={"X-Forwarded-Proto": "https"}
            ) as https:
                _, token = await api_user(https, product["sk_live"])
            tab = await CableClient.connect(
                server.url, token, additional_headers={"X-Request-Id": "ws-42"}
            )
            assert await tab.recv() == {"type": "welcome"}
            await tab.close()
            chosen = await client.get(
                "/api/v1/keys",
                headers={**bearer(product["sk_live"]), "X-Request-Id": "lb-1234.abc"},
            )
            assert chosen.headers["x-request-id"] == "lb-1234.abc"
            hostile = await client.get("/healthz", headers={"X-Request-Id": "a b<script>"})
            assert len(hostile.headers["x-request-id"]) == 32  # replaced by a fresh id
            # A key sent as the request id would sit in every log line of the request.
            keyish = "sk_live_" + "A1b2C3d4" * 5
            leaked = await client.get("/healthz", headers={"X-Request-Id": keyish})
            assert leaked.headers["x-request-id"] != keyish
            await client.get(f"/api/v1/auth/me?token={product['sk_live']}")
    lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "message"} <= set(e) for e in lines)
    access = [e for e in lines if e["logger"] == "uvicorn.access"]
    assert any(e.get("request_id") == "lb-1234.abc" for e in access)
    cable = [e for e in lines if e.get("request_id") == "ws-42"]
    assert any("/cable" in e["message"] and "accepted" in e["message"] for e in cable), cable
    assert product["sk_live"] not in server.logs()
    assert "A1b2C3d4" not in server.logs()
    assert token not in server.logs() and token[:40] not in server.logs()


def test_redact_masks_secret_query_parameters_and_spaced_passwords():

    for url in (
        "postgresql://u@h:5432/db?password=S3cretPW",
        "postgresql://u@h/db?sslmode=require&sslpassword=S3cretPW",
        "postgresql://u@h/db?passwd=S3cretPW&x=1",
        "postgresql://u:S3c retPW@127.0.0.1:1/x",
    ):
        assert "S3cretPW" not in redact_url(url) and "retPW" not in redact_url(url)
        assert "S3cretPW" not in redact(f"connecting to {url} failed")
        assert "retPW" not in redact(f"connecting to {url} failed")
    assert (
        redact_url("postgresql://u@h/db?sslmode=require") == "postgresql://u@h/db?sslmode=require"
    )


def test_extension_keys_invitation_links_and_sign_in_codes_are_masked():
    # Found by an outside review: invitation links and OpenID Connect callbacks reached the
    # access log whole (a log reader could accept an invitation or replay a code's state).
    line = (
        '"GET /console/invitations/inv_pMxmFrlaMq1gw6mWFJRj8KA2kHrNPnBmzu HTTP/1.1" 200 '
        '"GET /v1/auth/callback?code=SplxlOBeZQQYbYS6WxSbIA&state=af0ifjsldkj&iss=x HTTP/1.1" '
        "Bearer ext_Q2xhc3NpY2FsbHkgc2VjcmV0"
    )
    masked = redact(line)
    for secret in ("pMxmFrlaMq1gw6", "SplxlOBeZQQYbYS6WxSbIA", "af0ifjsldkj", "Q2xhc3NpY2Fs"):
        assert secret not in masked
    assert "/console/invitations/" in masked and "iss=x" in masked


def test_http_clients_do_not_log_the_urls_they_call():
    # httpx logs each request's whole URL at INFO: a Slack webhook URL is a secret.
    loggers = logging_config("debug")["loggers"]
    assert loggers["httpx"]["level"] == "WARNING"
    assert loggers["httpcore"]["level"] == "WARNING"
