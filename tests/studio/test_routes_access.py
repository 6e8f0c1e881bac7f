"""No route lets anyone reach another workspace's objects.

Every route of the URL configuration (read from the resolver, not from a hand-kept list) is
called with GET and POST by people who have no business with a "victim" workspace: an anonymous
visitor, a bearer of another workspace's API key, the owner of another workspace, a viewer and the
owner of acme, and a signed-in user of no workspace at all. Each call names the victim's objects
(its flow, run, model, key, membership, team, team member, knowledge base, document, chunk, agent,
or a random invitation token).

What the test guarantees:

- A route that names an object (a URL parameter, or a form field such as the workspace to switch
  to) answers 401, 403, 404 or 405, or, to a caller who is not signed in, a redirect to the login
  page. Never a 2xx, never a 500, and never any other redirect (after a POST, a redirect means the
  action ran).
- A route that names no object (the lists, the create forms, ``/v1/models``) may answer what it
  answers a member of their own workspace, but never a 5xx, and nothing it returns mentions the
  victim (every victim name, slug, username and email carries ``MARKER``).
- After every call, the victim's rows are as they were: flows, versions, publication, runs,
  models, keys, memberships, users, teams, grants, invitations, agents and their versions, and
  its audit log.

A route whose URL takes a parameter missing from ``URL_VALUES`` fails the test until a value is
added there, so a new route cannot go unchecked.
"""

from __future__ import annotations

import json
import re
import secrets
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Model as DjangoModel
from django.http import HttpResponseBase
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.resolvers import RoutePattern
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from guardian.utils import get_group_obj_perms_model, get_user_obj_perms_model

from agents.models import Agent, AgentVersion
from agents.services import agent_create, agent_draft_save, agent_publish
from catalog.models import Credential, LoraAdapter, Model, Prompt, PromptVersion, Usage
from catalog.models import Route as CatalogRoute
from catalog.secrets import encrypt
from catalog.services import model_create
from conversations.models import ChatSettings, Conversation, Message
from conversations.services import chat_settings_change, conversation_start, message_send
from conversations.widget import EmbedSettings, embed_settings_change
from evals.models import Case, Dataset, DatasetVersion, EvalComparison, EvalRun
from evals.schemas import CaseData
from evals.services import case_add, dataset_create, dataset_version_create
from flows.demo import assistant_graph
from flows.models import Flow, FlowVersion, Run, RunSource
from flows.services import flow_create, flow_publish, run_create
from knowledge.models import Chunk, Document, KnowledgeBase
from knowledge.services.bases import BaseSettings, kb_create
from knowledge.services.documents import document_add_text
from observe.models import AlertRule
from studio import access
from tests.conftest import PASSWORD
from workspaces.models import ApiKey, AuditEvent, Invitation, Membership, Team, Workspace
from workspaces.services import (
    api_key_create,
    invitation_create,
    member_add,
    team_create,
    team_member_add,
    workspace_create,
)
from workspaces.sharing import object_grant

# In every name, slug, username and email of the victim workspace: a page that shows it leaks.
MARKER = "zq7secret"

# Django's own admin has its own (superuser-only) access rules; static files are not views.
SKIPPED_NAMESPACES = {"admin"}
SKIPPED_PREFIXES = tuple(
    prefix
    for prefix in (settings.STATIC_URL.lstrip("/"), (settings.MEDIA_URL or "").lstrip("/"))
    if prefix  # MEDIA_URL "/" (Django's default) would skip every route
)

DENIED = {401, 403, 404, 405}


# --- the victim -----------------------------------------------------------------------------


@dataclass
class Victim:
    """A workspace the personas have no access to, holding one of every kind of object."""

    workspace: Workspace
    owner: Any
    member: Any
    owner_membership: Membership
    membership: Membership
    flow: Flow
    run: Run
    model: Model
    key: ApiKey
    team: Team
    invitation: Invitation
    credential: Credential
    adapter: LoraAdapter
    route: CatalogRoute
    prompt: Prompt
    prompt_version: PromptVersion
    knowledge_base: KnowledgeBase
    document: Document
    chunk: Chunk
    conversation: Conversation
    answer: Message
    agent: Agent

    def object_of_kind(self, kind: str) -> DjangoModel:
        objects: dict[str, DjangoModel] = {
            "flow": self.flow,
            "model": self.model,
            "key": self.key,
            "route": self.route,
            "prompt": self.prompt,
            "kb": self.knowledge_base,
            "agent": self.agent,
        }
        if kind not in objects:
            pytest.fail(
                f"The shareable kind {kind!r} has no victim object: add one to Victim and to "
                "Victim.object_of_kind in tests/studio/test_routes_access.py."
            )
        return objects[kind]


