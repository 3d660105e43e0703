"""notification-hub: realtime notifications with headless auth."""
