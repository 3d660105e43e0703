"""Request bodies, query strings and request headers declared once, as types.

A `Shape` subclass lists its fields (`text()`, `email()`, `integer()`, …); the one class
validates a decoded body, answers every field error at once in the client's language (422
`validation.failed` with `details`, as `Fields` always did) and writes its own JSON Schema for
the OpenAPI document, limits included, so a limit is named once (`max_length=MAX_TITLE`) and
never copied into the document. Cross-field rules go in `check`, which also sees the settings
(some rules, such as https-only links, depend on the environment).

Why not msgspec: its validation stops at the first error and reports it as English text,
while the hub answers every invalid field at once with a localized code per field
(`field.too_long` with its `max`), and its decoder cannot refuse NUL or unpaired surrogates.
`infra.jsonsafe` decodes (strictly), these fields validate (`infra.checks`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Self

from infra.checks import (
    EMAIL_MAX,
    LOCALE_MAX,
    MISSING,
    SAFE_INTEGER,
    Errors,
    Invalid,
    check_email,
    check_integer,
    check_locale,
    check_text,
)
from infra.errors import validation_failed
from infra.i18n import SUPPORTED_LOCALES
from infra.settings import Settings

__all__ = ["MISSING", "Body", "Errors", "Field", "Invalid", "Query", "Shape"]

# -- fields ------------------------------------------------------------------------------


class Field:
    """One declared field: `read` turns the raw value (MISSING when absent) into the typed
    value or raises `Invalid`; `schema` is its JSON Schema; `wire` is its name on the wire
    (a header's `Idempotency-Key`); `location` is "body", "query" or "header"."""

    def __init__(
        self,
        read: Callable[[Any], Any],
        schema: Mapping[str, Any],
        *,
        required: bool = False,
        wire: str | None = None,
        location: str | None = None,
        description: str | None = None,
    ) -> None:
        self.read = read
        self.schema = dict(schema)
        if description:
            self.schema["description"] = description
        self.required = required
        self.wire = wire
        self.location = location
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.wire = self.wire or name


def text(
    *,
    required: bool = True,
    max_length: int = 200,
    blank: bool = True,
    default: str | None = None,
    description: str | None = None,
    wire: str | None = None,
    location: str | None = None,
) -> Any:
    """A string of at most `max_length` characters (required ones may not be blank; with
    `blank=False` an optional one may be absent but not blank)."""

    def read(value: Any) -> str | None:
        found = check_text(value, required=required, max_length=max_length, blank=blank)
        return default if found is None or (default is not None and not found) else found

    schema: dict[str, Any] = {"type": "string", "maxLength": max_length}
    if required or not blank:
        schema["minLength"] = 1
    if not required:
        schema = {**schema, "type": ["string", "null"]}
    return Field(
        read, schema, required=required, description=description, wire=wire, location=location
    )


def integer(*, description: str | None = None) -> Any:
    """A required JSON integer within the range a browser reads exactly."""
    schema = {"type": "integer", "minimum": -SAFE_INTEGER, "maximum": SAFE_INTEGER}
    return Field(check_integer, schema, required=True, description=description)


def email(*, required: bool = True) -> Any:
    """An email address, answered normalized and lowercased."""
    schema = {"type": "string" if required else ["string", "null"], "maxLength": EMAIL_MAX}

    def read(value: Any) -> str | None:
        if not required and (value is None or value is MISSING):
            return None
        return check_email(value)  # sent, so it must be an address ("" is `field.required`)

    return Field(read, schema, required=required)


def locale() -> Any:
    """An optional language tag ('cs-CZ' reads as 'cs'); one the hub does not speak is a 422."""
    described = ", ".join(SUPPORTED_LOCALES)
    return Field(
        check_locale,
        {"type": ["string", "null"], "maxLength": LOCALE_MAX},
        description=f"a language tag; one of {described} (a region is ignored)",
    )


def raw(
    schema: Mapping[str, Any],
    *,
    required: bool = False,
    read: Callable[[Any], Any] | None = None,
    absent: Any = MISSING,
    description: str | None = None,
    location: str | None = None,
) -> Any:
    """A field whose value `check` (or the given `read`) validates. Absent, it reads as
    `absent`: MISSING by default, so a PATCH can tell an absent field from a null one."""
    return Field(
        read or (lambda v: absent if v is MISSING else v),
        schema,
        required=required,
        description=description,
        location=location,
    )


def nested(shape: type[Shape], *, description: str | None = None) -> Any:
    """An object holding another shape (`{"workspace_api_token": {…}}`); its field errors are
    reported under its own field names, as the wrapped bodies always answered."""

    def read(value: Any) -> Shape:
        if not isinstance(value, Mapping):
            raise Invalid("field.not_object")
        return shape.parse(value, errors=_NestedErrors())

    return Field(read, shape.json_schema(), required=True, description=description)


# -- shapes ------------------------------------------------------------------------------


class Shape:
    """Declared fields, validated together. Subclasses: `Body` (JSON), `Query`, and any
    nested object. An instance carries the typed values as attributes and `raw`, the
    decoded input as sent (a fingerprint or a PATCH needs it)."""

    fields: ClassVar[dict[str, Field]] = {}
    closed: ClassVar[bool] = False  # True: an unknown field is a 422 `field.unknown`
    location: ClassVar[str] = "body"
    raw: Mapping[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[str, Field] = {}
        for base in reversed(cls.__mro__):
            found.update({k: v for k, v in vars(base).items() if isinstance(v, Field)})
        cls.fields = found
        for field in found.values():
            field.location = field.location or cls.location

    @classmethod
    def parse(
        cls,
        data: Mapping[str, Any],
        settings: Settings | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        errors: Errors | None = None,
    ) -> Self:
        """The shape of `data`, or 422 `validation.failed` listing every invalid field."""
        errors = Errors() if errors is None else errors
        shape = object.__new__(cls)
        shape.raw = data
        if cls.closed:
            names = {f.wire for f in cls.fields.values() if f.location == cls.location}
            for name in sorted(set(data) - names)[:1]:  # one is enough to fix the client
                errors.add(name, "field.unknown")
        for name, field in cls.fields.items():
            source = headers if field.location == "header" else data
            value = MISSING if source is None else source.get(field.wire, MISSING)
            try:
                setattr(shape, name, field.read(value))
            except Invalid as exc:
                setattr(shape, name, None)
                errors.setdefault(field.wire or name, exc.error)
            except _NestedInvalid as exc:  # a nested shape: its own fields' errors
                setattr(shape, name, None)
                for inner, error in exc.errors.items():
                    errors.setdefault(inner, error)
        shape.check(errors, settings)
        if errors and not isinstance(errors, _NestedErrors):
            raise validation_failed(errors)
        if errors:
            raise _NestedInvalid(errors)
        return shape

    def check(self, errors: Errors, settings: Settings | None) -> None:
        """Cross-field rules; record problems with `errors.add` (runs even when some fields
        are invalid: those read as None)."""

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The JSON Schema of the body fields (query and header fields are parameters)."""
        own = {f.wire: f for f in cls.fields.values() if f.location == cls.location}
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {name: f.schema for name, f in own.items()},
        }
        required = [name for name, f in own.items() if f.required]
        if required:
            schema["required"] = required
        if cls.closed:
            schema["additionalProperties"] = False
        if cls.__doc__:
            schema["description"] = " ".join(cls.__doc__.split())
        return schema

    @classmethod
    def parameters(cls) -> list[dict[str, Any]]:
        """OpenAPI parameters of the query and header fields."""
        return [
            {
                "name": f.wire,
                "in": f.location,
                "required": f.required,
                "schema": {k: v for k, v in f.schema.items() if k != "description"},
                **({"description": f.schema["description"]} if "description" in f.schema else {}),
            }
            for f in cls.fields.values()
            if f.location in ("query", "header")
        ]


class _NestedErrors(Errors):
    """Errors of a nested shape, handed up to the enclosing one instead of raised."""


class _NestedInvalid(Exception):
    def __init__(self, errors: Errors) -> None:
        super().__init__("nested")
        self.errors = errors


class Body(Shape):
    """A JSON request body (`media_type` other than JSON: documented, read by the handler)."""

    media_type: ClassVar[str] = "application/json"


class Query(Shape):
    """A query string's parameters; every value arrives as a string."""

    location: ClassVar[str] = "query"


def query_integer(*, default: int | None, maximum: int, description: str | None = None) -> Any:
    """A positive decimal integer parameter at most `maximum` (absent or empty: `default`)."""

    def read(value: Any) -> int | None:
        if value is MISSING or value is None or value == "":
            return default
        # ASCII digits only: "²".isdigit() is true but int("²") raises; 20 digits exceed any max.
        if not (value.isascii() and value.isdigit() and len(value) <= 20):
            raise Invalid("field.not_integer")
        if not 0 < int(value) <= maximum:
            raise Invalid("field.not_integer")
        return int(value)

    schema: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": maximum}
    if default is not None:
        schema["default"] = default
    return Field(read, schema, description=description)


def query_flag(
    *, truthy: Iterable[str] = ("true", "1", "yes"), falsy: Iterable[str] = ("false", "0", "no")
) -> Any:
    """A boolean parameter: one of `truthy` or `falsy` in any case (absent: false); any other
    value is a 422 `field.not_boolean`, so a typo (`?unread=ture`) is not read as false."""
    accepted = {**dict.fromkeys(truthy, True), **dict.fromkeys(falsy, False)}

    def read(value: Any) -> bool:
        if value is MISSING:
            return False
        flag = accepted.get(value.lower()) if isinstance(value, str) else None
        if flag is None:
            raise Invalid("field.not_boolean")
        return flag

    return Field(
        read,
        {"type": "string", "enum": [*accepted], "default": "false"},
        description=f"{' / '.join(accepted)}, in any case",
    )


def query_locale() -> Any:
    """`?locale=`: negotiated with Accept-Language by the handler, never refused."""
    spoken = ", ".join(SUPPORTED_LOCALES)
    return Field(
        lambda v: None if v is MISSING else v,
        {"type": "string"},
        description=f"a language tag for the messages (the hub speaks {spoken}; a region is "
        "ignored); an unsupported one falls back to Accept-Language, then the product's "
        "default locale, then en",
    )