@pytest.fixture
def victim(db) -> Victim:
    users = get_user_model().objects
    owner = users.create_user(f"{MARKER}-owner", f"{MARKER}-owner@victim.example", PASSWORD)
    member = users.create_user(f"{MARKER}-member", f"{MARKER}-member@victim.example", PASSWORD)
    workspace = workspace_create(slug=f"{MARKER}-ws", name=f"{MARKER} Victim", owner=owner)
    # An editor, not the owner: removing or demoting them would succeed if a check were missing.
    membership = member_add(workspace=workspace, user=member, role="editor", actor=owner)
    model = model_create(
        slug=f"{MARKER}-model",
        name=f"{MARKER} model",
        engine="echo",
        workspace=workspace,
        actor=owner,
    )
    flow = flow_create(
        workspace=workspace,
        slug=f"{MARKER}-flow",
        name=f"{MARKER} flow",
        graph=assistant_graph(model=model.slug),
        user=owner,
    )
    flow = flow_publish(flow=flow, user=owner)
    # In a `db` test the on_commit dispatch never fires: the run stays queued, no worker needed.
    run = run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": f"{MARKER} question"},
        source=RunSource.STUDIO,
        user=owner,
    )
    key, _ = api_key_create(workspace=workspace, name=f"{MARKER} key", user=owner)
    team = team_create(workspace=workspace, name=f"{MARKER} team", actor=owner)
    team_member_add(team=team, user=member, actor=owner)
    # Grants of each kind, to a user and to a team, so that a revoke has something to remove.
    object_grant(obj=flow, subject=member, level="view", actor=owner)
    object_grant(obj=model, subject=member, level="use", actor=owner)
    object_grant(obj=key, subject=team, level="view", actor=owner)
    invitation, _ = invitation_create(
        workspace=workspace,
        email=f"{MARKER}-invitee@victim.example",
        role="viewer",
        actor=owner,
        accept_url=lambda token: f"/invitations/{token}/",
    )
    credential = Credential.objects.create(
        workspace=workspace,
        name=f"{MARKER} credential",
        ciphertext=encrypt("sk-victim"),
        hint="ctim",
    )
    adapter = LoraAdapter.objects.create(
        base=model, slug=f"{MARKER}-adapter", name=f"{MARKER} adapter", weights="/adapters/x"
    )
    route = CatalogRoute.objects.create(
        workspace=workspace, slug=f"{MARKER}-route", name=f"{MARKER} route"
    )
    route.targets.create(model=model, position=0)
    prompt = Prompt.objects.create(
        workspace=workspace, slug=f"{MARKER}-prompt", name=f"{MARKER} prompt", created_by=owner
    )
    prompt_version = prompt.versions.create(
        number=1, template=f"{MARKER} {{{{question}}}}", variables=["question"], created_by=owner
    )
    object_grant(obj=route, subject=member, level="use", actor=owner)
    object_grant(obj=prompt, subject=team, level="view", actor=owner)
    knowledge_base = kb_create(
        workspace=workspace,
        slug=f"{MARKER}-kb",
        values=BaseSettings(name=f"{MARKER} knowledge"),
        actor=owner,
    )
    # Never ingested (no worker in a `db` test): its one chunk is written as ingestion would.
    document, _ = document_add_text(
        knowledge_base=knowledge_base,
        name=f"{MARKER}-notes.txt",
        text=f"{MARKER} notes",
        metadata={"owner": MARKER},
        actor=owner,
    )
    chunk = Chunk.objects.create(
        knowledge_base=knowledge_base,
        document=document,
        generation=1,
        position=0,
        text=f"{MARKER} notes",
        content_hash="0" * 64,
        searchable=True,
    )
    object_grant(obj=knowledge_base, subject=team, level="view", actor=owner)
    conversation = conversation_start(flow=flow, user=owner)
    chat_settings_change(flow=flow, opening=f"{MARKER} hello", suggestions=["one"], user=owner)
    # A widget that was on and is now off: its address is known, and reaches nothing.
    for enabled in (True, False):
        embed_settings_change(
            flow=flow,
            user=owner,
            embed=EmbedSettings(
                enabled=enabled,
                allowed_origins=["https://victim.example"],
                title=f"{MARKER} widget",
                colour="#123456",
                sign_in_required=False,
                remote_images=False,
                requests_per_minute=None,
                tokens_per_day=None,
            ),
        )
    exchange = message_send(
        conversation=conversation, text=f"{MARKER} asks", source=RunSource.CHAT, user=owner
    )
    agent = agent_create(
        workspace=workspace, name=f"{MARKER} agent", slug=f"{MARKER}-agent", actor=owner
    )
    agent_draft_save(agent=agent, spec={"model": model.slug}, actor=owner)
    agent_publish(agent=agent, actor=owner)
    object_grant(obj=agent, subject=member, level="view", actor=owner)
    dataset = dataset_create(
        workspace=workspace, name=f"{MARKER} dataset", slug=f"{MARKER}-dataset", target=flow
    )
    case_add(dataset=dataset, data=CaseData(inputs={"message": f"{MARKER} case"}))
    frozen = dataset_version_create(dataset=dataset, actor=owner)
    eval_run = EvalRun.objects.create(
        workspace=workspace,
        dataset=dataset,
        dataset_version=frozen,
        flow=flow,
        flow_version=flow.published_version,
        evaluators=[{"kind": "exact_match", "config": {}}],
        total=1,
    )
    EvalComparison.objects.create(
        workspace=workspace, flow=flow, baseline=eval_run, candidate=eval_run
    )
    AlertRule.objects.create(
        workspace=workspace,
        flow=flow,
        name=f"{MARKER} alert",
        metric="error_rate",
        threshold=10,
        emails=[f"{MARKER}-oncall@victim.example"],
    )
    return Victim(
        agent=agent,
        conversation=conversation,
        answer=exchange.answer,
        knowledge_base=knowledge_base,
        document=document,
        chunk=chunk,
        credential=credential,
        adapter=adapter,
        route=route,
        prompt=prompt,
        prompt_version=prompt_version,
        workspace=workspace,
        owner=owner,
        member=member,
        owner_membership=Membership.objects.get(workspace=workspace, user=owner),
        membership=membership,
        flow=flow,
        run=run,
        model=model,
        key=key,
        team=team,
        invitation=invitation,
    )


