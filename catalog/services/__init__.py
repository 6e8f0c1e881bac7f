"""Writes of the catalog, one module per feature; the model entry's are re-exported here."""

from catalog.services.models import (
    MODEL_FIELDS,
    adapter_create,
    adapter_delete,
    model_create,
    model_delete,
    model_update,
)

__all__ = [
    "MODEL_FIELDS",
    "adapter_create",
    "adapter_delete",
    "model_create",
    "model_delete",
    "model_update",
]
