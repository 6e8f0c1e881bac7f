from django.urls import path

from studio import views

urlpatterns = [
    path("", views.key_list, name="key-list"),
    path("create", views.key_create, name="key-create"),
    path("<int:key_id>/revoke", views.key_revoke, name="key-revoke"),
]