# The value of each URL parameter, by name: always the victim's object. ``kind`` is not here:
# each route that takes it is called once per registered shareable kind.
URL_VALUES: dict[str, Callable[[Victim, str | None], Any]] = {
    "slug": lambda v, kind: v.flow.slug,
    "run_id": lambda v, kind: v.run.id,
    # A version of the victim's flow, and a node of the victim's run.
    "number": lambda v, kind: v.flow.published_version.number,
    "node_key": lambda v, kind: "llm_1",
    "key_id": lambda v, kind: v.key.id,
    "membership_id": lambda v, kind: v.membership.id,
    "team_id": lambda v, kind: v.team.id,
    "user_id": lambda v, kind: v.member.id,
    "object_id": lambda v, kind: v.object_of_kind(kind).pk,
    "model_id": lambda v, kind: v.model.id,
    "adapter_id": lambda v, kind: v.adapter.id,
    "credential_id": lambda v, kind: v.credential.id,
    "route_id": lambda v, kind: v.route.id,
    "prompt_id": lambda v, kind: v.prompt.id,
    "version_id": lambda v, kind: v.prompt_version.id,
    "knowledge_base_id": lambda v, kind: v.knowledge_base.id,
    "kb_slug": lambda v, kind: v.knowledge_base.slug,
    "agent_slug": lambda v, kind: v.agent.slug,
    "dataset_slug": lambda v, kind: Dataset.objects.get(workspace=v.workspace).slug,
    "case_id": lambda v, kind: Case.objects.get(dataset__workspace=v.workspace).id,
    "eval_id": lambda v, kind: EvalRun.objects.get(workspace=v.workspace).id,
    "rule_id": lambda v, kind: AlertRule.objects.get(workspace=v.workspace).id,
    "comparison_id": lambda v, kind: EvalComparison.objects.get(workspace=v.workspace).id,
    "document_id": lambda v, kind: v.document.id,
    "chunk_id": lambda v, kind: v.chunk.id,
    "conversation_id": lambda v, kind: v.conversation.id,
    "message_id": lambda v, kind: v.answer.id,
    "embed_id": lambda v, kind: ChatSettings.objects.get(flow=v.flow).embed_id,
    # Playground streams belong to whoever started them: a random id is never theirs.
    "stream_id": lambda v, kind: secrets.token_urlsafe(16),
    # Invitations are bearer links: only a random token can be "not theirs".
    "token": lambda v, kind: secrets.token_urlsafe(32),
    # A password reset link names a user (the victim's owner), with a random token.
    "uidb64": lambda v, kind: urlsafe_base64_encode(force_bytes(v.owner.pk)),
}


