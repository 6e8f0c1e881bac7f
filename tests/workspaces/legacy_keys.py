"""Keys as the migration that gave keys scopes left them: every existing key marked legacy."""

from __future__ import annotations

from importlib import import_module


class _KeysMovedApps:
    """The app registry as the migration that marked legacy keys saw it, when API keys were
    still the ``studio`` app's: its function runs on today's ``workspaces.ApiKey``."""

    def get_model(self, app_label: str, model_name: str):
        from django.apps import apps

        assert (app_label, model_name) == ("studio", "ApiKey")
        return apps.get_model("workspaces", model_name)


def mark_keys_legacy() -> None:
    """Run that migration's own function on every key there is now."""
    import_module("studio.migrations.0003_apikey_scopes").mark_legacy(_KeysMovedApps(), None)
