"""The peer servers the hub is measured against (each one runs as its own uvicorn process).

The peer directories (`ceiling/`, `django_channels/`, `socketio/`, and `trivial/`, the
endpoint of the publisher's self-check) are deliberately not packages: each
server is started with its own directory as the app dir, and `bench/peers/` on PYTHONPATH so
that `peerkit` is importable. A `socketio/` *package* here would shadow python-socketio.
"""
