"""The catalog's texts beyond API answers: the emails the hub sends and the words of a
notification's relative time.

Mail templates take `{name}`, `{product}`, `{link}` and `{minutes}`; the codes are
`mail.<kind>.subject` and `mail.<kind>.body`, `<kind>` being the mail's X-Hub-Mail value.
"""

from __future__ import annotations

MESSAGES: dict[str, dict[str, str]] = {
    "mail.password_reset.subject": {
        "en": "Reset your {product} password",
        "cs": "Obnovení hesla k účtu {product}",
        "de": "Setzen Sie Ihr {product}-Passwort zurück",
    },
    "mail.password_reset.body": {
        "en": (
            "Hello {name},\n\nsomeone asked to reset the password of your {product} account.\n"
            "Open this link within {minutes} minutes to choose a new one:\n\n{link}\n\n"
            "If it was not you, ignore this email; your password stays as it is.\n\n{product}"
        ),
        "cs": (
            "Dobrý den {name},\n\nněkdo požádal o obnovení hesla k vašemu účtu {product}.\n"
            "Nové heslo si zvolíte do {minutes} minut na tomto odkazu:\n\n{link}\n\n"
            "Pokud jste to nebyli vy, e-mail ignorujte; heslo zůstává beze změny.\n\n{product}"
        ),
        "de": (
            "Hallo {name},\n\njemand möchte das Passwort Ihres {product}-Kontos zurücksetzen.\n"
            "Öffnen Sie innerhalb von {minutes} Minuten diesen Link, um ein neues zu wählen:\n\n"
            "{link}\n\nWaren Sie das nicht, ignorieren Sie diese E-Mail; Ihr Passwort bleibt "
            "unverändert.\n\n{product}"
        ),
    },
    "mail.verify_email.subject": {
        "en": "Confirm your email for {product}",
        "cs": "Potvrďte svůj e-mail pro {product}",
        "de": "Bestätigen Sie Ihre E-Mail-Adresse für {product}",
    },
    "mail.verify_email.body": {
        "en": (
            "Hello {name},\n\nplease confirm that this is your email address for {product}.\n"
            "Open this link within {minutes} minutes:\n\n{link}\n\n"
            "If you did not sign up, do not open the link and ignore this email.\n\n{product}"
        ),
        "cs": (
            "Dobrý den {name},\n\npotvrďte prosím, že je to vaše e-mailová adresa pro {product}.\n"
            "Otevřete tento odkaz do {minutes} minut:\n\n{link}\n\n"
            "Pokud jste se neregistrovali, odkaz neotevírejte a e-mail ignorujte.\n\n{product}"
        ),
        "de": (
            "Hallo {name},\n\nbitte bestätigen Sie, dass dies Ihre E-Mail-Adresse für {product} "
            "ist.\nÖffnen Sie diesen Link innerhalb von {minutes} Minuten:\n\n{link}\n\n"
            "Haben Sie sich nicht registriert, öffnen Sie den Link nicht und ignorieren Sie diese "
            "E-Mail.\n\n{product}"
        ),
    },
    # Security alerts (auth.alert_content): by email to a product's owners and admins, and
    # to Slack. `{facts}` is the alert's lines (`alert.facts`), never a secret.
    "alert.subject": {
        "en": "[{product}] Security alert: {title}",
        "cs": "[{product}] Bezpečnostní upozornění: {title}",
        "de": "[{product}] Sicherheitswarnung: {title}",
    },
    "alert.facts": {
        "en": (
            "Product: {product}\nEvent: {event}\nEnvironment: {env}\nCredential: {credential}"
            "\nClient IP: {client}\nTime: {at}"
        ),
        "cs": (
            "Produkt: {product}\nUdálost: {event}\nProstředí: {env}\nPřístupový klíč: "
            "{credential}\nIP klienta: {client}\nČas: {at}"
        ),
        "de": (
            "Produkt: {product}\nEreignis: {event}\nUmgebung: {env}\nZugangsschlüssel: "
            "{credential}\nClient-IP: {client}\nZeit: {at}"
        ),
    },
    "alert.body": {
        "en": (
            "{title}.\n\n{facts}\n\nThe hub refused the request. Check where this credential"
            " is used and rotate it if it may have leaked.\n\nYou receive this as an owner or"
            " admin of {product}; the product's alert settings choose who is told."
        ),
        "cs": (
            "{title}.\n\n{facts}\n\nHub požadavek odmítl. Zkontrolujte, kde se tento klíč"
            " používá, a pokud mohl uniknout, vyměňte ho.\n\nTento e-mail dostáváte jako"
            " vlastník nebo správce produktu {product}; komu se upozornění posílají, určuje"
            " nastavení produktu."
        ),
        "de": (
            "{title}.\n\n{facts}\n\nDer Hub hat die Anfrage abgelehnt. Prüfen Sie, wo dieser"
            " Schlüssel verwendet wird, und tauschen Sie ihn aus, falls er bekannt geworden"
            " sein könnte.\n\nSie erhalten diese E-Mail als Eigentümer oder Administrator von"
            " {product}; wer benachrichtigt wird, legen die Einstellungen des Produkts fest."
        ),
    },
    "alert.event.revoked_key_used": {
        "en": "A revoked credential was used",
        "cs": "Byl použit zneplatněný klíč",
        "de": "Ein widerrufener Schlüssel wurde verwendet",
    },
    "alert.event.key_compromised": {
        "en": "A server credential was sent over plain HTTP and has been revoked",
        "cs": "Serverový klíč byl odeslán přes nešifrované HTTP a byl zneplatněn",
        "de": "Ein Server-Schlüssel wurde über unverschlüsseltes HTTP gesendet und widerrufen",
    },
    "alert.event.secret_key_in_browser": {
        "en": "A server credential was sent from a browser",
        "cs": "Serverový klíč byl odeslán z prohlížeče",
        "de": "Ein Server-Schlüssel wurde aus einem Browser gesendet",
    },
    "alert.event.failed_key_lookups": {
        "en": "A burst of unknown credentials from one address",
        "cs": "Série neznámých klíčů z jedné adresy",
        "de": "Eine Häufung unbekannter Schlüssel von einer Adresse",
    },
    # Within a few seconds, a notification's time reads "just now" (babel would say "in 0
    # seconds" or "1 second ago").
    "time.just_now": {
        "en": "just now",
        "cs": "právě teď",
        "de": "gerade eben",
    },
}