@dataclass(frozen=True)
class Body:
    """A plausible POST body for a route; ``names_victim`` when it names a victim object, which
    makes the route as strict as one that takes an id in its URL."""

    data: dict[str, Any]
    json: bool = False
    names_victim: bool = False


# A valid alert rule: a leaking alert view would save it.
_ALERT_FORM = {
    "name": "hijacked",
    "metric": "error_rate",
    "threshold": "99",
    "window_minutes": "60",
    "min_runs": "1",
    "other_emails": "attacker@example.com",
    "enabled": "on",
}


def _post_body(name: str | None, victim: Victim, kind: str | None) -> Body:
    """What each route's form or API expects, filled with the victim's ids; empty otherwise."""
    v = victim
    revoke_subject = f"team:{v.team.id}" if kind == "key" else f"user:{v.member.id}"
    kb_settings = {
        "name": "Renamed",
        "embedding_model": v.knowledge_base.embedding_model_id,
        "splitter": "sentence",
        "chunk_size": "200",
        "chunk_overlap": "20",
        "search_mode": "hybrid",
        "top_k": "5",
        "score_threshold": "0",
    }
    bodies: dict[str, Callable[[], Body]] = {
        "flows:flow-version-create": lambda: Body(
            {"graph": json.dumps(assistant_graph(model=v.model.slug))}
        ),
        "conversations:chat-send": lambda: Body(
            {"message": "hello", "conversation": str(v.conversation.id)}, names_victim=True
        ),
        "conversations:conversation-rename": lambda: Body({"title": "renamed"}),
        "conversations:chat-settings": lambda: Body({"opening": "hijacked", "suggestions": "x"}),
        "conversations:message-feedback": lambda: Body({"rating": "-1", "comment": "bad"}),
        "conversations:api-flow-conversations": lambda: Body({"user": "someone"}, json=True),
        "conversations:api-conversation-messages": lambda: Body({"text": "hello"}, json=True),
        "conversations:api-message-feedback": lambda: Body({"rating": -1}, json=True),
        "workspaces:member-change": lambda: Body({"role": "admin"}),
        "workspaces:team-member-add": lambda: Body({"member": v.owner_membership.id}),
        "workspaces:share-grant": lambda: Body(
            {"subject": f"user:{v.member.id}", "level": "manage"}
        ),
        "workspaces:share-revoke": lambda: Body({"subject": revoke_subject}),
        "workspaces:workspace-switch": lambda: Body(
            {"workspace_id": v.workspace.id}, names_victim=True
        ),
        "workspaces:workspace-transfer": lambda: Body({"to": v.membership.id}),
        "workspaces:member-invite": lambda: Body({"who": "newcomer@example.com", "role": "viewer"}),
        "workspaces:team-create": lambda: Body({"name": "Support"}),
        "workspaces:key-create": lambda: Body({"name": "ci"}),
        "catalog:credential-create": lambda: Body({"name": "ci", "secret": "sk-ci-0123456789"}),
        "workspaces:invitation": lambda: Body(
            {"username": "newcomer", "password1": PASSWORD, "password2": PASSWORD}
        ),
        "flows:api-runs-create": lambda: Body({"inputs": {"message": "hello"}}, json=True),
        "agents:api-agent-runs-create": lambda: Body({"inputs": {"message": "hello"}}, json=True),
        "agents:api-agent-conversations": lambda: Body({"user": "someone"}, json=True),
        "flows:openai-chat-completions": lambda: Body(
            {"model": v.flow.slug, "messages": [{"role": "user", "content": "hello"}]},
            json=True,
            names_victim=True,
        ),
        "catalog:playground-start": lambda: Body(
            {
                "model_a": v.model.id,
                "model_b": v.model.id,
                "prompt": "hello",
                "temperature": "0",
                "max_tokens": "16",
            },
            names_victim=True,
        ),
        "evals:dataset-new": lambda: Body(
            {"name": "Taken", "target": f"flow:{v.flow.slug}"}, names_victim=True
        ),
        "evals:comparison-new": lambda: Body(
            dict.fromkeys(("baseline", "candidate"), EvalRun.objects.get(workspace=v.workspace).id),
            names_victim=True,
        ),
        "evals:case-add": lambda: Body({"message": "hijacked"}),
        "evals:case-edit": lambda: Body({"message": "hijacked"}),
        "evals:case-from-run": lambda: Body(
            {"dataset": Dataset.objects.get(workspace=v.workspace).slug}, names_victim=True
        ),
        "observe:alert-new": lambda: Body(_ALERT_FORM),
        "observe:alert-edit": lambda: Body(_ALERT_FORM),
        "catalog:prompt-create": lambda: Body(
            {"name": "Triage", "slug": "triage", "template": "{{q}}"}
        ),
        "catalog:prompt-version-create": lambda: Body({"template": "overwritten {{q}}"}),
        "catalog:prompt-version-edit": lambda: Body({"template": "overwritten {{q}}"}),
        "catalog:model-create": lambda: Body(
            {
                "name": "New",
                "slug": "new-model",
                "task": "conversations:chat",
                "source": "open_weight",
                "status": "available",
                "engine": "echo",
                "context_length": "2048",
                "price_input": "0",
                "price_output": "0",
            }
        ),
        "catalog:model-edit": lambda: Body(
            {
                "name": "Renamed",
                "slug": v.model.slug,
                "task": "conversations:chat",
                "source": "open_weight",
                "status": "available",
                "engine": "echo",
                "context_length": "2048",
                "price_input": "0",
                "price_output": "0",
            }
        ),
        "catalog:adapter-create": lambda: Body({"name": "A", "slug": "a", "weights": "org/a"}),
        "knowledge:kb-create": lambda: Body(kb_settings | {"slug": "new-kb"}),
        "agents:agent-new": lambda: Body({"name": "New agent"}),
        "agents:agent-save": lambda: Body(
            {
                "name": "Renamed",
                "target": f"model:{v.model.slug}",
                "strategy": "auto",
                "window_tokens": "2000",
                "max_steps": "8",
                "max_tokens": "20000",
                "max_seconds": "120",
                "max_tool_calls_per_step": "4",
                "tools-TOTAL_FORMS": "0",
                "tools-INITIAL_FORMS": "0",
            }
        ),
        "agents:agent-publish": lambda: Body({"note": "hijacked"}),
        "knowledge:kb-edit": lambda: Body(kb_settings),
        "knowledge:kb-add-text": lambda: Body({"name": "added.txt", "text": "overwritten"}),
        "knowledge:kb-add-url": lambda: Body({"url": "https://example.com/added"}),
        "knowledge:kb-test": lambda: Body({"query": "notes"}),
        "knowledge:document-metadata": lambda: Body({"metadata": "owner=someone else"}),
        "knowledge:chunk-edit": lambda: Body({"text": "overwritten"}),
        "knowledge:chunk-toggle": lambda: Body({"enabled": "off"}),
        "knowledge:api-kb-documents": lambda: Body(
            {"name": "added.txt", "text": "overwritten"}, json=True
        ),
        "knowledge:api-kb-retrieve": lambda: Body({"query": "notes"}, json=True),
        # Another workspace's model, by slug: only a refusal will do.
        "catalog:openai-embeddings": lambda: Body(
            {"model": v.model.slug, "input": "hello"}, json=True, names_victim=True
        ),
    }
    return bodies[name]() if name in bodies else Body({})


