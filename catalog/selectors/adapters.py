"""Reads of LoRA adapters: the fine-tunes a catalog model can answer with."""

from __future__ import annotations

from catalog.models import LoraAdapter, Model


def adapter_for_model(model: Model, slug: str) -> LoraAdapter | None:
    """``model``'s adapter of that slug (adapters are the model's own: no workspace check)."""
    return LoraAdapter.objects.filter(base=model, slug=slug).first()


async def aadapter_for_model(model: Model, slug: str) -> LoraAdapter | None:
    return await LoraAdapter.objects.filter(base=model, slug=slug).afirst()
