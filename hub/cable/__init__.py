"""The cable: the ActionCable WebSocket server of one hub process.

`protocol` (every frame, command, disconnect reason and control message), `endpoint` (the
socket's life), `host` (one socket's commands), `registry` (streams ↔ sockets), `node`
(sessions, control messages, recovery, timers), `connection` (and `eager`, its inline
writes), `leases`, `bucket`.
"""
