"""The retrieval test page: run a query against a base, with overrides, and see how each stage
ranked the chunks. The query runs on a retrieval worker (the web process loads no model); the
view waits for its answer."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from knowledge import selectors
from knowledge.access import access_knowledge_base
from knowledge.forms import RetrievalTestForm
from knowledge.models import KnowledgeBase
from knowledge.services import queries
from studio.htmx import wants_partial

TEMPLATE = "knowledge/test.html"
# The order the stages run in, for the timings and the rankings.
STAGES = ("embed", "dense", "keyword", "hybrid", "fused", "rerank", "reranked")


def _explained(base: KnowledgeBase, result: dict[str, Any]) -> dict[str, Any]:
    """The worker's result with, for the page, each stage's ranking labelled by document and
    position, and every returned chunk's rank and score in each stage that ran."""
    stages = result.get("stages", {})
    ids = {int(chunk_id) for hits in stages.values() for chunk_id, _ in hits}
    labels = selectors.chunk_labels(base, ids)
    rankings = [
        {
            "name": name,
            "hits": [
                {"rank": n, "chunk_id": chunk_id, "score": score, **labels.get(chunk_id, {})}
                for n, (chunk_id, score) in enumerate(stages[name], 1)
            ],
        }
        for name in sorted(stages, key=lambda s: STAGES.index(s) if s in STAGES else 99)
    ]
    ranks = {
        ranking["name"]: {
            h["chunk_id"]: {"rank": h["rank"], "score": h["score"]} for h in ranking["hits"]
        }
        for ranking in rankings
    }
    chunks = []
    for chunk in result.get("chunks", []):
        seen = {
            name: found[chunk["chunk_id"]]
            for name, found in ranks.items()
            if chunk["chunk_id"] in found
        }
        chunks.append({**chunk, "stages": {**seen, **chunk.get("stages", {})}})
    timings = result.get("timings_ms", {})
    return {
        **result,
        "chunks": chunks,
        "rankings": rankings,
        "timings": [(name, timings[name]) for name in STAGES if name in timings],
        "total_ms": sum(timings.values()),
    }


@login_required
@require_http_methods(["GET", "POST"])
def kb_test(request: HttpRequest, knowledge_base_id: int) -> HttpResponse:
    """GET: the form. POST: run the query and show the results (only them, for htmx); 400 for
    a refused form, 502 when retrieval failed, 504 when no worker answered in time."""
    base = access_knowledge_base(request.user, knowledge_base_id, "use")
    form = RetrievalTestForm(
        request.POST if request.method == "POST" else None, knowledge_base=base
    )
    context: dict[str, Any] = {"workspace": base.workspace, "base": base, "form": form}
    status = 200
    if form.is_bound:
        status = 400
        if form.is_valid():
            status, context["error"], context["result"] = _run(request, base, form.cleaned_data)
    # Only a query's answer is a fragment: a GET is the page, whoever asks.
    partial = request.method == "POST" and wants_partial(request)
    template = f"{TEMPLATE}#results" if partial else TEMPLATE
    return render(request, template, context, status=status)


def _run(request: HttpRequest, base: KnowledgeBase, data: dict[str, Any]):
    """(status, error, result) of one query, waited for."""
    job_id = queries.query_start(
        knowledge_base=base,
        query=data["query"],
        options=data["options"],
        explain=True,
        user=request.user,
    )
    try:
        reply = queries.query_wait(job_id)
    except queries.QueryTimeout as exc:
        return 504, str(exc), None
    if reply.get("error"):
        return 502, reply["error"], None
    return 200, "", _explained(base, reply["result"])
