"""What a product's settings may hold: the checks every door applies (the server API's bodies,
the CLI, the console's forms, extension manifests) before anything is stored.

Apart from `products.py` (reading and writing products) so that each rule is written once and a
door that only validates does not import the product store.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from auth.webhook_targets import check_host_and_port, check_literal
from infra.names import ORIGIN


def normalize_origin(origin: str) -> str:
    """'https://App.Acme.com/' → 'https://app.acme.com'; ValueError if it is not an origin."""
    match = ORIGIN.fullmatch(origin)
    if not match:
        raise ValueError(f"not an origin (scheme://host[:port]): {origin!r}")
    scheme, host, port = match.group(1), match.group(2).lower(), match.group(3) or ""
    if (scheme, port) in (("http", ":80"), ("https", ":443")):
        port = ""
    return f"{scheme}://{host}{port}"


def check_mail_header_text(what: str, value: str | None) -> None:
    """A product's name and sender go into mail headers (From): a line break there fails
    every mail of the product, so control characters are refused when they are saved."""
    if value is not None and any(not c.isprintable() for c in value):
        raise ValueError(f"{what}: printable characters only (no line breaks or tabs)")


def normalize_webhook_url(url: str, *, strict: bool = False) -> str:
    """An absolute http(s) URL without credentials; ValueError otherwise.

    `strict` (production, unless HUB_WEBHOOKS_ALLOW_INTERNAL): it must be https, and a host
    that is an address (in any spelling) or `localhost` must be public, else `BlockedTarget`.
    A DNS name is judged by the addresses it resolves to when an alert is sent (auth.alerts).
    """
    if any(c.isspace() or not c.isprintable() for c in url.strip()):
        # urlsplit keeps them, and the send would fail on every alert, silently.
        raise ValueError("a URL without spaces or control characters")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        raise ValueError("an absolute http:// or https:// URL without user:password")
    if len(url) > 2000:
        raise ValueError("at most 2000 characters")
    check_host_and_port(url.strip())  # a host DNS or an IP literal can name, a port 1–65535
    if strict:
        if parts.scheme != "https":
            raise ValueError("https only")
        check_literal(url)
    return url.strip()


def normalize_url_template(template: str, *, https_only: bool = False) -> str:
    """A link template for mails (verify, reset): an absolute http(s) URL without
    credentials whose path or query holds `{token}`; ValueError otherwise.

    Mail clients open these links, so `javascript:`, `data:` and scheme-relative `//host`
    templates are refused, as is `{token}` in the host (it would leak into DNS lookups).
    `https_only` (production): https:// only. The hub never fetches these links, so unlike a
    webhook a private host is no risk to the hub and is allowed.
    """
    scheme = "https://" if https_only else "http(s)://"
    refused = ValueError(
        f"a link template must be an absolute {scheme} URL with {{token}}"
        " in its path or query, without spaces or user:password"
    )
    if "{token}" not in template or any(c.isspace() or not c.isprintable() for c in template):
        raise refused
    try:
        parts = urlsplit(template)
        normalize_webhook_url(template)  # same rules: absolute http(s), a host, no user:password
    except ValueError:
        raise refused from None
    if "{token}" in parts.netloc or (https_only and parts.scheme != "https"):
        raise refused
    return template
