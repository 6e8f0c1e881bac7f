"""The observe pages and endpoints."""

from django.urls import path

from observe.views import metrics

app_name = "observe"

urlpatterns: list = [
    path("metrics", metrics.metrics, name="metrics"),
]
