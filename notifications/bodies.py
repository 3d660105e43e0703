"""The request bodies and query strings of the notifications API, declared once
(`infra.bodies`), limits named where they are enforced (`MAX_RECIPIENTS`, `MAX_TITLE`,
`PAGE_MAX`, `SUPPORTED_LOCALES`)."""

from __future__ import annotations

from typing import Any

from infra import jsonsafe
from infra.bodies import Body, Errors, Query, query_flag, query_integer, query_locale, raw, text
from infra.settings import Settings
from notifications.publish import MAX_RECIPIENTS

RECIPIENT_KEYS = ("user_id", "email", "external_id")
RECIPIENT_NAME_MAX = 320  # an email or an external id
MAX_TITLE = 200
MAX_MESSAGE = 5000
MAX_URL = 2000
MAX_TYPE = 64
MAX_DATA_BYTES = 16 * 1024
IDEMPOTENCY_KEY_MAX = 255
PAGE_DEFAULT, PAGE_MAX = 50, 200
CURSOR_MAX = 2**63 - 1  # notification ids are BIGINT

_RECIPIENT = {
    "type": "object",
    "description": "exactly one of user_id, email, external_id",
    "properties": {
        "user_id": {"type": "integer"},
        "email": {"type": "string", "maxLength": RECIPIENT_NAME_MAX},
        "external_id": {"type": "string", "maxLength": RECIPIENT_NAME_MAX},
    },
    "minProperties": 1,
    "maxProperties": 1,
}


def _valid_name(key: str, value: Any) -> bool:
    if key == "user_id":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, str) and 0 < len(value) <= RECIPIENT_NAME_MAX


class SendNotification(Body):
    """One recipient (`user_id`, `email` or `external_id`) or a `recipients` list, and the
    content. Errors about a recipient name its place: `recipients[0]` for the single form."""

    recipients: list[dict[str, Any]] | None = raw(
        {"type": "array", "items": _RECIPIENT, "minItems": 1, "maxItems": MAX_RECIPIENTS},
        absent=None,
    )
    user_id: int | None = raw({"type": "integer"}, absent=None)
    email: str | None = raw({"type": "string", "maxLength": RECIPIENT_NAME_MAX}, absent=None)
    external_id: str | None = raw({"type": "string", "maxLength": RECIPIENT_NAME_MAX}, absent=None)
    title: str = text(max_length=MAX_TITLE)
    message: str = text(required=False, max_length=MAX_MESSAGE, default="")
    url: str | None = text(required=False, max_length=MAX_URL)
    type: str | None = text(required=False, max_length=MAX_TYPE)
    data: dict[str, Any] | None = raw(
        {"type": ["object", "null"]},
        absent=None,
        description=f"at most {MAX_DATA_BYTES} bytes as JSON",
    )
    idempotency_key: str | None = text(
        required=False,
        blank=False,
        max_length=IDEMPOTENCY_KEY_MAX,
        wire="Idempotency-Key",
        location="header",
    )

    def check(self, errors: Errors, settings: Settings | None) -> None:
        self.names = self._recipient_names(errors)
        data = self.data
        if data is not None and not isinstance(data, dict):
            errors.add("data", "field.not_object")
        elif data is not None and len(jsonsafe.dumps(data).encode()) > MAX_DATA_BYTES:
            errors.add("data", "field.too_long", max=MAX_DATA_BYTES)

    def _recipient_names(self, errors: Errors) -> list[tuple[str, Any]]:
        """The recipients named, as (key, value) pairs; errors recorded for the others."""
        body = self.raw
        if "recipients" not in body:
            named = [k for k in RECIPIENT_KEYS if body.get(k) is not None]
            if len(named) != 1:
                errors.add("recipients", "field.one_recipient_key")
                return []
            entries: Any = [{named[0]: body[named[0]]}]
        else:
            entries = body["recipients"]
            if not isinstance(entries, list) or not entries:
                errors.add("recipients", "field.required")
                return []
            if len(entries) > MAX_RECIPIENTS:
                errors.add("recipients", "field.too_many", max=MAX_RECIPIENTS)
                return []
        names: list[tuple[str, Any]] = []
        for index, entry in enumerate(entries):
            keys = [
                k for k in RECIPIENT_KEYS if isinstance(entry, dict) and entry.get(k) is not None
            ]
            if len(keys) != 1 or len(entry) != 1 or not _valid_name(keys[0], entry[keys[0]]):
                errors.add(f"recipients[{index}]", "field.one_recipient_key")
                continue
            names.append((keys[0], entry[keys[0]]))
        return names

    @property
    def content(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "message": self.message,
            "url": self.url,
            "type": self.type,
            "data": self.data,
        }


class Page(Query):
    """A page of notifications, newest first."""

    limit: int = query_integer(default=PAGE_DEFAULT, maximum=PAGE_MAX)
    cursor: int | None = query_integer(
        default=None, maximum=CURSOR_MAX, description="`next_cursor` of the previous page"
    )
    unread: bool = query_flag()
    locale: str | None = query_locale()
