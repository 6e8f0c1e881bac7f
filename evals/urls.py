"""The evaluation pages."""

from django.urls import path

from evals.views import comparison
from evals.views import datasets as views

app_name = "evals"

urlpatterns = [
    path("evaluations/", views.dataset_list, name="dataset-list"),
    path("evaluations/new", views.dataset_new, name="dataset-new"),
    path("evaluations/from-run/<uuid:run_id>", views.case_from_run, name="case-from-run"),
    path("evaluations/<slug:dataset_slug>/", views.dataset_detail, name="dataset-detail"),
    path("evaluations/<slug:dataset_slug>/delete", views.dataset_delete, name="dataset-delete"),
    path("evaluations/<slug:dataset_slug>/cases/new", views.case_add, name="case-add"),
    path("evaluations/<slug:dataset_slug>/cases/<int:case_id>/", views.case_edit, name="case-edit"),
    path(
        "evaluations/<slug:dataset_slug>/cases/<int:case_id>/delete",
        views.case_delete,
        name="case-delete",
    ),
    path("evaluations/<slug:dataset_slug>/import", views.dataset_import, name="dataset-import"),
    path("evaluations/<slug:dataset_slug>/export", views.dataset_export, name="dataset-export"),
    path("evaluations/<slug:dataset_slug>/versions", views.version_create, name="version-create"),
    path("evaluations/<slug:dataset_slug>/evaluate", views.eval_new, name="eval-new"),
    path("evaluations/<slug:dataset_slug>/runs/", views.eval_list, name="eval-list"),
    path(
        "evaluations/<slug:dataset_slug>/runs/<int:eval_id>/",
        views.eval_detail,
        name="eval-detail",
    ),
    path(
        "evaluations/<slug:dataset_slug>/runs/<int:eval_id>/cancel",
        views.eval_cancel,
        name="eval-cancel",
    ),
    path(
        "evaluations/<slug:dataset_slug>/compare",
        comparison.comparison_new,
        name="comparison-new",
    ),
    path(
        "evaluations/<slug:dataset_slug>/comparisons/<int:comparison_id>/",
        comparison.comparison_detail,
        name="comparison-detail",
    ),
]
