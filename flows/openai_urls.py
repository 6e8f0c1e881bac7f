from django.urls import path

from flows import openai_api

urlpatterns = [
    path("models", openai_api.models, name="openai-models"),
    path("chat/completions", openai_api.chat_completions, name="openai-chat-completions"),
]
