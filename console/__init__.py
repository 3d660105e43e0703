"""The operator console: operator accounts, cookie sessions, roles, pages and the audit log."""
