"""Alert webhooks cannot reach inside the hub's network (SSRF).

A product's secret-key holder chooses the URL the hub POSTs its alerts to. In production that
URL may not name the hub's own network in any spelling (refused at PATCH time), a DNS name is
judged by every address it resolves to when an alert is sent, and the request then goes to the
address that was checked (resolved once: no DNS rebinding between check and connect), with
the URL's Host header and TLS name.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import socket
import ssl
from pathlib import Path

import httpx
import pytest

from auth import alert_posts
from auth import alerts as alerts_module
from auth.alerts import SecurityAlerts
from auth.products import Product
from auth.webhook_targets import (
    BlockedTarget,
    check_host_and_port,
    check_literal,
    is_public,
    resolve_target,
)
from infra.metrics import REGISTRY
from tests.support import AlertSink, bearer, create_product, production_hub
from tests.test_operations import metric

# Every one of these is this machine, the hub's private network, or not unicast at all.
INTERNAL_HOSTS = [
    "127.0.0.1",
    "127.1",  # short dotted (inet_aton)
    "2130706433",  # one decimal number
    "0x7f000001",  # hex
    "0177.0.0.1",  # octal
    "0x7f.1",
    "017700000001",
    "0",  # 0.0.0.0, which Linux connects to as the local host
    "10.1",
    "0xa9.254.169.254",  # the cloud metadata endpoint, hex first byte
    "169.254.169.254",
    "192.168.0.1",
    "172.16.0.1",
    "100.64.0.1",  # carrier-grade NAT
    "224.0.0.1",  # multicast
    "255.255.255.255",
    "１２７.０.０.１",  # full-width digits: IDNA folds them, getaddrinfo reads 127.0.0.1
    "127。0。0。1",  # ideographic full stops are dots to IDNA
    "ｌｏｃａｌｈｏｓｔ",
    "localhost",
    "localhost.",
    "api.localhost",
    "[::1]",
    "[::]",
    "[fd00::1]",  # unique local
    "[fe80::1]",  # link-local
    "[ff02::1]",  # multicast
    "[::ffff:127.0.0.1]",  # IPv4-mapped
    "[::ffff:7f00:1]",
    "[::127.0.0.1]",  # IPv4-compatible
    "[64:ff9b::a9fe:a9fe]",  # NAT64 of 169.254.169.254
    "[64:ff9b:1::a00:1]",  # NAT64 local-use prefix (RFC 8215), here 10.0.0.1
    "[::ffff:0:7f00:1]",  # IPv4-translated (SIIT) 127.0.0.1
    "[fec0::1]",  # site-local (deprecated, never global)
    "[2002:7f00:1::1]",  # 6to4 of 127.0.0.1
    "[2002:a00:1::1]",  # 6to4 of 10.0.0.1
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]",  # Teredo, client 127.0.0.1
]
PUBLIC_HOSTS = ["93.184.216.34", "[2606:2800:220:1:248:1893:25c8:1946]", "[::ffff:8.8.8.8]"]


# -- the address judge -------------------------------------------------------------------


@pytest.mark.parametrize("host", INTERNAL_HOSTS)
def test_every_spelling_of_an_internal_address_is_refused(host):
    with pytest.raises(BlockedTarget):
        check_literal(f"https://{host}/alerts")


@pytest.mark.parametrize("host", [*PUBLIC_HOSTS, "hooks.example.com"])
def test_public_addresses_and_names_pass_the_literal_check(host):
    check_literal(f"https://{host}/alerts")  # a name is judged later, by what it resolves to


# Hosts no resolver would look up and ports no connection can use: refused when saved.
NOT_REACHABLE_URLS = [
    "https://exa mple.com/h",
    "https://%31%32%37.0.0.1/h",  # percent-escapes are not part of a host name
    "https://hooks..example.com/h",
    "https://-hooks.example.com/h",
    "https://hooks.example.com:0/h",
    "https://hooks.example.com:65536/h",
    "https://[fe80::zz]/h",
]


@pytest.mark.parametrize("url", NOT_REACHABLE_URLS)
def test_a_host_or_port_nothing_can_reach_is_not_a_url(url):
    with pytest.raises(ValueError):
        check_host_and_port(url)


@pytest.mark.parametrize(
    "host",
    [*INTERNAL_HOSTS, *PUBLIC_HOSTS, "hooks.example.com", "bücher.example", "a_b.example.com."],
)
def test_names_and_every_address_spelling_are_hosts(host):
    check_host_and_port(f"https://{host}:65535/alerts")  # whether allowed is another question


def test_public_ipv6_embedding_a_public_ipv4_is_public():
    assert is_public(ipaddress.ip_address("64:ff9b::808:808"))  # NAT64 of 8.8.8.8
    assert not is_public(ipaddress.ip_address("64:ff9b::7f00:1"))  # NAT64 of 127.0.0.1


# The DNS cannot be controlled from here, so these stand in for it with an injected resolver.


class Resolver:
    """Answers in turn from `answers` (the last one repeats), counting the questions."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return self.answers[min(len(self.asked), len(self.answers)) - 1]


