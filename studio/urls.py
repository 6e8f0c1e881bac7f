from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from studio.views import invitations, password_reset, sharing

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
    path("api/v1/knowledge/", include("knowledge.api_urls")),
    path("api/v1/", include("flows.api_urls")),
    path("v1/", include("flows.openai_urls")),
    path("catalog/", include("catalog.urls")),
    path("knowledge/", include("knowledge.urls")),
    path("keys/", include("studio.keys_urls")),
    path("workspace/", include("studio.workspace_urls")),
    path("share/<slug:kind>/<int:object_id>/", sharing.share, name="share"),
    path("share/<slug:kind>/<int:object_id>/grant", sharing.share_grant, name="share-grant"),
    path("share/<slug:kind>/<int:object_id>/revoke", sharing.share_revoke, name="share-revoke"),
    path("invitations/<str:token>/", invitations.invitation, name="invitation"),
    path("", include("flows.urls")),
]
