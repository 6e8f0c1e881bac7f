from django.urls import include, path

from catalog.views import models

urlpatterns = [
    path("", models.model_list, name="model-list"),
    path("new", models.model_new, name="model-create"),
    path("<int:model_id>/", models.model_detail, name="model-detail"),
    path("<int:model_id>/edit", models.model_edit, name="model-edit"),
    path("<int:model_id>/delete", models.model_remove, name="model-delete"),
    path("<int:model_id>/adapters/new", models.adapter_new, name="adapter-create"),
    path("adapters/<int:adapter_id>/delete", models.adapter_remove, name="adapter-delete"),
    path("credentials/", include("catalog.views.credentials")),
    path("routes/", include("catalog.views.routes")),
    path("prompts/", include("catalog.views.prompts")),
    path("usage/", include("catalog.views.usage")),
    path("playground/", include("catalog.views.playground")),
]
