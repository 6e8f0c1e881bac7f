from django.urls import path

from studio.views import keys

urlpatterns = [
    path("", keys.key_list, name="key-list"),
    path("create", keys.key_create, name="key-create"),
    path("<int:key_id>/scopes", keys.key_scopes, name="key-scopes"),
    path("<int:key_id>/confirm", keys.key_confirm, name="key-confirm"),
    path("<int:key_id>/revoke", keys.key_revoke, name="key-revoke"),
]
