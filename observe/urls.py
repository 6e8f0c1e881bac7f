"""The observe pages and endpoints."""

from django.urls import path  # noqa: F401

app_name = "observe"

urlpatterns: list = []
