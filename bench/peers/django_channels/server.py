"""Django Channels peer: one group per user on channels_redis' RedisPubSubChannelLayer.

A minimal Django project with its settings in code and no database:

- `ws://…/ws/?token=<token>`: a consumer that checks the bench's HMAC token, joins the group
  `user_<id>`, answers `{"type": "subscribed"}`, and forwards every group message to the socket;
- `POST /publish` `{"items": [{"user_id": 1, "payload": {...}}, ...]}`: the server-side path,
  one `channel_layer.group_send` per item;
- `GET /healthz`.

Run by the bench as one uvicorn process: `uvicorn server:app --app-dir bench/peers/django_channels`.
"""

from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import parse_qs

import django
from django.conf import settings
from peerkit import parse_batch, settings_from_env, verify

SECRET, REDIS_URL, REDIS_PREFIX = settings_from_env()

settings.configure(
    DEBUG=False,
    SECRET_KEY=secrets.token_urlsafe(32),
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["channels"],
    MIDDLEWARE=[],
    DATABASES={},
    USE_TZ=True,
    CHANNEL_LAYERS={
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": REDIS_PREFIX},
        }
    },
)
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpRequest, HttpResponse, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

SUBSCRIBED = json.dumps({"type": "subscribed"})


def group_of(user_id: int) -> str:
    return f"user_{user_id}"


class NotificationConsumer(AsyncWebsocketConsumer):
    """One user's socket: authenticated by token, subscribed to that user's group."""

    group: str | None = None

    async def connect(self) -> None:
        query = parse_qs(self.scope["query_string"].decode())
        user_id = verify(SECRET, (query.get("token") or [None])[0])
        if user_id is None:
            await self.close(code=4401)
            return
        self.group = group_of(user_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send(text_data=SUBSCRIBED)

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def notify(self, event: dict[str, Any]) -> None:
        """A group message of type "notify": its text goes to the socket as it is."""
        await self.send(text_data=event["text"])


async def publish(request: HttpRequest) -> HttpResponse:
    """Django Channels' server-side path: one `group_send` per notification."""
    if request.method != "POST":
        return JsonResponse({"error": "POST only"}, status=405)
    layer = get_channel_layer()
    items = parse_batch(request.body)
    for user_id, payload in items:
        text = json.dumps({"type": "notification", "notification": payload})
        await layer.group_send(group_of(user_id), {"type": "notify", "text": text})
    return JsonResponse({"count": len(items)})


async def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


urlpatterns = [path("publish", publish), path("healthz", healthz)]

app = ProtocolTypeRouter(
    {
        "http": get_asgi_application(),
        "websocket": URLRouter([path("ws/", NotificationConsumer.as_asgi())]),
    }
)
