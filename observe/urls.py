"""The observe pages and endpoints."""

from django.urls import path

from observe.views import alerts, dashboard, experiments, metrics, runs

app_name = "observe"

urlpatterns: list = [
    path("metrics", metrics.metrics, name="metrics"),
    path("runs/", runs.run_list, name="run-list"),
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    path("flows/<slug:slug>/runs/", runs.flow_run_list, name="flow-run-list"),
    path("flows/<slug:slug>/experiment/", experiments.flow_experiment, name="flow-experiment"),
    path("flows/<slug:slug>/alerts/", alerts.alert_list, name="alert-list"),
    path("flows/<slug:slug>/alerts/new", alerts.alert_new, name="alert-new"),
    path("flows/<slug:slug>/alerts/<int:rule_id>/", alerts.alert_edit, name="alert-edit"),
    path("flows/<slug:slug>/alerts/<int:rule_id>/delete", alerts.alert_delete, name="alert-delete"),
    path("flows/<slug:slug>/alerts/<int:rule_id>/test", alerts.alert_test, name="alert-test"),
    path("agents/<slug:agent_slug>/runs/", runs.agent_run_list, name="agent-run-list"),
]
