"""The catalog's pages, under ``/catalog/``, and the OpenAI-compatible ``/v1/embeddings``."""

from django.urls import path

from catalog import openai_api
from catalog.views import credentials, models, playground, prompts, routes, usage

app_name = "catalog"

urlpatterns = [
    path("catalog/", models.model_list, name="model-list"),
    path("catalog/new", models.model_new, name="model-create"),
    path("catalog/<int:model_id>/", models.model_detail, name="model-detail"),
    path("catalog/<int:model_id>/edit", models.model_edit, name="model-edit"),
    path("catalog/<int:model_id>/delete", models.model_remove, name="model-delete"),
    path("catalog/<int:model_id>/adapters/new", models.adapter_new, name="adapter-create"),
    path("catalog/adapters/<int:adapter_id>/delete", models.adapter_remove, name="adapter-delete"),
    path("catalog/credentials/", credentials.credential_list, name="credential-list"),
    path("catalog/credentials/new", credentials.credential_create_view, name="credential-create"),
    path(
        "catalog/credentials/<int:credential_id>/hosts",
        credentials.credential_hosts_view,
        name="credential-hosts",
    ),
    path(
        "catalog/credentials/<int:credential_id>/delete",
        credentials.credential_delete_view,
        name="credential-delete",
    ),
    path("catalog/routes/", routes.route_list, name="route-list"),
    path("catalog/routes/new", routes.route_new, name="route-create"),
    path("catalog/routes/<int:route_id>/edit", routes.route_edit, name="route-edit"),
    path("catalog/routes/<int:route_id>/delete", routes.route_remove, name="route-delete"),
    path("catalog/prompts/", prompts.prompt_list, name="prompt-list"),
    path("catalog/prompts/new", prompts.prompt_new, name="prompt-create"),
    path("catalog/prompts/<int:prompt_id>/", prompts.prompt_detail, name="prompt-detail"),
    path(
        "catalog/prompts/<int:prompt_id>/versions/new",
        prompts.prompt_version_new,
        name="prompt-version-create",
    ),
    path("catalog/prompts/<int:prompt_id>/diff", prompts.prompt_diff, name="prompt-diff"),
    path("catalog/prompts/<int:prompt_id>/delete", prompts.prompt_remove, name="prompt-delete"),
    path(
        "catalog/prompts/versions/<int:version_id>/edit",
        prompts.prompt_version_edit,
        name="prompt-version-edit",
    ),
    path(
        "catalog/prompts/versions/<int:version_id>/publish",
        prompts.prompt_version_publish_view,
        name="prompt-version-publish",
    ),
    path(
        "catalog/prompts/versions/<int:version_id>/approve",
        prompts.prompt_version_approve_view,
        name="prompt-version-approve",
    ),
    path("catalog/usage/", usage.usage, name="usage"),
    path("catalog/usage/data.json", usage.usage_data, name="usage-data"),
    path("catalog/usage/export.csv", usage.usage_export, name="usage-export"),
    path("catalog/playground/", playground.playground, name="playground"),
    path("catalog/playground/start", playground.playground_run, name="playground-start"),
    path(
        "catalog/playground/<str:stream_id>/events",
        playground.playground_events,
        name="playground-events",
    ),
    path("v1/embeddings", openai_api.embeddings, name="openai-embeddings"),
]
