"""The request bodies of the identity API, declared once (`infra.bodies`): each validates,
answers the localized field errors and writes its JSON Schema, limits named where they live
(`PASSWORD_MAX`, `PRODUCT_SCOPES`, `WORKSPACE_SCOPES`, `MAX_ORIGINS`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from auth.keys import PRODUCT_SCOPES
from auth.org_credentials import MAX_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME_YEARS, WORKSPACE_SCOPES
from auth.passwords import PASSWORD_MAX, PASSWORD_MIN
from auth.product_values import normalize_origin, normalize_url_template, normalize_webhook_url
from auth.webhook_targets import BlockedTarget
from infra.bodies import (
    MISSING,
    Body,
    Errors,
    Field,
    Invalid,
    Shape,
    email,
    integer,
    locale,
    nested,
    raw,
    text,
)
from infra.db import utcnow
from infra.settings import Settings

# Read as text up to this length, so that a long password is answered `password.too_long`.
PASSWORD_READ_MAX = 10_000
TOKEN_MAX = 200  # one-time link tokens and login tokens
REFRESH_TOKEN_MAX = 8192
EXTERNAL_ID_MAX = 255
MAX_ORIGINS = 100


def password(*, description: str | None = None) -> Any:
    schema_note = f"{PASSWORD_MIN} to {PASSWORD_MAX} characters"
    return text(max_length=PASSWORD_READ_MAX, description=description or schema_note)


def check_new_password(errors: Errors, password: str | None, confirmation: str | None) -> None:
    """A new password's length, then its confirmation (one error at a time, as a form shows)."""
    if password is None:
        return
    if len(password) < PASSWORD_MIN:
        errors.add("password", "password.too_short", min=PASSWORD_MIN)
    elif len(password) > PASSWORD_MAX:
        errors.add("password", "password.too_long", max=PASSWORD_MAX)
    elif confirmation is not None and confirmation != password:
        errors.add("password_confirmation", "password.confirmation_mismatch")


class NewPassword(Body):
    password: str = password()
    password_confirmation: str = text(max_length=PASSWORD_READ_MAX)

    def check(self, errors: Errors, settings: Settings | None) -> None:
        check_new_password(errors, self.password, self.password_confirmation)


class Register(NewPassword):
    """A new user and their organization."""

    email: str = email()
    name: str = text(required=False, default="")
    organization_name: str = text()
    locale: str | None = locale()


class Login(Body):
    email: str = email()
    password: str = text(max_length=PASSWORD_MAX)


class SelectOrganization(Body):
    login_token: str = text(max_length=TOKEN_MAX)
    organization_id: int = integer()


class RefreshToken(Body):
    """A refresh token (to rotate, or to log out without an access token)."""

    refresh_token: str = text(max_length=REFRESH_TOKEN_MAX)


class ForgotPassword(Body):
    email: str = email()


class ResetPassword(NewPassword):
    token: str = text(max_length=TOKEN_MAX)


class VerifyEmail(Body):
    token: str = text(max_length=TOKEN_MAX)


class UpdateMe(Body):
    """Only the named fields change."""

    name: str | None = text(required=False, blank=False)
    locale: str | None = locale()


class UpsertUser(Body):
    """Create or update the user known by `external_id`."""

    external_id: str = text(max_length=EXTERNAL_ID_MAX)
    email: str | None = email(required=False)
    name: str | None = text(required=False)
    locale: str | None = locale()


def scopes(allowed: tuple[str, ...], *, required: bool) -> Any:
    """A list of scopes out of `allowed`, answered sorted and without repeats. A required list
    must name at least one; an optional one may be absent or null (no scopes)."""

    def read(value: Any) -> list[str]:
        if not required and (value is None or value is MISSING):
            return []
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise Invalid("field.required" if required else "field.not_list")
        if required and not value:
            raise Invalid("field.required")
        unknown = [s for s in value if s not in allowed]
        if unknown:
            raise Invalid("scope.unknown", scope=unknown[0])
        return sorted(set(value))

    schema: dict[str, Any] = {"type": "array", "items": {"type": "string", "enum": [*allowed]}}
    if required:
        schema["minItems"] = 1
    else:
        schema["type"] = ["array", "null"]
    return Field(read, schema, required=required)


class CreateKey(Body):
    """A restricted key with these scopes."""

    name: str = text()
    scopes: list[str] = scopes(PRODUCT_SCOPES, required=True)


def _future_instant(value: Any) -> datetime | None:
    """A future ISO 8601 instant with a time zone at most `MAX_TOKEN_LIFETIME` ahead, in UTC
    (SQLite keeps no offset: a stored +02:00 would read back as UTC, two hours late)."""
    if value is None or value is MISSING:
        return None
    try:
        when = (
            datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else None
        )
    except ValueError:
        when = None
    now = utcnow()
    if when is None or when.tzinfo is None or when <= now:
        raise Invalid("field.not_datetime")
    # Compared before converting: 9999-12-31T23:59:59-00:01 overflows in UTC.
    if when - now > MAX_TOKEN_LIFETIME:
        raise Invalid("field.too_far_ahead", years=MAX_TOKEN_LIFETIME_YEARS)
    return when.astimezone(UTC)


