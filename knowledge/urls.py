"""The knowledge pages, under ``/knowledge/``, and the knowledge REST API, under
``/api/v1/knowledge/``."""

from django.urls import path

from knowledge import api
from knowledge.views import bases, documents, testing

app_name = "knowledge"

urlpatterns = [
    path("knowledge/", bases.kb_list, name="kb-list"),
    path("knowledge/new", bases.kb_new, name="kb-create"),
    path("knowledge/<int:knowledge_base_id>/edit", bases.kb_edit, name="kb-edit"),
    path("knowledge/<int:knowledge_base_id>/delete", bases.kb_remove, name="kb-delete"),
    path("knowledge/<int:knowledge_base_id>/", documents.kb_detail, name="kb-detail"),
    path("knowledge/<int:knowledge_base_id>/events", documents.kb_events, name="kb-events"),
    path("knowledge/<int:knowledge_base_id>/upload", documents.documents_upload, name="kb-upload"),
    path(
        "knowledge/<int:knowledge_base_id>/text", documents.documents_add_text, name="kb-add-text"
    ),
    path("knowledge/<int:knowledge_base_id>/url", documents.documents_add_url, name="kb-add-url"),
    path(
        "knowledge/documents/<int:document_id>/", documents.document_detail, name="document-detail"
    ),
    path(
        "knowledge/documents/<int:document_id>/events",
        documents.document_events,
        name="document-events",
    ),
    path(
        "knowledge/documents/<int:document_id>/metadata",
        documents.document_metadata,
        name="document-metadata",
    ),
    path(
        "knowledge/documents/<int:document_id>/reingest",
        documents.document_reingest_view,
        name="document-reingest",
    ),
    path(
        "knowledge/documents/<int:document_id>/cancel",
        documents.document_cancel_view,
        name="document-cancel",
    ),
    path(
        "knowledge/documents/<int:document_id>/delete",
        documents.document_remove,
        name="document-delete",
    ),
    path("knowledge/chunks/<int:chunk_id>/edit", documents.chunk_edit, name="chunk-edit"),
    path("knowledge/chunks/<int:chunk_id>/toggle", documents.chunk_toggle, name="chunk-toggle"),
    path("knowledge/<int:knowledge_base_id>/test/", testing.kb_test, name="kb-test"),
    path("api/v1/knowledge/<slug:kb_slug>/documents", api.documents, name="api-kb-documents"),
    path(
        "api/v1/knowledge/<slug:kb_slug>/documents/<int:document_id>",
        api.document,
        name="api-kb-document",
    ),
    path("api/v1/knowledge/<slug:kb_slug>/retrieve", api.retrieve, name="api-kb-retrieve"),
]
