"""Where a Slack alert URL may point, and destinations failing independently.

The Slack incoming webhook gets exactly the JSON webhook's SSRF protection: refused when saved
in production (API and CLI, any internal spelling, http://), and judged again when an alert is
sent, a name resolving to loopback refused. An unreachable mail server does not stop Slack.
The served-hub delivery tests are in tests/test_alert_destinations.py.
"""

from __future__ import annotations

import logging

import httpx
import pytest

from auth import alerts as alerts_module
from auth.alerts import SecurityAlerts
from auth.mail import SmtpMailer
from auth.products import Product
from tests.support import AlertSink, bearer, free_port, production_hub

# -- abuse: where a Slack URL may point ----------------------------------------------------


@pytest.fixture(scope="module")
def prod_hub(tmp_path_factory, redis_url):
    # Redis carries the CLI's "product changed" to the running hub, as in a deployment.
    extra = {"REDIS_URL": redis_url} if redis_url else {}
    with production_hub(tmp_path_factory.mktemp("alerts-prod"), **extra) as server:
        yield server


INTERNAL_SLACK_URLS = [
    "https://127.0.0.1/services/T0/B0/x",
    "https://0x7f000001/services/T0/B0/x",
    "https://169.254.169.254/latest/meta-data",
    "https://[::ffff:127.0.0.1]/services/T0/B0/x",
    "https://localhost/services/T0/B0/x",
]


async def test_production_refuses_an_internal_slack_url_when_saved(prod_hub):
    made = prod_hub.cli("products", "create", "--slug", "slack-prod", "--name", "Slack Prod")
    assert made.returncode == 0, made.stderr
    sk = next(line.split()[1] for line in made.stdout.splitlines() if "sk_live" in line)
    headers = {**bearer(sk), "X-Forwarded-Proto": "https"}
    async with httpx.AsyncClient(base_url=prod_hub.url) as client:
        kept = "https://hooks.slack.com/services/T0/B0/kept"
        ok = await client.patch("/api/v1/product", headers=headers, json={"alert_slack_url": kept})
        assert ok.status_code == 200, ok.text
        for url in INTERNAL_SLACK_URLS:
            refused = await client.patch(
                "/api/v1/product", headers=headers, json={"alert_slack_url": url}
            )
            assert refused.status_code == 422, url
            details = refused.json()["error"]["details"]
            assert details["alert_slack_url"]["code"] == "webhook.internal_address"
        for bad in ("http://hooks.slack.com/services/T0/B0/x", "hooks.slack.com", 7):
            refused = await client.patch(
                "/api/v1/product", headers=headers, json={"alert_slack_url": bad}
            )
            assert refused.status_code == 422, bad
            assert refused.json()["error"]["details"]["alert_slack_url"]["code"] == "field.not_url"
        not_bool = await client.patch(
            "/api/v1/product", headers=headers, json={"alert_email": "yes"}
        )
        assert not_bool.status_code == 422
        stored = (await client.get("/api/v1/product", headers=headers)).json()["product"]
        assert stored["alert_slack_url"] == kept and stored["alert_email"] is False
    for url in INTERNAL_SLACK_URLS[:2]:
        refused = prod_hub.cli("products", "set-alerts", "slack-prod", "--alert-slack-url", url)
        assert refused.returncode != 0
        (error,) = [line for line in refused.stderr.splitlines() if "notification-hub:" in line]
        assert "--alert-slack-url" in error and "inside the hub's network" in error
    plain = prod_hub.cli(
        "products", "set-alerts", "slack-prod", "--alert-slack-url", "http://hooks.slack.com/x"
    )
    assert plain.returncode != 0 and "https only" in plain.stderr
    changed = prod_hub.cli(
        "products", "set-alerts", "slack-prod", "--alert-email", "--alert-slack-url", ""
    )
    assert changed.returncode == 0, changed.stderr
    assert "slack:   (none)" in changed.stdout and "owners and admins" in changed.stdout
    async with httpx.AsyncClient(base_url=prod_hub.url) as client:
        stored = (await client.get("/api/v1/product", headers=headers)).json()["product"]
    assert stored["alert_slack_url"] is None and stored["alert_email"] is True


class LoopbackResolver:
    async def __call__(self, host: str, port: int) -> list[str]:
        return ["127.0.0.1"]


async def test_a_slack_name_resolving_to_loopback_is_refused_at_send_time(caplog):
    sink = AlertSink()
    try:
        product = Product(
            1,
            "acme",
            "Acme",
            "en",
            None,
            None,
            None,
            (),
            alert_slack_url=f"http://hooks.example.com:{sink.port}/services/T0/B0/s3cr3t",
        )
        alerts = SecurityAlerts(resolver=LoopbackResolver())  # production: internal refused
        with caplog.at_level(logging.WARNING, logger="auth.alerts"):
            alerts.fire(alerts_module.REVOKED_KEY_USED, product, "live", credential_id=1)
            await alerts.close()
        assert sink.received == []
        assert "alert slack of product=acme host=hooks.example.com refused" in caplog.text
        assert "s3cr3t" not in caplog.text  # a Slack URL is a secret: its host only is logged
    finally:
        sink.close()


class Listed:
    """Recipients given by the test (the console's member list stands behind this protocol)."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)

    async def alert_emails(self, product_id: int) -> list[str]:
        return self.addresses


async def test_an_unreachable_mail_server_does_not_stop_slack(caplog):
    sink = AlertSink()
    try:
        product = Product(
            *(1, "acme", "Acme", "en", None, None, None, ()),
            alert_email=True,
            alert_slack_url=sink.url,
        )
        alerts = SecurityAlerts(
            allow_internal=True,  # the local sink stands in for Slack
            mailer=SmtpMailer(f"smtp://127.0.0.1:{free_port()}"),  # nothing listens there
            recipients=Listed("owner@example.com"),
        )
        with caplog.at_level(logging.WARNING, logger="auth.alerts"):
            alerts.fire(alerts_module.REVOKED_KEY_USED, product, "live", credential_id=1)
            await alerts.close()
        assert len(sink.received) == 1
        assert "alert email of product=acme not sent" in caplog.text
    finally:
        sink.close()
