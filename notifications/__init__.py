"""Notifications: storage, publishing, reading and marking read, and their HTTP routes."""