class WorkspaceTokenSpec(Shape):
    name: str = text()
    scopes: list[str] = scopes(WORKSPACE_SCOPES, required=False)
    expires_at: datetime | None = raw(
        {"type": ["string", "null"], "format": "date-time"},
        read=_future_instant,
        description=f"in the future, at most {MAX_TOKEN_LIFETIME_YEARS} years ahead",
    )


class CreateWorkspaceToken(Body):
    workspace_api_token: WorkspaceTokenSpec = nested(WorkspaceTokenSpec)


class OAuthApplicationSpec(Shape):
    name: str = text()
    scopes: list[str] = scopes(WORKSPACE_SCOPES, required=False)


class RegisterApplication(Body):
    oauth_application: OAuthApplicationSpec = nested(OAuthApplicationSpec)


class TokenRequest(Body):
    """OAuth 2.0 client credentials (RFC 6749 section 4.4). Documented here, read by the
    handler: its errors take RFC 6749's shape (section 5.2), not the hub's."""

    media_type: ClassVar[str] = "application/x-www-form-urlencoded"
    grant_type: str = text()
    scope: str | None = text(required=False)
    client_id: str | None = text(required=False)
    client_secret: str | None = text(required=False)


def _url_template(name: str, value: Any, errors: Errors, *, https_only: bool) -> str | None:
    """As stored ("" or null: the default link), or None when absent or refused."""
    if value is MISSING:
        return None
    if value is None or value == "":
        return ""
    try:
        if not isinstance(value, str):
            raise ValueError(name)
        return normalize_url_template(value, https_only=https_only)  # caps its length
    except ValueError:
        errors.add(name, "field.not_url_template")
        return None


_NULLABLE_STRING = {"type": ["string", "null"]}


class ProductSettings(Body):
    """Only the named settings change; {} changes nothing. Link templates are absolute
    https:// links with `{token}` (http:// too outside production), "" or null for the
    default link."""

    closed: ClassVar[bool] = True
    origins: list[str] | None = raw(
        {"type": "array", "items": {"type": "string"}, "maxItems": MAX_ORIGINS},
        description="exact scheme://host[:port] origins, no wildcards",
    )
    alert_webhook_url: str | None = raw(_NULLABLE_STRING)
    alert_email: bool | None = raw(
        {"type": "boolean"}, description="mail security alerts to the product's owners and admins"
    )
    alert_slack_url: str | None = raw(
        _NULLABLE_STRING, description="a Slack incoming webhook for security alerts (null: none)"
    )
    require_verified_email: bool | None = raw({"type": "boolean"})
    verify_url_template: str | None = raw(_NULLABLE_STRING)
    reset_url_template: str | None = raw(_NULLABLE_STRING)

    def check(self, errors: Errors, settings: Settings | None) -> None:
        assert settings is not None
        self._check_origins(errors)
        for name in ("alert_webhook_url", "alert_slack_url"):
            url = getattr(self, name)
            if url is MISSING:
                continue
            try:
                setattr(
                    self,
                    name,
                    None
                    if url in (None, "")
                    else normalize_webhook_url(str(url), strict=settings.strict_webhooks),
                )
            except BlockedTarget:
                errors.add(name, "webhook.internal_address")
            except ValueError:
                errors.add(name, "field.not_url")
        alert_email = self.alert_email
        if alert_email is MISSING:
            self.alert_email = None
        elif not isinstance(alert_email, bool):
            errors.add("alert_email", "field.not_boolean")
        require = self.require_verified_email
        if require is MISSING:
            self.require_verified_email = None
        elif require is not None and not isinstance(require, bool):
            errors.add("require_verified_email", "field.not_boolean")
        https_only = settings.production
        self.verify_url_template = _url_template(
            "verify_url_template", self.verify_url_template, errors, https_only=https_only
        )
        self.reset_url_template = _url_template(
            "reset_url_template", self.reset_url_template, errors, https_only=https_only
        )

    def _check_origins(self, errors: Errors) -> None:
        origins = self.origins
        self.origins = None  # unchanged, unless a valid list is named
        if origins is MISSING:
            return
        if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
            errors.add("origins", "field.not_list")
        elif len(origins) > MAX_ORIGINS:
            errors.add("origins", "field.too_many", max=MAX_ORIGINS)
        else:
            normalized = []
            for index, origin in enumerate(origins):
                try:
                    normalized.append(normalize_origin(origin))
                except ValueError:
                    errors.add(f"origins[{index}]", "origin.invalid")
            self.origins = normalized

    @property
    def names_webhook(self) -> bool:
        return "alert_webhook_url" in self.raw

    @property
    def names_slack(self) -> bool:
        return "alert_slack_url" in self.raw