async def test_a_name_is_refused_if_any_answer_is_internal():
    for answers in (["127.0.0.1"], ["93.184.216.34", "10.0.0.7"], ["::ffff:169.254.169.254"]):
        with pytest.raises(BlockedTarget):
            await resolve_target("https://hooks.example.com/a", resolver=Resolver(answers))
    target = await resolve_target(
        "https://hooks.example.com:8443/a", resolver=Resolver(["93.184.216.34"])
    )
    assert [str(a) for a in target.addresses] == ["93.184.216.34"]
    assert (target.host, target.port) == ("hooks.example.com", 8443)


# -- sending: judged at send time, connected to the address that was checked -------------


def _product(url: str) -> Product:
    return Product(1, "acme", "Acme", "en", None, None, None, (), alert_webhook_url=url)


async def _fire(alerts: SecurityAlerts, url: str) -> None:
    alerts.fire(alerts_module.REVOKED_KEY_USED, _product(url), "live", key_id=1)
    await alerts.close()  # waits for the send to finish (or give up)


def _refused_count() -> float:
    return REGISTRY.get_sample_value("hub_alert_webhooks_refused_total") or 0.0


async def test_a_name_resolving_to_loopback_is_refused_at_send_time(caplog):
    sink = AlertSink()
    try:
        resolver = Resolver(["127.0.0.1"])
        before = _refused_count()
        with caplog.at_level(logging.WARNING, logger="auth.alerts"):
            await _fire(
                SecurityAlerts(resolver=resolver),
                f"http://hooks.example.com:{sink.port}/hooks/s3cr3t-path-token",
            )
        assert sink.received == []
        assert resolver.asked == ["hooks.example.com"]
        assert _refused_count() == before + 1
        assert "alert webhook of product=acme refused" in caplog.text
        assert "s3cr3t" not in caplog.text  # webhook paths often hold a secret: never logged
    finally:
        sink.close()


async def test_the_connection_goes_to_the_checked_address_not_a_second_answer():
    # Self-hosted mode (internal targets allowed) so real local sockets can stand in for a
    # public receiver: the first answer is 127.0.0.2, a rebinding second answer 127.0.0.1.
    first = AlertSink(host="127.0.0.2")
    rebound = AlertSink(host="127.0.0.1", port=first.port)
    try:
        resolver = Resolver(["127.0.0.2", "127.0.0.3"], ["127.0.0.1"])
        await _fire(
            SecurityAlerts(resolver=resolver, allow_internal=True),
            f"http://hooks.example.com:{first.port}/alerts",
        )
        assert resolver.asked == ["hooks.example.com"]  # asked once, never again by httpx
        assert len(first.received) == 1 and rebound.received == []
        assert first.hosts == [f"hooks.example.com:{first.port}"]  # the URL's Host header
    finally:
        first.close()
        rebound.close()


async def test_a_redirect_is_not_followed(caplog):
    inside = AlertSink()
    redirecting = AlertSink(redirect_to=inside.url)
    try:
        with caplog.at_level(logging.WARNING, logger="auth.alerts"):
            await _fire(SecurityAlerts(allow_internal=True), redirecting.url)
        assert len(redirecting.received) == 1 and inside.received == []
        assert "answered 307" in caplog.text
    finally:
        inside.close()
        redirecting.close()


