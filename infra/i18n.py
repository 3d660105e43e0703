"""Message catalogs (en, cs, de) and the choice of a request's locale.

Messages are keyed by the same stable dotted codes the API returns, so a client can switch on
`code` and show `message`. A missing translation falls back to English, never to the code.
"""

from __future__ import annotations

from collections.abc import Mapping

SUPPORTED_LOCALES = ("en", "cs", "de")
DEFAULT_LOCALE = "en"

MESSAGES: dict[str, dict[str, str]] = {
    "auth.unauthorized": {
        "en": "Invalid or missing credentials.",
        "cs": "Neplatné nebo chybějící přihlašovací údaje.",
        "de": "Ungültige oder fehlende Anmeldedaten.",
    },
    "auth.forbidden": {
        "en": "You are not allowed to do this.",
        "cs": "K této akci nemáte oprávnění.",
        "de": "Sie sind dazu nicht berechtigt.",
    },
    "auth.invalid_credentials": {
        "en": "The email or password is incorrect.",
        "cs": "E-mail nebo heslo není správné.",
        "de": "E-Mail-Adresse oder Passwort ist falsch.",
    },
    "auth.invalid_login_token": {
        "en": "The login token is invalid, expired or already used. Log in again.",
        "cs": "Přihlašovací token je neplatný, vypršel nebo už byl použit. Přihlaste se znovu.",
        "de": "Das Anmelde-Token ist ungültig, abgelaufen oder bereits verwendet. "
        "Bitte erneut anmelden.",
    },
    "auth.invalid_reset_token": {
        "en": "The password reset link is invalid, expired or already used.",
        "cs": "Odkaz pro obnovení hesla je neplatný, vypršel nebo už byl použit.",
        "de": "Der Link zum Zurücksetzen des Passworts ist ungültig, abgelaufen oder "
        "bereits verwendet.",
    },
    "auth.invalid_verification_token": {
        "en": "The email verification link is invalid, expired or already used.",
        "cs": "Odkaz pro ověření e-mailu je neplatný, vypršel nebo už byl použit.",
        "de": "Der Link zur Bestätigung der E-Mail-Adresse ist ungültig, abgelaufen oder "
        "bereits verwendet.",
    },
    "auth.email_unverified": {
        "en": "Confirm your email address first: open the link we sent you, or ask for a new one.",
        "cs": "Nejprve potvrďte svou e-mailovou adresu: otevřete zaslaný odkaz, nebo si "
        "vyžádejte nový.",
        "de": "Bestätigen Sie zuerst Ihre E-Mail-Adresse: Öffnen Sie den gesendeten Link oder "
        "fordern Sie einen neuen an.",
    },
    "auth.email_already_verified": {
        "en": "This email address is already confirmed.",
        "cs": "Tato e-mailová adresa je již potvrzena.",
        "de": "Diese E-Mail-Adresse ist bereits bestätigt.",
    },
    "auth.email_unconfirmed": {
        "en": "An account with this email address is waiting for its owner to confirm it. We "
        "have sent the address a link to set a password.",
        "cs": "Účet s touto e-mailovou adresou čeká na potvrzení svým vlastníkem. Na adresu "
        "jsme poslali odkaz pro nastavení hesla.",
        "de": "Ein Konto mit dieser E-Mail-Adresse wartet auf die Bestätigung durch seinen "
        "Inhaber. Wir haben an die Adresse einen Link zum Festlegen eines Passworts gesendet.",
    },
    "auth.key_in_browser": {
        "en": "Secret and restricted keys belong on a server, never in a browser. The request "
        "was refused and the product's security contact alerted.",
        "cs": "Tajné a omezené klíče patří na server, nikdy do prohlížeče. Požadavek byl "
        "odmítnut a bezpečnostní kontakt produktu upozorněn.",
        "de": "Geheime und eingeschränkte Schlüssel gehören auf einen Server, nie in einen "
        "Browser. Die Anfrage wurde abgelehnt und der Sicherheitskontakt informiert.",
    },
    "auth.key_compromised": {
        "en": "This key was sent over plain HTTP and has been revoked as compromised. "
        "Use HTTPS and a new key.",
        "cs": "Tento klíč byl odeslán přes nešifrované HTTP a byl zneplatněn jako prozrazený. "
        "Použijte HTTPS a nový klíč.",
        "de": "Dieser Schlüssel wurde über unverschlüsseltes HTTP gesendet und als "
        "kompromittiert widerrufen. Verwenden Sie HTTPS und einen neuen Schlüssel.",
    },
    "key.not_found": {
        "en": "No such key in this product environment.",
        "cs": "Takový klíč v tomto prostředí produktu neexistuje.",
        "de": "Diesen Schlüssel gibt es in dieser Produktumgebung nicht.",
    },
    "key.revoked": {
        "en": "This key is revoked already.",
        "cs": "Tento klíč už byl zneplatněn.",
        "de": "Dieser Schlüssel ist bereits widerrufen.",
    },
    "key.rotate_instead": {
        "en": "Publishable and secret keys cannot be deleted, only rotated.",
        "cs": "Veřejné a tajné klíče nelze smazat, pouze vyměnit.",
        "de": "Öffentliche und geheime Schlüssel können nicht gelöscht, nur rotiert werden.",
    },
    "key.too_many": {
        "en": "This product environment has as many active restricted keys as allowed.",
        "cs": "Toto prostředí produktu už má nejvyšší povolený počet omezených klíčů.",
        "de": "Diese Produktumgebung hat bereits die erlaubte Anzahl eingeschränkter Schlüssel.",
    },
    "workspace_token.not_found": {
        "en": "No such workspace API token in this organization.",
        "cs": "Takový API token v této organizaci neexistuje.",
        "de": "Dieses API-Token gibt es in dieser Organisation nicht.",
    },
    "oauth_application.not_found": {
        "en": "No such OAuth application in this organization.",
        "cs": "Taková OAuth aplikace v této organizaci neexistuje.",
        "de": "Diese OAuth-Anwendung gibt es in dieser Organisation nicht.",
    },
    "organization.not_found": {
        "en": "You are not a member of that organization.",
        "cs": "Nejste členem této organizace.",
        "de": "Sie sind kein Mitglied dieser Organisation.",
    },
    "user.not_found": {
        "en": "No such user in this product environment.",
        "cs": "Takový uživatel v tomto prostředí produktu neexistuje.",
        "de": "Diesen Benutzer gibt es in dieser Produktumgebung nicht.",
    },
    "notification.not_found": {
        "en": "No such notification.",
        "cs": "Takové oznámení neexistuje.",
        "de": "Diese Benachrichtigung gibt es nicht.",
    },
    "notification.unknown_recipients": {
        "en": "Some recipients are not users of this product environment; nothing was sent.",
        "cs": "Někteří příjemci nejsou uživateli tohoto prostředí produktu; nic nebylo odesláno.",
        "de": "Einige Empfänger sind keine Benutzer dieser Produktumgebung; nichts wurde gesendet.",
    },
    "idempotency.conflict": {
        "en": "This Idempotency-Key was used with a different request.",
        "cs": "Tento Idempotency-Key byl použit s jiným požadavkem.",
        "de": "Dieser Idempotency-Key wurde mit einer anderen Anfrage verwendet.",
    },
    "subscription.inactive": {
        "en": "The organization's subscription is not active.",
        "cs": "Předplatné organizace není aktivní.",
        "de": "Das Abonnement der Organisation ist nicht aktiv.",
    },
    "product.not_found": {
        "en": "Unknown product.",
        "cs": "Neznámý produkt.",
        "de": "Unbekanntes Produkt.",
    },
    "product.required": {
        "en": "Name the product with the X-Product-Slug header.",
        "cs": "Uveďte produkt v hlavičce X-Product-Slug.",
        "de": "Geben Sie das Produkt im Header X-Product-Slug an.",
    },
    "origin.forbidden": {
        "en": "This origin is not allowed for the product.",
        "cs": "Tento původ (origin) není pro produkt povolen.",
        "de": "Dieser Origin ist für das Produkt nicht erlaubt.",
    },
    "rate_limited": {
        "en": "Too many requests. Try again later.",
        "cs": "Příliš mnoho požadavků. Zkuste to později.",
        "de": "Zu viele Anfragen. Versuchen Sie es später erneut.",
    },
    "validation.failed": {
        "en": "Some fields are invalid.",
        "cs": "Některá pole jsou neplatná.",
        "de": "Einige Felder sind ungültig.",
    },
    "request.malformed_json": {
        "en": "The request body is not valid JSON.",
        "cs": "Tělo požadavku není platný JSON.",
        "de": "Der Anfragetext ist kein gültiges JSON.",
    },
    "request.invalid_characters": {
        "en": "The request contains a NUL character or an unpaired surrogate.",
        "cs": "Požadavek obsahuje znak NUL nebo nepárový surogát.",
        "de": "Die Anfrage enthält ein NUL-Zeichen oder ein ungepaartes Surrogat.",
    },
    "request.unsupported_media_type": {
        "en": "Send the request body as application/json.",
        "cs": "Tělo požadavku posílejte jako application/json.",
        "de": "Senden Sie den Anfragetext als application/json.",
    },
    "request.invalid_body": {
        "en": "The request body must be a JSON object.",
        "cs": "Tělo požadavku musí být objekt JSON.",
        "de": "Der Anfragetext muss ein JSON-Objekt sein.",
    },
    "request.too_large": {
        "en": "The request body is too large.",
        "cs": "Tělo požadavku je příliš velké.",
        "de": "Der Anfragetext ist zu groß.",
    },
    "request.not_found": {
        "en": "There is nothing at this address.",
        "cs": "Na této adrese nic není.",
        "de": "Unter dieser Adresse gibt es nichts.",
    },
    "request.method_not_allowed": {
        "en": "This method is not allowed here.",
        "cs": "Tato metoda zde není povolena.",
        "de": "Diese Methode ist hier nicht erlaubt.",
    },
    "server.error": {
        "en": "Something went wrong on our side.",
        "cs": "Na naší straně se něco pokazilo.",
        "de": "Auf unserer Seite ist ein Fehler aufgetreten.",
    },
    "password_reset.requested": {
        "en": "If an account exists for that email, a reset link is on its way.",
        "cs": "Pokud k tomuto e-mailu existuje účet, odkaz pro obnovení hesla je na cestě.",
        "de": "Falls ein Konto zu dieser E-Mail-Adresse existiert, ist ein Link zum "
        "Zurücksetzen unterwegs.",
    },
    "password_reset.done": {
        "en": "Your password has been changed. Log in with the new password.",
        "cs": "Heslo bylo změněno. Přihlaste se novým heslem.",
        "de": "Ihr Passwort wurde geändert. Melden Sie sich mit dem neuen Passwort an.",
    },
    "email_verification.sent": {
        "en": "A new confirmation link is on its way to your email address.",
        "cs": "Nový potvrzovací odkaz je na cestě na vaši e-mailovou adresu.",
        "de": "Ein neuer Bestätigungslink ist unterwegs zu Ihrer E-Mail-Adresse.",
    },
    "email_verification.done": {
        "en": "Your email address is confirmed.",
        "cs": "Vaše e-mailová adresa je potvrzena.",
        "de": "Ihre E-Mail-Adresse ist bestätigt.",
    },
    # Field-level validation messages (the `details` of validation.failed).
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
