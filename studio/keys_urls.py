from django.urls import path

from studio.views import keys

urlpatterns = [
    path("", keys.key_list, name="key-list"),
    path("create", keys.key_create, name="key-create"),
    path("<int:key_id>/revoke", keys.key_revoke, name="key-revoke"),
]
