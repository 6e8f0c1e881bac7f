"""Which version serves a published request while the flow runs an online A/B experiment.

Arm "a" is the flow's ``published_version``, arm "b" its ``experiment_version``;
``experiment_weight`` per cent of the keys go to "b". The choice is a pure function of the flow,
the experiment's start and a key, so the same key always lands in the same arm for as long as the
experiment runs, and a new experiment (a new start) deals the keys again.

The key each entry point gives:
- the chat page, the embed widget and the conversations REST API: the conversation's id, so a
  conversation keeps its arm for every turn (and a regenerated answer);
- a one-off REST run (``POST /api/v1/flows/<slug>/runs``): its ``Idempotency-Key`` if sent;
- an OpenAI-compatible call: the ``Idempotency-Key`` if sent, else the request's ``user`` field
  (OpenAI's end-user id), so one end user keeps their arm;
- otherwise ``None``: a random key per request.
Sub-flow nodes, agent tools and the MCP server keep running the published version (they do not
call this, and their runs have no arm): an experiment compares what the flow's own users get.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Literal

from flows.models import Flow, FlowVersion

Arm = Literal["a", "b", ""]

# Buckets a key falls into; the weight is a percentage, so one bucket per point.
BUCKETS = 100


def experiment_running(flow: Flow) -> bool:
    """Whether ``flow`` splits its published traffic now (a version b with a weight above 0)."""
    return bool(
        flow.published_version_id
        and flow.experiment_version_id
        and flow.experiment_weight > 0
        and flow.experiment_started_at is not None
    )


def experiment_bucket(flow: Flow, key: str) -> int:
    """The bucket 0..99 of ``key`` in ``flow``'s current experiment. sha256, not ``hash()``:
    Python salts ``hash()`` per process, and every web process must agree."""
    started = flow.experiment_started_at.isoformat() if flow.experiment_started_at else ""
    digest = hashlib.sha256(f"{flow.id}:{started}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def serving_version(flow: Flow, key: str | None) -> tuple[FlowVersion, Arm]:
    """The version to run for ``key`` and its arm ("" when no experiment runs); ``key`` None
    draws a random one (a request with nothing to keep it sticky). The flow must be published."""
    if not experiment_running(flow):
        return flow.published_version, ""
    version = flow.experiment_version
    if version is None or version.flow_id != flow.id:
        return flow.published_version, ""  # not expected: the service checked it at the start
    if experiment_bucket(flow, key if key is not None else secrets.token_hex(16)) < min(
        flow.experiment_weight, BUCKETS
    ):
        return version, "b"
    return flow.published_version, "a"
