"""Fan-out benchmark: notification-hub against the ceiling (hand-rolled Starlette +
Redis), python-socketio and Django Channels.

`python -m bench --help` (or `bench/run`) runs it; see bench/README.md.
"""
