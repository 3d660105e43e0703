"""The ground floor: settings, SQL, errors, i18n, logs, metrics, the broker and strict JSON.

Nothing here imports a domain (`auth`, `notifications`) or the wiring (`hub`, `channels`).
"""