# --- the routes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    pattern: str  # the full pattern, e.g. "share/<slug:kind>/<int:object_id>/grant"
    name: str | None  # with its namespace, for reverse()
    params: tuple[str, ...]
    substitutable: bool  # every level is a path() pattern, so <…> can be replaced by hand


def _walk(
    resolver: URLResolver,
    prefix: str = "",
    namespace: str | None = None,
    params: tuple[str, ...] = (),
    substitutable: bool = True,
) -> Iterator[Route]:
    for entry in resolver.url_patterns:
        pattern = prefix + str(entry.pattern)
        here = params + tuple(entry.pattern.regex.groupindex)
        plain = substitutable and isinstance(entry.pattern, RoutePattern)
        if pattern.startswith(SKIPPED_PREFIXES):
            continue
        if isinstance(entry, URLResolver):
            if entry.namespace in SKIPPED_NAMESPACES:
                continue
            inner = ":".join(n for n in (namespace, entry.namespace) if n) or None
            yield from _walk(entry, pattern, inner, here, plain)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name
            yield Route(pattern, name, here, plain)


def all_routes() -> list[Route]:
    return list(_walk(get_resolver()))


def _unfillable(route: Route) -> list[str]:
    missing = [p for p in route.params if p != "kind" and p not in URL_VALUES]
    problems = [
        f"route {route.pattern!r} takes the parameter {p!r}, which has no victim value: add "
        f"{p!r} to URL_VALUES in tests/studio/test_routes_access.py"
        for p in missing
    ]
    if route.name is None and not route.substitutable:
        problems.append(
            f"route {route.pattern!r} has no name and a regex pattern: name it, so that the "
            "access test can reverse() it"
        )
    return problems


