"""WebSocket routes, gathered from the apps named in ``settings.STUDIO_WEBSOCKET_ROUTES``.

Like ``include("app.urls")`` for HTTP: the project names modules, it does not import app code.
"""

from __future__ import annotations

from importlib import import_module

from django.conf import settings

websocket_urlpatterns = [
    pattern
    for module in settings.STUDIO_WEBSOCKET_ROUTES
    for pattern in import_module(module).websocket_urlpatterns
]
