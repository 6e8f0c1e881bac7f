"""Semantic similarity: the cosine of the output's and the expected output's embeddings, from
a catalog embedding model through its resident engine (the path knowledge bases embed with)."""

from __future__ import annotations

import math

from asgiref.sync import sync_to_async
from pydantic import Field

from catalog.selectors.models import amodel_for_workspace
from catalog.services.models import embedding_model_default
from evals.evaluators.base import Config, Context, Evaluator, Output, Score
from evals.schemas import CaseData

MAX_CHARS = 8_000


class SemanticSimilarityConfig(Config):
    # A catalog embedding model's slug; empty: the bundled default embedder.
    model: str = Field(default="", max_length=100)
    threshold: float = Field(default=0.8, ge=0.0, le=1.0)


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norms if norms else 0.0


class SemanticSimilarity(Evaluator):
    kind = "semantic_similarity"
    label = "Semantic similarity"
    Config = SemanticSimilarityConfig

    async def _model(self, context: Context):
        if self.config.model:
            return await amodel_for_workspace(context.workspace_id, self.config.model)
        return await sync_to_async(embedding_model_default)()

    async def score(self, case: CaseData, output: Output, context: Context) -> Score:
        if not case.expected_output:
            return Score.failed("the case has no expected output")
        model = await self._model(context)
        if model is None:
            return Score.failed(f"there is no embedding model {self.config.model!r}")
        if context.engine_for is None:
            return Score.failed("no engine to embed with here")
        try:
            engine = await context.engine_for(model)
            got, expected = await engine.embed(
                [output.text[:MAX_CHARS], case.expected_output[:MAX_CHARS]]
            )
        except Exception as exc:  # the case fails with the reason; the run goes on
            return Score.failed(f"embedding failed: {exc}")
        # Cosine lies in -1..1; opposite meanings are as wrong as unrelated ones.
        value = max(0.0, min(1.0, cosine(got, expected)))
        passed = value >= self.config.threshold
        return Score(
            value=value,
            passed=passed,
            reason=f"similarity {value:.2f} (threshold {self.config.threshold:.2f})",
            details={"model": model.slug},
        )
