"""The checks of single JSON fields, each answering one localized error code (`Invalid`).

The field readers of the declared bodies (`infra.bodies`) are built on these, so every body
answers the same code for the same input.
"""

from __future__ import annotations

from typing import Any

from email_validator import EmailNotValidError, validate_email

from infra import jsonsafe
from infra.errors import FieldError
from infra.i18n import normalize_locale


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()  # a field the request does not name at all (not even as null)

# JSON numbers a browser reads exactly (Number.MAX_SAFE_INTEGER is 2**53 - 1).
SAFE_INTEGER = 2**53


class Invalid(Exception):
    """Raised by a field reader: the field's one error."""

    def __init__(self, code: str, **params: object) -> None:
        super().__init__(code)
        self.error = FieldError(code, **params)


class Errors(dict[str, FieldError]):
    """The field errors of one request, first error per field wins."""

    def add(self, name: str, code: str, **params: object) -> None:
        self.setdefault(name, FieldError(code, **params))


def check_text(value: Any, *, required: bool, max_length: int, blank: bool = True) -> str | None:
    """A string field: None when absent (or null) and optional, else the string; `Invalid`
    for absent-but-required, blank-but-required, not a string, too long, or NUL/surrogates."""
    if (
        value is None
        or value is MISSING
        or (required and isinstance(value, str) and not value.strip())
    ):
        if required:
            raise Invalid("field.required")
        return None
    if not isinstance(value, str):
        raise Invalid("field.not_string")
    if not blank and not value.strip():
        raise Invalid("field.required")  # optional, but when sent it must say something
    if len(value) > max_length:
        raise Invalid("field.too_long", max=max_length)
    if jsonsafe.has_forbidden_characters(value):
        # `read_json` refuses these already; a body built elsewhere must not store them.
        raise Invalid("field.invalid_characters")
    return value


def check_integer(value: Any) -> int:
    if value is None or value is MISSING:
        raise Invalid("field.required")
    # JSON numbers only; booleans are ints in Python and strings would hide client bugs.
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > SAFE_INTEGER:
        raise Invalid("field.not_integer")
    return value


EMAIL_MAX = 320


def check_email(value: Any, *, required: bool = True) -> str | None:
    text = check_text(value, required=required, max_length=EMAIL_MAX)
    if text is None:
        return None
    try:
        return validate_email(text.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        raise Invalid("email.invalid") from None


LOCALE_MAX = 16


def check_locale(value: Any) -> str | None:
    text = check_text(value, required=False, max_length=LOCALE_MAX)
    if text is None:
        return None
    locale = normalize_locale(text)
    if locale is None:
        raise Invalid("field.unknown_locale")
    return locale