def _certificates(directory: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throwaway CA and a certificate for `name`: (server context, client context)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject: str, key, issuer: str, issuer_key, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = certificate("test CA", ca_key, "test CA", ca_key, True)
    leaf = certificate(name, leaf_key, "test CA", ca_key, False)
    pem = serialization.Encoding.PEM
    (directory / "leaf.pem").write_bytes(
        leaf.public_bytes(pem)
        + leaf_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(directory / "leaf.pem")
    client = ssl.create_default_context(cadata=ca.public_bytes(pem).decode())
    return server, client


async def test_tls_names_and_verifies_the_url_host_while_dialling_the_checked_ip(tmp_path):
    server_tls, client_tls = _certificates(tmp_path, "hooks.test")
    names: list[str | None] = []
    server_tls.sni_callback = lambda sock, name, ctx: names.append(name)
    sink = AlertSink(tls=server_tls)
    try:
        resolver = Resolver(["127.0.0.1"])
        await _fire(
            SecurityAlerts(resolver=resolver, allow_internal=True, verify=client_tls),
            f"https://hooks.test:{sink.port}/alerts",
        )
        assert len(sink.received) == 1
        assert names == ["hooks.test"] and sink.hosts == [f"hooks.test:{sink.port}"]
        # The same IP under a name its certificate does not cover: verification fails.
        await _fire(
            SecurityAlerts(resolver=resolver, allow_internal=True, verify=client_tls),
            f"https://other.test:{sink.port}/alerts",
        )
        assert len(sink.received) == 1
    finally:
        sink.close()


async def test_a_send_is_bounded_in_time(monkeypatch, caplog):
    monkeypatch.setattr(alert_posts, "POST_TIMEOUT", 0.3)

    async def stuck(host: str, port: int) -> list[str]:
        await asyncio.sleep(3600)
        return []

    loop = asyncio.get_running_loop()
    started = loop.time()
    with caplog.at_level(logging.WARNING, logger="auth.alerts"):
        await _fire(SecurityAlerts(resolver=stuck), "https://hooks.example.com/alerts")
    assert loop.time() - started < 1.5  # not frozen
    assert "unreachable: TimeoutError" in caplog.text


# -- a real production hub -----------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def prod_hub(request, tmp_path_factory):
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    with production_hub(
        tmp_path_factory.mktemp("ssrf-hub"), database_url, HUB_METRICS_TOKEN="scrape-token"
    ) as server:
        yield server


async def test_production_refuses_every_internal_spelling_and_changes_nothing(prod_hub):
    product = create_product(prod_hub)
    headers = {**bearer(product["sk_live"]), "X-Forwarded-Proto": "https"}
    async with httpx.AsyncClient(base_url=prod_hub.url) as client:
        kept = "https://hooks.example.com/alerts"
        ok = await client.patch(
            "/api/v1/product", headers=headers, json={"alert_webhook_url": kept}
        )
        assert ok.status_code == 200, ok.text
        for host in INTERNAL_HOSTS:
            refused = await client.patch(
                "/api/v1/product",
                headers=headers,
                json={"alert_webhook_url": f"https://{host}:8443/alerts"},
            )
            assert refused.status_code == 422, host
            error = refused.json()["error"]
            assert error["details"]["alert_webhook_url"]["code"] == "webhook.internal_address"
            assert "inside the hub's network" in error["details"]["alert_webhook_url"]["message"]
        czech = await client.patch(
            "/api/v1/product?locale=cs",
            headers=headers,
            json={"alert_webhook_url": "https://0x7f000001/alerts"},
        )
        assert "sítě hubu" in czech.json()["error"]["details"]["alert_webhook_url"]["message"]
        for bad in (
            "https://hooks.example.com:99999/a",
            "https://[::1/a",
            "https://0x7f000001:x/",
            *NOT_REACHABLE_URLS,
        ):
            answer = await client.patch(
                "/api/v1/product", headers=headers, json={"alert_webhook_url": bad}
            )
            assert answer.status_code == 422, bad
            assert answer.json()["error"]["details"]["alert_webhook_url"]["code"] == "field.not_url"
        stored = await client.get("/api/v1/product", headers=headers)
        assert stored.json()["product"]["alert_webhook_url"] == kept


async def refused_total(client: httpx.AsyncClient) -> float:
    scraped = await client.get("/metrics", headers=bearer("scrape-token"))
    return metric(scraped.text, "hub_alert_webhooks_refused_total")


async def test_production_refuses_at_send_time_a_name_that_resolves_inside(prod_hub):
    # This machine's own name, resolved by the real system resolver: it must be internal here.
    name = socket.gethostname()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, 443)}
    except OSError:
        pytest.skip(f"{name} does not resolve here")
    if any(is_public(ipaddress.ip_address(a)) for a in addresses):
        pytest.skip(f"{name} resolves to a public address here")
    product = create_product(prod_hub)
    sk = product["sk_live"]
    https = {**bearer(sk), "X-Forwarded-Proto": "https"}
    async with httpx.AsyncClient(base_url=prod_hub.url) as client:
        before = await refused_total(client)
        url = f"https://{name}:{prod_hub.port}/alerts"  # a DNS name: accepted, judged later
        ok = await client.patch("/api/v1/product", headers=https, json={"alert_webhook_url": url})
        assert ok.status_code == 200, ok.text
        # A secret key over plain HTTP raises an alert (and revokes the key).
        assert (await client.get("/api/v1/keys", headers=bearer(sk))).status_code == 401
        for _ in range(50):
            after = await refused_total(client)
            if after > before:
                break
            await asyncio.sleep(0.1)
        assert after == before + 1
    assert f"alert webhook of product={product['slug']} refused" in prod_hub.logs()


async def test_a_key_replayed_from_ever_new_origins_is_alerted_once():
    # Found by an outside review: the Origin was part of the deduplication, so a leaked key
    # sent with 100 made-up origins raised 100 alerts (and 100 outbound posts).
    sink = AlertSink()
    try:
        alerts = SecurityAlerts(allow_internal=True)
        for i in range(100):
            alerts.fire(
                alerts_module.KEY_IN_BROWSER,
                _product(sink.url),
                "live",
                client_ip=f"203.0.113.{i % 250}",
                origin=f"https://flood{i}.example",
                credential="product_keys",
                credential_id=2,
                prefix="sk_live_AbC123",
            )
        await alerts.close()
        assert len(sink.received) == 1
        assert sink.received[0]["details"]["origin"] == "https://flood0.example"
    finally:
        sink.close()
