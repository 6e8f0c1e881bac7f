"""The catalog's pages, under ``/catalog/``."""

from django.urls import path

from catalog.views import credentials, models, playground, prompts, routes, usage

app_name = "catalog"

urlpatterns = [
    path("", models.model_list, name="model-list"),
    path("new", models.model_new, name="model-create"),
    path("<int:model_id>/", models.model_detail, name="model-detail"),
    path("<int:model_id>/edit", models.model_edit, name="model-edit"),
    path("<int:model_id>/delete", models.model_remove, name="model-delete"),
    path("<int:model_id>/adapters/new", models.adapter_new, name="adapter-create"),
    path("adapters/<int:adapter_id>/delete", models.adapter_remove, name="adapter-delete"),
    path("credentials/", credentials.credential_list, name="credential-list"),
    path("credentials/new", credentials.credential_create_view, name="credential-create"),
    path(
        "credentials/<int:credential_id>/hosts",
        credentials.credential_hosts_view,
        name="credential-hosts",
    ),
    path(
        "credentials/<int:credential_id>/delete",
        credentials.credential_delete_view,
        name="credential-delete",
    ),
    path("routes/", routes.route_list, name="route-list"),
    path("routes/new", routes.route_new, name="route-create"),
    path("routes/<int:route_id>/edit", routes.route_edit, name="route-edit"),
    path("routes/<int:route_id>/delete", routes.route_remove, name="route-delete"),
    path("prompts/", prompts.prompt_list, name="prompt-list"),
    path("prompts/new", prompts.prompt_new, name="prompt-create"),
    path("prompts/<int:prompt_id>/", prompts.prompt_detail, name="prompt-detail"),
    path(
        "prompts/<int:prompt_id>/versions/new",
        prompts.prompt_version_new,
        name="prompt-version-create",
    ),
    path("prompts/<int:prompt_id>/diff", prompts.prompt_diff, name="prompt-diff"),
    path("prompts/<int:prompt_id>/delete", prompts.prompt_remove, name="prompt-delete"),
    path(
        "prompts/versions/<int:version_id>/edit",
        prompts.prompt_version_edit,
        name="prompt-version-edit",
    ),
    path(
        "prompts/versions/<int:version_id>/publish",
        prompts.prompt_version_publish_view,
        name="prompt-version-publish",
    ),
    path(
        "prompts/versions/<int:version_id>/approve",
        prompts.prompt_version_approve_view,
        name="prompt-version-approve",
    ),
    path("usage/", usage.usage, name="usage"),
    path("usage/data.json", usage.usage_data, name="usage-data"),
    path("usage/export.csv", usage.usage_export, name="usage-export"),
    path("playground/", playground.playground, name="playground"),
    path("playground/start", playground.playground_run, name="playground-start"),
    path(
        "playground/<str:stream_id>/events", playground.playground_events, name="playground-events"
    ),
]
