from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from studio.views import api_docs, password_reset

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password-reset/",
        password_reset.PasswordResetRequest.as_view(),
        name="password_reset",
    ),
    path(
        "accounts/password-reset/sent/",
        password_reset.PasswordResetSent.as_view(),
        name="password_reset_done",
    ),
    path(
        "accounts/reset/<uidb64>/<token>/",
        password_reset.PasswordResetConfirm.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "accounts/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    # The public API's OpenAPI document and its interactive reference.
    path("api/v1/schema/", api_docs.schema, name="api-schema"),
    path("api/v1/docs/", api_docs.docs, name="api-docs"),
    # Each app's URLs, once: its names are "<app>:<name>".
    path("", include("catalog.urls")),
    path("", include("knowledge.urls")),
    path("", include("workspaces.urls")),
    path("", include("flows.urls")),
    path("", include("agents.urls")),
    path("", include("conversations.urls")),
    path("", include("observe.urls")),
    path("", include("evals.urls")),
]

# The error pages, in the studio's layout (JSON under /api/ and /v1/).
handler404 = "studio.views.errors.page_not_found"
handler403 = "studio.views.errors.permission_denied"
handler500 = "studio.views.errors.server_error"
