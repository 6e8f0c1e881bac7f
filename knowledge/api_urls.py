"""The knowledge REST API, under ``/api/v1/knowledge/``."""

from django.urls import path

from knowledge import api

urlpatterns = [
    path("<slug:kb_slug>/documents", api.documents, name="api-kb-documents"),
    path("<slug:kb_slug>/documents/<int:document_id>", api.document, name="api-kb-document"),
    path("<slug:kb_slug>/retrieve", api.retrieve, name="api-kb-retrieve"),
]
