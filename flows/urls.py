from django.urls import path

from flows.views import chat, flows, runs

urlpatterns = [
    path("", flows.home, name="home"),
    path("flows/", flows.flow_list, name="flow-list"),
    path("flows/<slug:slug>/", flows.flow_detail, name="flow-detail"),
    path("flows/<slug:slug>/versions", flows.flow_version_create, name="flow-version-create"),
    path("flows/<slug:slug>/publish", flows.flow_publish_latest, name="flow-publish"),
    path("flows/<slug:slug>/settings", flows.flow_settings, name="flow-settings"),
    path("flows/<slug:slug>/delete", flows.flow_remove, name="flow-delete"),
    path("chat/<slug:slug>/", chat.chat, name="chat"),
    path("chat/<slug:slug>/send", chat.chat_send, name="chat-send"),
    path("runs/<uuid:run_id>/", runs.run_detail, name="run-detail"),
    path(
        "runs/<uuid:run_id>/answer/<str:node_key>",
        runs.run_answer_submit,
        name="run-answer",
    ),
]
