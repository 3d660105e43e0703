"""Translating codes and choosing a request's locale, over the catalog in `infra.locales`.

Messages are keyed by the same stable dotted codes the API returns, so a client can switch on
`code` and show `message`. A missing translation falls back to English, never to the code.
"""

from __future__ import annotations

from collections.abc import Mapping

from infra.locales import DEFAULT_LOCALE, MESSAGES, SUPPORTED_LOCALES

__all__ = [
    "DEFAULT_LOCALE",
    "MESSAGES",
    "SUPPORTED_LOCALES",
    "negotiate_locale",
    "normalize_locale",
    "parse_accept_language",
    "translate",
]


def translate(code: str, locale: str, **params: object) -> str:
    """The message for `code` in `locale` (English if untranslated), with `params` filled in."""
    entry = MESSAGES.get(code) or MESSAGES["server.error"]
    template = entry.get(locale) or entry[DEFAULT_LOCALE]
    return template.format(**params) if params else template


def normalize_locale(value: str | None) -> str | None:
    """'cs-CZ' → 'cs'; None when the language is not one we speak."""
    if not value:
        return None
    language = value.strip().replace("_", "-").split("-", 1)[0].lower()
    return language if language in SUPPORTED_LOCALES else None


def parse_accept_language(header: str) -> list[str]:
    """Supported languages from an Accept-Language header, best first (q-values honoured)."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        language = normalize_locale(tag)
        if language and quality > 0:
            ranked.append((-quality, position, language))
    return [language for _, _, language in sorted(ranked)]


def negotiate_locale(
    query: Mapping[str, str], headers: Mapping[str, str], product_default: str | None = None
) -> str:
    """`?locale=`, then Accept-Language, then the product's default locale, then English."""
    explicit = normalize_locale(query.get("locale"))
    if explicit:
        return explicit
    preferred = parse_accept_language(headers.get("accept-language", ""))
    if preferred:
        return preferred[0]
    return normalize_locale(product_default) or DEFAULT_LOCALE
