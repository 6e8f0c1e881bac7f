from django.urls import path

from flows import api

urlpatterns = [
    path("flows/<slug:slug>/runs", api.runs_create, name="api-runs-create"),
    path("runs/<uuid:run_id>", api.run_detail, name="api-run-detail"),
    path("runs/<uuid:run_id>/events", api.run_stream, name="api-run-events"),
    path("runs/<uuid:run_id>/answer", api.run_answer_create, name="api-run-answer"),
]
