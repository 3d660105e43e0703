"""ActionCable channel classes. A new channel is one small class, registered by name in
`hub.app.create_app` with the services it needs."""

from channels.base import Channel, ChannelFactory
from channels.notifications import NotificationsChannel

__all__ = ["Channel", "ChannelFactory", "NotificationsChannel"]
