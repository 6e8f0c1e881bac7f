from django.urls import include, path

from catalog.views import models

urlpatterns = [
    path("", models.model_list, name="model-list"),
    path("credentials/", include("catalog.views.credentials")),
    path("routes/", include("catalog.views.routes")),
    path("prompts/", include("catalog.views.prompts")),
    path("usage/", include("catalog.views.usage")),
    path("playground/", include("catalog.views.playground")),
]
