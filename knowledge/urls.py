"""The knowledge pages, under ``/knowledge/``; each view module holds its own routes."""

from django.urls import include, path

urlpatterns = [
    path("", include("knowledge.views.bases")),
    path("", include("knowledge.views.documents")),
    path("", include("knowledge.views.testing")),
]
