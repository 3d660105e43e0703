"""Headless auth: products, users, organizations, sessions, tokens and keys."""
