"""The catalog's answers: the `message` of every error code and status the API returns.

Keyed by the stable dotted codes of `infra.errors.HubError`, so a client can switch on `code`
and show `message`.
"""

from __future__ import annotations

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
    "extension.not_found": {
        "en": "No such installed extension in this organization.",
        "cs": "Takové nainstalované rozšíření v této organizaci neexistuje.",
        "de": "Diese installierte Erweiterung gibt es in dieser Organisation nicht.",
    },
    "extension.too_many": {
        "en": "This organization has as many installed extensions as allowed.",
        "cs": "Tato organizace už má nejvyšší povolený počet nainstalovaných rozšíření.",
        "de": "Diese Organisation hat bereits die erlaubte Anzahl installierter Erweiterungen.",
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
    "notification.not_stored": {
        "en": "The notification could not be stored; nothing was sent. Send it again.",
        "cs": "Oznámení se nepodařilo uložit; nic nebylo odesláno. Odešlete ho znovu.",
        "de": "Die Benachrichtigung konnte nicht gespeichert werden; nichts wurde gesendet. "
        "Bitte erneut senden.",
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
    "server.unavailable": {
        "en": "The service is not ready; try again shortly.",
        "cs": "Služba není připravena; zkuste to za chvíli znovu.",
        "de": "Der Dienst ist nicht bereit; versuchen Sie es gleich noch einmal.",
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
}
