"""WebSocket routes of the conversations app: the embed widget's run streams."""

from django.urls import path

from conversations.consumers import WidgetRunConsumer

websocket_urlpatterns = [
    path("ws/embed/<str:embed_id>/runs/<uuid:run_id>/", WidgetRunConsumer.as_asgi()),
]
