from django.urls import path

from flows import views

urlpatterns = [
    path("", views.home, name="home"),
    path("flows/", views.flow_list, name="flow-list"),
    path("flows/<slug:slug>/", views.flow_detail, name="flow-detail"),
    path("flows/<slug:slug>/versions", views.flow_version_create, name="flow-version-create"),
    path("flows/<slug:slug>/publish", views.flow_publish_latest, name="flow-publish"),
    path("flows/<slug:slug>/settings", views.flow_settings, name="flow-settings"),
    path("flows/<slug:slug>/delete", views.flow_remove, name="flow-delete"),
    path("chat/<slug:slug>/", views.chat, name="chat"),
    path("chat/<slug:slug>/send", views.chat_send, name="chat-send"),
    path("runs/<uuid:run_id>/", views.run_detail, name="run-detail"),
]
