"""ActionCable channel classes. A new channel is one small class added to `CHANNELS`."""

from channels.base import Channel
from channels.notifications import NotificationsChannel

CHANNELS: dict[str, type[Channel]] = {cls.name: cls for cls in (NotificationsChannel,)}

__all__ = ["CHANNELS", "Channel", "NotificationsChannel"]
