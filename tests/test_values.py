"""The small values every layer shares, tested in-process: the one id parser, the one locale
catalog, the user scope and its stream name."""

from __future__ import annotations

import string

import pytest

from infra.errors import HubError
from infra.i18n import MESSAGES, SUPPORTED_LOCALES, translate
from infra.ids import MAX_BIGINT_ID, MAX_ROW_ID, parse_id
from notifications.scope import UserScope


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", 1), (7, 7), ("007", 7), (str(MAX_BIGINT_ID), MAX_BIGINT_ID), ("0" * 40 + "5", 5)],
)
def test_ids_parse(value, expected):
    assert parse_id(value) == expected


@pytest.mark.parametrize(
    "value",
    [None, "", "abc", "12abc", " 1", "+1", "-1", "1_0", "²", "١", 1.0, True, False, [], {}, -1, 0,
     "0", str(MAX_BIGINT_ID + 1), MAX_BIGINT_ID + 1, "9" * 5000],
)  # fmt: skip
def test_anything_else_is_not_an_id(value):
    with pytest.raises(HubError) as caught:
        parse_id(value)
    assert (caught.value.status, caught.value.code) == (422, "validation.failed")


def test_zero_range_and_error_are_the_callers():
    assert parse_id("0", allow_zero=True) == 0 and parse_id(0, allow_zero=True) == 0
    assert parse_id(str(MAX_ROW_ID), maximum=MAX_ROW_ID) == MAX_ROW_ID
    with pytest.raises(HubError) as caught:
        parse_id(MAX_ROW_ID + 1, maximum=MAX_ROW_ID, error=lambda: HubError(404, "user.not_found"))
    assert (caught.value.status, caught.value.code) == (404, "user.not_found")


def test_every_text_speaks_every_language_with_the_same_placeholders():
    for code, entry in MESSAGES.items():
        assert set(entry) == set(SUPPORTED_LOCALES), code
        names = {
            frozenset(name for _, name, _, _ in string.Formatter().parse(text) if name)
            for text in entry.values()
        }
        assert len(names) == 1, code


def test_translate_falls_back_to_english_never_to_the_code():
    assert translate("time.just_now", "cs") == "právě teď"
    assert translate("time.just_now", "fr") == "just now"
    assert translate("no.such.code", "de") == MESSAGES["server.error"]["de"]
    subject = translate("mail.verify_email.subject", "de", product="Kiket")
    assert subject == "Bestätigen Sie Ihre E-Mail-Adresse für Kiket"


def test_a_user_scope_names_its_stream():
    scope = UserScope(3, "live", 42)
    assert scope.stream == "notifications:3:live:42"
    assert scope == UserScope(3, "live", 42) and hash(scope) == hash(UserScope(3, "live", 42))
    with pytest.raises(AttributeError):
        scope.user_id = 1  # type: ignore[misc]
