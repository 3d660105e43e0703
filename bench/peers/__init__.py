"""The peer servers the hub is measured against (each one runs as its own uvicorn process).

The peer directories (`django_channels/`, `socketio/`) are deliberately not packages: each
server is started with its own directory as the app dir, and `bench/peers/` on PYTHONPATH so
that `peerkit` is importable. A `socketio/` *package* here would shadow python-socketio.
"""