_PARAM = re.compile(r"<(?:[^>:]+:)?(?P<name>[^>]+)>")


def _url(route: Route, kwargs: dict[str, Any]) -> str:
    if route.name is not None:
        return reverse(route.name, kwargs=kwargs)
    return "/" + _PARAM.sub(lambda m: str(kwargs[m.group("name")]), route.pattern)


# --- the personas ---------------------------------------------------------------------------


@dataclass
class Persona:
    name: str
    user: Any  # None: not signed in
    headers: dict[str, str] = field(default_factory=dict)
    client: Client = field(default_factory=Client)


@pytest.fixture
def personas(db, workspace, owner, viewer, outsider, api_key, echo_model, make_flow):
    # acme has a published flow of its own, so its lists and /v1/models are not empty.
    make_flow(echo_model, slug="assistant")
    lonely = get_user_model().objects.create_user("lonely", "lonely@example.com", PASSWORD)
    return [
        Persona("anonymous", None),
        Persona("acme API key", None, {"Authorization": f"Bearer {api_key}"}),
        Persona("outsider (owner of another workspace)", outsider),
        Persona("viewer of acme", viewer),
        Persona("owner of acme", owner),
        Persona("user of no workspace", lonely),
    ]


# --- the victim's state ---------------------------------------------------------------------


