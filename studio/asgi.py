"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from studio.body_limit import BodyLimitMiddleware, bound_daphne  # noqa: E402
from studio.routing import websocket_urlpatterns  # noqa: E402

# Request bodies are bounded as they arrive, before any view: in daphne's own request (which
# would otherwise spool a whole body before calling us) and here, for other ASGI servers.
bound_daphne()
http_app = BodyLimitMiddleware(
    ASGIStaticFilesHandler(django_asgi_app) if settings.STUDIO_SERVE_STATIC else django_asgi_app
)

application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
