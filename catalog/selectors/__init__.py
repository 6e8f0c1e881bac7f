"""Reads of the catalog, one module per feature; the model entry's are re-exported here."""

from catalog.selectors.models import (
    amodel_for_workspace,
    model_for_workspace,
    model_queue,
    models_for_workspace,
    models_visible,
)

__all__ = [
    "amodel_for_workspace",
    "model_for_workspace",
    "model_queue",
    "models_for_workspace",
    "models_visible",
]