def _victim_state(v: Victim) -> dict[str, Any]:
    """Everything of the victim workspace a leaking view could change, as comparable values."""
    ws = v.workspace
    state: dict[str, Any] = {
        "workspace": set(Workspace.objects.filter(id=ws.id).values_list("slug", "name")),
        "memberships": set(
            Membership.objects.filter(workspace=ws).values_list("id", "user_id", "role", "limited")
        ),
        "users": set(
            get_user_model()
            .objects.filter(id__in=[v.owner.id, v.member.id])
            .values_list("id", "is_active", "password", "email")
        ),
        "flows": set(
            Flow.objects.filter(workspace=ws).values_list(
                "id", "slug", "name", "published_version_id"
            )
        ),
        "flow versions": set(
            FlowVersion.objects.filter(flow__workspace=ws).values_list("id", "number")
        ),
        "runs": set(Run.objects.filter(flow__workspace=ws).values_list("id", "status")),
        "models": set(
            Model.objects.filter(workspace=ws).values_list("id", "slug", "name", "status")
        ),
        "keys": set(ApiKey.objects.filter(workspace=ws).values_list("id", "name", "revoked_at")),
        "teams": set(Team.objects.filter(workspace=ws).values_list("id", "name", "group__user")),
        "invitations": set(
            Invitation.objects.filter(workspace=ws).values_list(
                "id", "accepted_at", "accepted_by_id", "expires_at"
            )
        ),
        "audit events": AuditEvent.objects.filter(workspace=ws).count(),
        "credentials": set(
            Credential.objects.filter(workspace=ws).values_list("id", "name", "hint")
        ),
        "adapters": set(
            LoraAdapter.objects.filter(base__workspace=ws).values_list("id", "slug", "weights")
        ),
        "routes": set(
            CatalogRoute.objects.filter(workspace=ws).values_list(
                "id", "slug", "name", "strategy", "targets__model_id", "targets__weight"
            )
        ),
        "prompts": set(Prompt.objects.filter(workspace=ws).values_list("id", "slug", "name")),
        "prompt versions": set(
            PromptVersion.objects.filter(prompt__workspace=ws).values_list(
                "id", "number", "template", "status", "published_at"
            )
        ),
        "usage": Usage.objects.filter(workspace=ws).count(),
        "knowledge bases": set(
            KnowledgeBase.objects.filter(workspace=ws).values_list(
                "id", "slug", "name", "top_k", "search_mode"
            )
        ),
        "documents": {
            (i, name, status, json.dumps(metadata, sort_keys=True))
            for i, name, status, metadata in Document.objects.filter(
                knowledge_base__workspace=ws
            ).values_list("id", "name", "status", "metadata")
        },
        "chunks": set(
            Chunk.objects.filter(knowledge_base__workspace=ws).values_list("id", "text", "enabled")
        ),
        "conversations": set(
            Conversation.objects.filter(workspace=ws).values_list("id", "title", "user_id")
        ),
        "messages": set(
            Message.objects.filter(conversation__workspace=ws).values_list(
                "id", "text", "feedback", "feedback_comment"
            )
        ),
        "agents": set(
            Agent.objects.filter(workspace=ws).values_list(
                "id", "slug", "name", "published_version_id"
            )
        ),
        "agent drafts": [
            json.dumps(draft, sort_keys=True)
            for draft in Agent.objects.filter(workspace=ws)
            .order_by("id")
            .values_list("draft", flat=True)
        ],
        "agent versions": set(
            AgentVersion.objects.filter(agent__workspace=ws).values_list("id", "number", "note")
        ),
        "datasets": set(Dataset.objects.filter(workspace=ws).values_list("id", "slug", "name")),
        "cases": set(Case.objects.filter(dataset__workspace=ws).values_list("id", "updated_at")),
        "dataset versions": set(
            DatasetVersion.objects.filter(dataset__workspace=ws).values_list("id", "number")
        ),
        "eval runs": set(EvalRun.objects.filter(workspace=ws).values_list("id", "status")),
        "alert rules": set(
            AlertRule.objects.filter(workspace=ws).values_list(
                "id", "name", "threshold", "enabled", "webhook_url"
            )
        ),
        "eval comparisons": set(
            EvalComparison.objects.filter(workspace=ws).values_list("id", "flow_id")
        ),
        "chat settings": {
            (flow_id, opening, json.dumps(suggestions), enabled, json.dumps(origins))
            for flow_id, opening, suggestions, enabled, origins in ChatSettings.objects.filter(
                flow__workspace=ws
            ).values_list("flow_id", "opening", "suggestions", "embed_enabled", "allowed_origins")
        },
    }
    for kind in access.KINDS.values():
        state[f"{kind.name} user grants"] = set(
            get_user_obj_perms_model(kind.model)
            .objects.filter(content_object__workspace=ws)
            .values_list("user_id", "content_object_id", "permission__codename")
        )
        state[f"{kind.name} team grants"] = set(
            get_group_obj_perms_model(kind.model)
            .objects.filter(content_object__workspace=ws)
            .values_list("group_id", "content_object_id", "permission__codename")
        )
    return state


# --- the calls ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    route: CatalogRoute
    url: str
    method: str
    body: Body
    names_victim: bool  # the request names a victim object: only a refusal will do
    kind: str | None


def _calls(routes: list[Route], victim: Victim) -> Iterator[Call]:
    for route in routes:
        for kind in sorted(access.KINDS) if "kind" in route.params else [None]:
            kwargs = {p: URL_VALUES[p](victim, kind) for p in route.params if p != "kind"}
            if kind is not None:
                kwargs["kind"] = kind
            url = _url(route, kwargs)
            for method in ("GET", "POST"):
                body = _post_body(route.name, victim, kind) if method == "POST" else Body({})
                names_victim = bool(route.params) or body.names_victim
                yield Call(route, url, method, body, names_victim, kind)


def _send(persona: Persona, call: Call) -> HttpResponseBase:
    client = persona.client
    # Signed in again before each call: the logout route (or a deactivation) ends the session.
    if persona.user is not None:
        client.force_login(persona.user)
    if call.method == "GET":
        return client.get(call.url, headers=persona.headers)
    if call.body.json:
        return client.post(
            call.url,
            json.dumps(call.body.data),
            content_type="application/json",
            headers=persona.headers,
        )
    return client.post(call.url, call.body.data, headers=persona.headers)


