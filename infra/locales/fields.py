"""The catalog's field errors: the messages of `validation.failed`'s `details`, one per
field code (`field.*`, and the domain checks a field can fail: email, password, origin…).
"""

from __future__ import annotations

MESSAGES: dict[str, dict[str, str]] = {
    "field.required": {
        "en": "This field is required.",
        "cs": "Toto pole je povinné.",
        "de": "Dieses Feld ist erforderlich.",
    },
    "field.invalid_characters": {
        "en": "Must not contain NUL characters or unpaired surrogates.",
        "cs": "Nesmí obsahovat znaky NUL ani nepárové surogáty.",
        "de": "Darf keine NUL-Zeichen oder ungepaarten Surrogate enthalten.",
    },
    "field.not_string": {
        "en": "This field must be a string.",
        "cs": "Toto pole musí být text.",
        "de": "Dieses Feld muss eine Zeichenkette sein.",
    },
    "field.not_boolean": {
        "en": "Must be true or false.",
        "cs": "Musí být true nebo false.",
        "de": "Muss true oder false sein.",
    },
    "field.not_url_template": {
        "en": "Must be an absolute https:// link (http:// outside production) of at most 2000 "
        "characters with {token} in its path or query.",
        "cs": "Musí to být absolutní odkaz https:// (mimo produkci i http://) o nejvýše 2000 "
        "znacích s {token} v cestě nebo dotazu.",
        "de": "Muss ein absoluter https://-Link (außerhalb der Produktion auch http://) mit "
        "höchstens 2000 Zeichen sein, mit {token} im Pfad oder in der Abfrage.",
    },
    "field.unknown": {
        "en": "Unknown field.",
        "cs": "Neznámé pole.",
        "de": "Unbekanntes Feld.",
    },
    "field.not_list": {
        "en": "This field must be a list of strings.",
        "cs": "Toto pole musí být seznam textů.",
        "de": "Dieses Feld muss eine Liste von Zeichenketten sein.",
    },
    "field.not_url": {
        "en": "This field must be an absolute http:// or https:// URL (in production: https, "
        "and not an address inside the hub's network).",
        "cs": "Toto pole musí být absolutní URL http:// nebo https:// (v produkci: https a ne "
        "adresa uvnitř sítě hubu).",
        "de": "Dieses Feld muss eine absolute http://- oder https://-URL sein (in Produktion: "
        "https und keine Adresse im Netz des Hubs).",
    },
    "webhook.internal_address": {
        "en": "This webhook URL points inside the hub's network (loopback, private or "
        "link-local address, in any spelling). Use a public address or host name.",
        "cs": "Tato URL webhooku míří do sítě hubu (loopback, privátní nebo link-local adresa "
        "v jakémkoli zápisu). Použijte veřejnou adresu nebo název hostitele.",
        "de": "Diese Webhook-URL zeigt in das Netz des Hubs (Loopback-, private oder "
        "Link-Local-Adresse in beliebiger Schreibweise). Verwenden Sie eine öffentliche "
        "Adresse oder einen Hostnamen.",
    },
    "field.not_datetime": {
        "en": "This field must be a future ISO 8601 time with a time zone.",
        "cs": "Toto pole musí být budoucí čas ve formátu ISO 8601 s časovou zónou.",
        "de": "Dieses Feld muss ein zukünftiger ISO-8601-Zeitpunkt mit Zeitzone sein.",
    },
    "field.too_far_ahead": {
        "en": "This time may be at most {years} years ahead.",
        "cs": "Tento čas smí být nejvýše {years} let dopředu.",
        "de": "Dieser Zeitpunkt darf höchstens {years} Jahre in der Zukunft liegen.",
    },
    "origin.invalid": {
        "en": "Not an origin: use scheme://host[:port], no path and no wildcards.",
        "cs": "Toto není origin: použijte scheme://host[:port], bez cesty a bez zástupných znaků.",
        "de": "Kein Origin: verwenden Sie scheme://host[:port], ohne Pfad und Platzhalter.",
    },
    "scope.unknown": {
        "en": "Unknown scope: {scope}.",
        "cs": "Neznámý rozsah oprávnění: {scope}.",
        "de": "Unbekannter Geltungsbereich: {scope}.",
    },
    "scope.duplicate": {
        "en": "This scope is listed twice: {scope}.",
        "cs": "Tento rozsah oprávnění je uveden dvakrát: {scope}.",
        "de": "Dieser Geltungsbereich ist doppelt angegeben: {scope}.",
    },
    "scope.beyond_installer": {
        "en": "You cannot grant scopes you do not hold: {scopes}.",
        "cs": "Nemůžete udělit rozsahy oprávnění, které sami nemáte: {scopes}.",
        "de": "Sie können keine Geltungsbereiche vergeben, die Sie selbst nicht haben: {scopes}.",
    },
    "field.too_many": {
        "en": "At most {max} items are allowed.",
        "cs": "Povoleno je nejvýše {max} položek.",
        "de": "Höchstens {max} Einträge sind erlaubt.",
    },
    "field.not_object": {
        "en": "This field must be a JSON object.",
        "cs": "Toto pole musí být objekt JSON.",
        "de": "Dieses Feld muss ein JSON-Objekt sein.",
    },
    "field.one_recipient_key": {
        "en": "Name each recipient by exactly one of user_id, email or external_id.",
        "cs": "Každého příjemce uveďte právě jedním z user_id, email nebo external_id.",
        "de": "Benennen Sie jeden Empfänger mit genau einem von user_id, email oder external_id.",
    },
    "field.not_integer": {
        "en": "This field must be a whole number.",
        "cs": "Toto pole musí být celé číslo.",
        "de": "Dieses Feld muss eine ganze Zahl sein.",
    },
    "field.too_long": {
        "en": "This field is too long (at most {max} characters).",
        "cs": "Toto pole je příliš dlouhé (nejvýše {max} znaků).",
        "de": "Dieses Feld ist zu lang (höchstens {max} Zeichen).",
    },
    "field.unknown_locale": {
        "en": "Supported locales are en, cs and de.",
        "cs": "Podporované jazyky jsou en, cs a de.",
        "de": "Unterstützte Sprachen sind en, cs und de.",
    },
    "email.invalid": {
        "en": "This is not a valid email address.",
        "cs": "Toto není platná e-mailová adresa.",
        "de": "Dies ist keine gültige E-Mail-Adresse.",
    },
    "password.too_short": {
        "en": "The password must have at least {min} characters.",
        "cs": "Heslo musí mít alespoň {min} znaků.",
        "de": "Das Passwort muss mindestens {min} Zeichen haben.",
    },
    "password.too_long": {
        "en": "The password must have at most {max} characters.",
        "cs": "Heslo může mít nejvýše {max} znaků.",
        "de": "Das Passwort darf höchstens {max} Zeichen haben.",
    },
    "password.confirmation_mismatch": {
        "en": "The password confirmation does not match.",
        "cs": "Potvrzení hesla se neshoduje.",
        "de": "Die Passwortbestätigung stimmt nicht überein.",
    },
}
