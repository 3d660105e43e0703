"""Notifications: stored in SQL (the source of truth), then published for live delivery."""