def _verdict(persona: Persona, call: Call, response: HttpResponseBase) -> str:
    """Why the response is wrong, or "" if it is right."""
    status = response.status_code
    if call.names_victim:
        if status in DENIED:
            return ""
        if status == 302 and persona.user is None:
            location = urlsplit(response["Location"]).path
            if location == resolve_url(settings.LOGIN_URL):
                return ""
            return f"redirected a signed-out caller to {response['Location']!r}, not the login"
        where = f" to {response['Location']!r}" if status in (301, 302, 303, 307, 308) else ""
        return f"answered {status}{where} to a request naming another workspace's object"
    if status >= 500:
        return f"answered {status}"
    # Streams are not read: a leaking stream could wait for events that never come.
    if not response.streaming and MARKER in response.content.decode(errors="replace").lower():
        return f"answered {status} with a body that mentions the victim workspace ({MARKER})"
    return ""


@pytest.fixture
def runs_never_wait(settings):
    """The API waits for a run to finish; in a `db` test no worker ever runs it. Should a view
    leak and start a run, its one-second deadline makes the waiting reader fail it within one
    idle tick (the test then fails on the answer) instead of hanging."""
    settings.STUDIO_RUN_TIMEOUT_S = 1


# --- the tests ------------------------------------------------------------------------------


def test_every_route_can_be_called_with_the_victims_ids():
    """A new URL parameter (or an unnamed regex route) needs a line in this module."""
    routes = all_routes()
    problems = [problem for route in routes for problem in _unfillable(route)]
    assert not problems, "\n".join(problems)
    # The walk found the routes, not an empty list that passes everything.
    names = {route.name for route in routes}
    assert {
        "flows:flow-detail",
        "workspaces:share-grant",
        "flows:api-run-detail",
        "flows:openai-models",
    } <= names, names


def test_no_route_reaches_another_workspaces_objects(victim, personas, runs_never_wait):
    routes = all_routes()
    unfillable = [problem for route in routes for problem in _unfillable(route)]
    if unfillable:
        pytest.fail("\n".join(unfillable))
    calls = list(_calls(routes, victim))
    initial = before = _victim_state(victim)
    problems: list[str] = []
    refused = 0
    for call in calls:
        ran = False  # whether some persona's call reached the view (not a 405 before it)
        for persona in personas:
            label = f"{call.method} {call.url} [{call.route.name or call.route.pattern}]"
            label += f" as {persona.name}"
            try:
                response = _send(persona, call)
            except Exception as exc:  # a crash is a finding: reported with the rest
                where = "".join(traceback.format_exception(exc)[-3:]).strip()
                problems.append(f"{label}: raised {exc!r}\n    {where}")
                continue
            if why := _verdict(persona, call, response):
                problems.append(f"{label}: {why}")
            elif call.names_victim:
                refused += 1
            if persona.user is not None and persona.client.session.get("workspace_id") == (
                victim.workspace.id
            ):
                problems.append(f"{label}: the session now works in the victim workspace")
            # A 405 comes from require_http_methods before the view ran: nothing can have
            # changed (and the final comparison below would see it if something had).
            ran = ran or response.status_code != 405
        if ran:
            # Once per call, after every persona: the snapshot is some thirty queries.
            after = _victim_state(victim)
            if after != before:
                changed = sorted(k for k in before if before[k] != after[k])
                label = f"{call.method} {call.url} [{call.route.name or call.route.pattern}]"
                problems.append(
                    f"{label} by one of the personas: changed the victim's {', '.join(changed)}"
                )
                before = after  # report each change once, at the call that made it
    final = _victim_state(victim)
    if final != initial:
        changed = sorted(k for k in initial if initial[k] != final[k])
        problems.append(f"after all calls, the victim's {', '.join(changed)} differ")
    calls_made = len(calls) * len(personas)
    print(f"{calls_made} calls: {len(routes)} routes, {len(calls)} route x method x kind")
    assert not problems, f"{len(problems)} of {calls_made} calls went wrong:\n" + "\n".join(
        problems
    )
    # Most calls name a victim object and must have been refused: a walk that built no such
    # call (or a verdict that refuses nothing) would pass without testing anything.
    assert refused > calls_made // 2, (refused, calls_made)
