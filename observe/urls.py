"""The observe pages and endpoints."""

from django.urls import path

from observe.views import dashboard, metrics, runs

app_name = "observe"

urlpatterns: list = [
    path("metrics", metrics.metrics, name="metrics"),
    path("runs/", runs.run_list, name="run-list"),
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    path("flows/<slug:slug>/runs/", runs.flow_run_list, name="flow-run-list"),
    path("agents/<slug:agent_slug>/runs/", runs.agent_run_list, name="agent-run-list"),
]
