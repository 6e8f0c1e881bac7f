"""The evaluations app: datasets, evaluation runs and their comparisons."""

from django.apps import AppConfig


class EvalsConfig(AppConfig):
    name = "evals"
    verbose_name = "Evaluations"

    def ready(self) -> None:
        from evals.views.comparison import publish_panel
        from flows.panels import register_panel

        # First on the publish page: a publish decision is made from the evaluations.
        register_panel("publish", "evals.comparison", publish_panel, order=10)
