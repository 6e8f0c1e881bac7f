"""The flow pages, the REST API under ``/api/v1/`` and the OpenAI-compatible API
under ``/v1/``."""

from django.urls import path

from flows import api, openai_api
from flows.views import create, editor, experiments, flows, runs, versions

app_name = "flows"

urlpatterns = [
    path("", flows.home, name="home"),
    path("flows/", flows.flow_list, name="flow-list"),
    path("flows/new", create.flow_new, name="flow-new"),
    path("flows/import", create.flow_import_view, name="flow-import"),
    path("flows/<slug:slug>/", flows.flow_detail, name="flow-detail"),
    path("flows/<slug:slug>/versions", flows.flow_version_create, name="flow-version-create"),
    path("flows/<slug:slug>/publish", flows.flow_publish_latest, name="flow-publish"),
    path("flows/<slug:slug>/settings", flows.flow_settings, name="flow-settings"),
    path("flows/<slug:slug>/delete", flows.flow_remove, name="flow-delete"),
    path("flows/<slug:slug>/history", versions.flow_history, name="flow-history"),
    path(
        "flows/<slug:slug>/experiment/start",
        experiments.flow_experiment_start_view,
        name="flow-experiment-start",
    ),
    path(
        "flows/<slug:slug>/experiment/stop",
        experiments.flow_experiment_stop_view,
        name="flow-experiment-stop",
    ),
    path(
        "flows/<slug:slug>/versions/<int:number>/publish",
        versions.flow_version_republish_view,
        name="flow-version-republish",
    ),
    path(
        "flows/<slug:slug>/versions/<int:number>/restore",
        versions.flow_version_restore_view,
        name="flow-version-restore",
    ),
    path("flows/<slug:slug>/export", versions.flow_export_view, name="flow-export"),
    path("flows/<slug:slug>/duplicate", create.flow_duplicate_view, name="flow-duplicate"),
    path("flows/<slug:slug>/edit", editor.flow_editor, name="flow-editor"),
    path("flows/<slug:slug>/edit/draft", editor.editor_draft_save, name="flow-editor-draft"),
    path("flows/<slug:slug>/edit/panel", editor.editor_node_panel, name="flow-editor-panel"),
    path("flows/<slug:slug>/edit/node", editor.editor_node_apply, name="flow-editor-node"),
    path("flows/<slug:slug>/edit/run", editor.editor_run, name="flow-editor-run"),
    path(
        "flows/<slug:slug>/edit/runs/<uuid:run_id>",
        editor.editor_run_nodes,
        name="flow-editor-run-nodes",
    ),
    path("flows/<slug:slug>/edit/publish", editor.editor_publish, name="flow-editor-publish"),
    path("runs/<uuid:run_id>/", runs.run_detail, name="run-detail"),
    path("runs/<uuid:run_id>/events", runs.run_events_stream, name="run-events"),
    path(
        "runs/<uuid:run_id>/answer/<str:node_key>",
        runs.run_answer_submit,
        name="run-answer",
    ),
    # The REST API and the OpenAI-compatible API.
    path("api/v1/flows/<slug:slug>/runs", api.runs_create, name="api-runs-create"),
    path("api/v1/runs/<uuid:run_id>", api.run_detail, name="api-run-detail"),
    path("api/v1/runs/<uuid:run_id>/events", api.run_stream, name="api-run-events"),
    path("api/v1/runs/<uuid:run_id>/answer", api.run_answer_create, name="api-run-answer"),
    path("v1/models", openai_api.models, name="openai-models"),
    path("v1/chat/completions", openai_api.chat_completions, name="openai-chat-completions"),
]
