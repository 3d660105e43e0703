"""Fan-out benchmark: notification-hub against Django Channels and python-socketio.

`python -m bench --help` (or `bench/run`) runs it; see bench/README.md.
"""
