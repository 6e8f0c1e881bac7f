"""Part 1: ingest throughput of SciFact abstracts through the studio's own path, timing the
embedding apart from the rest, with a cold and then a warm embedding cache."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from bench.retrieval.dataset import Dataset
from bench.retrieval.stack import WORKSPACE_PREFIX


class TimedEmbed:
    """``workers.resident.runtime().embed`` with a stopwatch: the time and texts spent embedding."""

    def __init__(self) -> None:
        from workers.resident import runtime

        self._embed = runtime().embed
        self.seconds = 0.0
        self.calls = 0
        self.texts = 0

    def __call__(self, model, texts: list[str]) -> list[list[float]]:
        started = time.perf_counter()
        try:
            return self._embed(model, texts)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1
            self.texts += len(texts)


@dataclass
class IngestPass:
    label: str
    documents: int
    chunks: int
    seconds: float
    add_seconds: float  # inside document_add_text
    embed: TimedEmbed
    reused: int

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.seconds

    @property
    def embed_share(self) -> float:
        return self.embed.seconds / self.seconds


def ingest_pass(label: str, base, documents: list[tuple[str, str]]) -> IngestPass:
    """Add and ingest ``documents`` one after the other, as a worker would; raises if one fails."""
    from django.db.models import Sum

    from knowledge.models import Document, DocumentStatus
    from knowledge.services.documents import document_add_text
    from knowledge.services.ingestion import document_ingest

    embed = TimedEmbed()
    add_seconds = 0.0
    started = time.perf_counter()
    for doc_id, text in documents:
        added = time.perf_counter()
        document, _ = document_add_text(knowledge_base=base, name=f"scifact-{doc_id}", text=text)
        add_seconds += time.perf_counter() - added
        document_ingest(document_id=document.id, embed=embed)
    seconds = time.perf_counter() - started
    failed = Document.objects.filter(knowledge_base=base).exclude(status=DocumentStatus.READY)
    if failed.exists():
        first = failed.first()
        raise RuntimeError(f"{failed.count()} documents failed; {first.name}: {first.error}")
    totals = Document.objects.filter(knowledge_base=base).aggregate(
        chunks=Sum("chunk_count"), reused=Sum("reused_count")
    )
    return IngestPass(
        label=label,
        documents=len(documents),
        chunks=totals["chunks"] or 0,
        seconds=seconds,
        add_seconds=add_seconds,
        embed=embed,
        reused=totals["reused"] or 0,
    )


def measure_ingestion(dataset: Dataset, count: int) -> list[IngestPass]:
    import torch

    from catalog.services.models import embedding_model_default
    from knowledge.services.bases import BaseSettings, kb_create
    from workers.resident import runtime
    from workspaces.services import workspace_create

    documents = dataset.documents[:count]
    workspace = workspace_create(slug=f"{WORKSPACE_PREFIX}ingest", name="Retrieval speed")
    model = embedding_model_default()
    started = time.perf_counter()
    runtime().embed(model, ["The engine loads before the clock starts."])
    load_s = time.perf_counter() - started
    settings = BaseSettings(name="SciFact")
    print(
        f"\n1. ingestion: {len(documents)} SciFact abstracts, {model.name}, "
        f"{torch.get_num_threads()} torch threads on {os.cpu_count()} CPUs "
        f"(engine loaded in {load_s:.1f} s, not counted)"
    )
    print(
        f"   chunking: {settings.splitter} splitter, {settings.chunk_size} tokens, "
        f"overlap {settings.chunk_overlap}"
    )
    passes = []
    for label, slug in (("cold cache", "scifact"), ("warm cache", "scifact-again")):
        base = kb_create(workspace=workspace, slug=slug, values=BaseSettings(name=slug))
        result = ingest_pass(label, base, documents)
        passes.append(result)
        rest = result.seconds - result.embed.seconds
        print(
            f"   {label}: {result.chunks} chunks in {result.seconds:.1f} s = "
            f"{result.chunks_per_s:.1f} chunks/s; embedding {result.embed.seconds:.1f} s "
            f"({result.embed_share:.0%}, {result.embed.texts} texts in {result.embed.calls} "
            f"calls), the rest {rest:.1f} s ({1 - result.embed_share:.0%}, of which "
            f"document_add_text {result.add_seconds:.1f} s); {result.reused} chunks reused "
            "from the embedding cache"
        )
    return passes
