from django.urls import path

from flows import views

urlpatterns = [
    path("", views.home, name="home"),
    path("flows/", views.flow_list, name="flow-list"),
    path("chat/<slug:slug>/", views.chat, name="chat"),
    path("chat/<slug:slug>/send", views.chat_send, name="chat-send"),
    path("runs/<uuid:run_id>/", views.run_detail, name="run-detail"),
]
