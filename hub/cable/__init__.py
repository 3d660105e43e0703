"""The cable: the ActionCable WebSocket endpoint and this process's stream registry."""
