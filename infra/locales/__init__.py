"""The hub's one locale catalog: the languages it speaks and every text it says in them.

Split by audience only so no file grows past a screenful of scrolling: `answers` (API error
and status messages), `fields` (field errors inside `validation.failed`), `texts` (emails,
relative times). The codes are disjoint; `MESSAGES` is their union, and `infra.i18n` reads it.
"""

from __future__ import annotations

from infra.locales import answers, fields, texts

SUPPORTED_LOCALES = ("en", "cs", "de")
DEFAULT_LOCALE = "en"

MESSAGES: dict[str, dict[str, str]] = {**answers.MESSAGES, **fields.MESSAGES, **texts.MESSAGES}
