"""The evaluation pages."""

from django.urls import path  # noqa: F401

app_name = "evals"

urlpatterns: list = []
