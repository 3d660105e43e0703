"""An extension's manifest as the install request carries it: `{"extension": {"name", "scopes",
"webhook_url"}}`, declared once with `infra.bodies` like the other bodies (`auth/bodies.py`,
kept apart so neither grows past a screenful).

Stricter than a workspace token's body, because a manifest is a program's declaration rather
than a person's form: the name is printable text, the scopes are a non-empty list with no
repeats, and the webhook URL follows the alert webhook's rules (https and no internal target
in production, `auth/webhook_targets.py`).
"""

from __future__ import annotations

from typing import Any

from auth.extensions import MANIFEST_NAME_MAX
from auth.org_credentials import WORKSPACE_SCOPES
from auth.product_values import normalize_webhook_url
from auth.webhook_targets import BlockedTarget
from infra.bodies import MISSING, Body, Errors, Field, Invalid, Shape, nested, raw
from infra.checks import check_text
from infra.settings import Settings


def printable_name(max_length: int) -> Any:
    """A required name of printable characters (no control characters, no line breaks)."""

    def read(value: Any) -> str:
        found = check_text(value, required=True, max_length=max_length)
        if found is None or not found.isprintable():
            raise Invalid("field.invalid_characters")
        return found

    return Field(read, {"type": "string", "minLength": 1, "maxLength": max_length}, required=True)


def manifest_scopes() -> Any:
    """A non-empty list of organization scopes, each named once (a repeat is a mistake in the
    manifest, not something to tidy up silently)."""

    def read(value: Any) -> list[str]:
        if value is None or value is MISSING or value == []:
            raise Invalid("field.required")
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise Invalid("field.not_list")
        unknown = [s for s in value if s not in WORKSPACE_SCOPES]
        if unknown:
            raise Invalid("scope.unknown", scope=unknown[0][:100])
        repeated = [s for i, s in enumerate(value) if s in value[:i]]
        if repeated:
            raise Invalid("scope.duplicate", scope=repeated[0])
        return sorted(value)

    schema = {
        "type": "array",
        "items": {"type": "string", "enum": [*WORKSPACE_SCOPES]},
        "minItems": 1,
        "uniqueItems": True,
    }
    return Field(read, schema, required=True)


class ExtensionManifest(Shape):
    name: str = printable_name(MANIFEST_NAME_MAX)
    scopes: list[str] = manifest_scopes()
    webhook_url: str | None = raw(
        {"type": ["string", "null"]},
        description="an absolute http(s) URL; https and not internal in production",
    )


class InstallExtension(Body):
    """An extension's manifest: its key gets exactly these scopes, never more than the
    installer holds."""

    extension: ExtensionManifest = nested(ExtensionManifest)

    def check(self, errors: Errors, settings: Settings | None) -> None:
        # Here rather than in the manifest: a nested shape is not given the settings.
        assert settings is not None
        manifest = self.extension
        if manifest is None:
            return
        webhook = manifest.webhook_url
        if webhook is MISSING or webhook is None or webhook == "":
            manifest.webhook_url = None
            return
        try:
            if not isinstance(webhook, str):
                raise ValueError("webhook_url")
            manifest.webhook_url = normalize_webhook_url(webhook, strict=settings.strict_webhooks)
        except BlockedTarget:
            errors.add("webhook_url", "webhook.internal_address")
        except ValueError:
            errors.add("webhook_url", "field.not_url")
