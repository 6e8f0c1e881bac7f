"""Forms of the agent pages: a new agent, and the builder's settings with its tool rows.

The forms turn what was typed into an ``AgentSpec``-shaped dict; the services check it (the
schema, and what it names in the workspace) and their problems are put back on these fields.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms

from agents.models import Agent
from agents.services import Problem
from agents.spec import MAX_INSTRUCTIONS_CHARS, MAX_TOOLS, AgentSpec, Strategy
from agents.tools import tools
from catalog.models import Prompt, Route
from catalog.selectors.playground import playground_models
from flows.selectors import published_flows
from studio import access
from studio.slugs import SlugFromNameMixin

STRATEGY_LABELS = {
    Strategy.AUTO: "Automatic (the model's own tool calls where its engine has them, else ReAct)",
    Strategy.NATIVE: "The model's own tool calls",
    Strategy.REACT: "ReAct (a text protocol any chat model can follow)",
}


class AgentNewForm(SlugFromNameMixin, forms.Form):
    name = forms.CharField(max_length=200)
    slug = forms.SlugField(
        max_length=100, help_text="How the API, flows and chat links name the agent."
    )
    description = forms.CharField(
        required=False, max_length=5_000, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, *args, workspace_id: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.slug_taken = Agent.objects.filter(workspace_id=workspace_id)
        self.slug_from_name_setup()


def _target_choices(user, workspace_id: int, current: str) -> list:
    """The chat models and the routes ``user`` may use, as ``model:<slug>`` / ``route:<slug>``
    (and the draft's current one, which the service checks again)."""
    models = [(f"model:{m.slug}", m.name) for m in playground_models(user, workspace_id)]
    routes = [
        (f"route:{r.slug}", r.name)
        for r in access.scope(user, workspace_id, Route.objects.all(), "use").order_by("name")
    ]
    offered = {value for value, _ in models + routes}
    extra = [(current, current.split(":", 1)[-1])] if current and current not in offered else []
    return [("", "—"), ("Models", models + extra), ("Routes", routes)]


class AgentSettingsForm(forms.Form):
    """Everything of the spec but the tools (``ToolFormSet``), with the agent's name."""

    name = forms.CharField(max_length=200)
    description = forms.CharField(
        required=False, max_length=5_000, widget=forms.Textarea(attrs={"rows": 2})
    )
    instructions = forms.CharField(
        required=False,
        label="Text",
        max_length=MAX_INSTRUCTIONS_CHARS,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text="What the agent is for and how it should behave. Ignored when a library "
        "prompt is chosen below.",
    )
    library_prompt = forms.ChoiceField(
        required=False,
        label="Library prompt",
        help_text="Use a prompt of the workspace's library (its system text) instead.",
    )
    library_version = forms.IntegerField(
        required=False,
        min_value=1,
        label="Prompt version",
        help_text="Left empty, the latest approved version is used.",
    )
    target = forms.ChoiceField(label="Model or route")
    strategy = forms.ChoiceField(choices=list(STRATEGY_LABELS.items()))
    temperature = forms.FloatField(required=False, min_value=0.0, max_value=2.0)
    window_tokens = forms.IntegerField(
        min_value=0, label="Conversation window (tokens)", help_text="Recent turns kept."
    )
    summarise_older = forms.BooleanField(required=False, label="Summarise older turns")
    long_term = forms.BooleanField(required=False, label="Long-term memory of each user")
    extract_facts = forms.BooleanField(required=False, label="Save facts automatically")
    max_steps = forms.IntegerField(min_value=1, label="Steps per run")
    max_tokens = forms.IntegerField(min_value=1, label="Tokens per run")
    max_seconds = forms.FloatField(min_value=1, label="Seconds per run")
    max_tool_calls_per_step = forms.IntegerField(min_value=1, label="Tool calls per step")
    max_answer_tokens = forms.IntegerField(
        required=False, min_value=1, label="Longest answer (tokens)"
    )
    opening = forms.CharField(
        required=False,
        max_length=2_000,
        label="Opening message",
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    suggestions = forms.CharField(
        required=False,
        max_length=2_000,
        label="Suggested questions",
        help_text="One per line, at most six.",
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def __init__(self, *args, user, workspace_id: int, current_target: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target"].choices = _target_choices(user, workspace_id, current_target)
        prompts = access.scope(user, workspace_id, Prompt.objects.all(), "use").order_by("name")
        self.fields["library_prompt"].choices = [
            ("", "— none: the text above —"),
            *((p.slug, p.name) for p in prompts),
        ]

    @staticmethod
    def initial_for(agent: Agent) -> dict[str, Any]:
        # A new agent's draft is empty: the spec's defaults, unchecked (it has no model yet).
        spec = AgentSpec.model_validate(agent.draft) if agent.draft else AgentSpec.model_construct()
        target = (
            f"route:{spec.route}" if spec.route else (f"model:{spec.model}" if spec.model else "")
        )
        return {
            "name": agent.name,
            "description": agent.description,
            "instructions": spec.instructions.text,
            "library_prompt": spec.instructions.library_prompt or "",
            "library_version": spec.instructions.library_version,
            "target": target,
            "strategy": spec.strategy.value,
            "temperature": spec.temperature,
            **spec.memory.model_dump(),
            **spec.limits.model_dump(),
            "opening": spec.opening,
            "suggestions": "\n".join(spec.suggestions),
        }

    def spec(self, tool_uses: list[dict]) -> dict[str, Any]:
        """The spec these values make (call after ``is_valid``)."""
        data = self.cleaned_data
        kind, _, slug = data["target"].partition(":")
        return {
            "instructions": {
                "text": data["instructions"],
                "library_prompt": data["library_prompt"] or None,
                "library_version": data["library_version"],
            },
            "model": slug if kind == "model" else None,
            "route": slug if kind == "route" else None,
            "strategy": data["strategy"],
            "temperature": data["temperature"],
            "tools": tool_uses,
            "memory": {k: data[k] for k in ("window_tokens", "summarise_older")}
            | {k: data[k] for k in ("long_term", "extract_facts")},
            "limits": {
                k: data[k]
                for k in (
                    "max_steps",
                    "max_tokens",
                    "max_seconds",
                    "max_tool_calls_per_step",
                    "max_answer_tokens",
                )
            },
            "opening": data["opening"],
            "suggestions": [s.strip() for s in data["suggestions"].splitlines() if s.strip()],
        }


# Where each part of the spec is typed in the settings form.
_FIELD_OF = {
    ("instructions", "text"): "instructions",
    ("instructions", "library_prompt"): "library_prompt",
    ("instructions", "library_version"): "library_version",
    ("model",): "target",
    ("route",): "target",
    ("strategy",): "strategy",
    ("temperature",): "temperature",
    ("opening",): "opening",
    ("suggestions",): "suggestions",
}


def _field_for(where: tuple) -> str | None:
    if where[:1] in (("memory",), ("limits",)) and len(where) > 1:
        return str(where[1])
    return _FIELD_OF.get(where[:2]) or _FIELD_OF.get(where[:1])


# Tools whose settings name a flow or an agent of the workspace: the row offers a picker.
PICKED = ("flow", "agent")


def _picker_choices(user, workspace_id: int | None, current: str) -> list:
    """The published flows ``user`` may run and the published agents they may use, as
    ``flow:<slug>`` / ``agent:<slug>`` (and the row's current one, which the service checks)."""
    if user is None or workspace_id is None:
        flows, agents = [], []
    else:
        published = published_flows(workspace_id).order_by("name")
        runnable = access.scope(user, workspace_id, published, "run")
        flows = [(f"flow:{f.slug}", f.name) for f in runnable]
        usable = Agent.objects.filter(published_version__isnull=False, flow__isnull=False)
        agents = [
            (f"agent:{a.slug}", a.name)
            for a in access.scope(user, workspace_id, usable, "use").order_by("name")
        ]
    offered = {value for value, _ in flows + agents}
    if current and current not in offered:
        (flows if current.startswith("flow:") else agents).append(
            (current, current.split(":", 1)[-1])
        )
    return [("", "—"), ("Flows", flows), ("Agents", agents)]


class ToolForm(forms.Form):
    tool = forms.ChoiceField()
    target = forms.ChoiceField(
        required=False,
        label="Flow or agent",
        help_text="For the flow and agent tools: the published flow or agent it calls.",
    )
    name = forms.CharField(
        required=False, max_length=64, help_text="Only when one tool is added twice."
    )
    config = forms.CharField(
        required=False,
        max_length=20_000,
        label="Settings (JSON)",
        widget=forms.Textarea(attrs={"rows": 3, "class": "code", "spellcheck": "false"}),
    )
    needs_approval = forms.BooleanField(required=False, label="A person approves each call")

    def __init__(self, *args, user=None, workspace_id: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        registry = tools()
        self.fields["tool"].choices = [("", "—"), *((n, n) for n in sorted(registry))]
        self.fields["target"].choices = _picker_choices(
            user, workspace_id, self.initial.get("target", "")
        )
        self.schemas = {n: json.dumps(t.Config.model_json_schema()) for n, t in registry.items()}

    def clean_config(self) -> dict:
        text = self.cleaned_data.get("config") or ""
        if not text.strip():
            return {}
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"This is not JSON ({exc}).") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("The settings are a JSON object: {…}.")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        tool, target = data.get("tool"), data.get("target") or ""
        kind, _, slug = target.partition(":")
        if target and tool != kind:
            self.add_error("target", f"A {kind} is chosen here for the {tool or 'no'} tool.")
        elif tool in PICKED and slug and isinstance(data.get("config"), dict):
            data["config"] = {**data["config"], kind: slug}
        elif tool in PICKED and not (data.get("config") or {}).get(tool):
            self.add_error("target", f"Choose the {tool} this tool calls.")
        return data

    def use(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "tool": data["tool"],
            "name": data["name"] or None,
            "config": data["config"],
            "needs_approval": data["needs_approval"],
        }


class BaseToolFormSet(forms.BaseFormSet):
    def add_fields(self, form, index) -> None:
        super().add_fields(form, index)
        if "DELETE" in form.fields:
            form.fields["DELETE"].label = "Remove"

    def uses(self) -> list[dict[str, Any]]:
        """The rows kept (a row marked for removal, or left without a tool, is dropped)."""
        return [
            form.use()
            for form in self.forms
            if form.has_changed()
            and not self._should_delete_form(form)
            and form.cleaned_data.get("tool")
        ]


ToolFormSet = forms.formset_factory(
    ToolForm,
    formset=BaseToolFormSet,
    extra=1,
    can_delete=True,
    max_num=MAX_TOOLS,
    validate_max=True,
)


def tool_initial(agent: Agent) -> list[dict[str, Any]]:
    uses = (agent.draft or {}).get("tools", [])
    return [
        {
            "tool": u["tool"],
            "name": u.get("name") or "",
            "target": _picked(u),
            "config": json.dumps(u.get("config") or {}, indent=2),
            "needs_approval": u.get("needs_approval", False),
        }
        for u in uses
    ]


def _picked(use: dict[str, Any]) -> str:
    slug = (use.get("config") or {}).get(use["tool"]) if use["tool"] in PICKED else None
    return f"{use['tool']}:{slug}" if isinstance(slug, str) and slug else ""


def problems_place(
    problems: list[Problem], form: AgentSettingsForm, formset: BaseToolFormSet
) -> None:
    """Put each of the service's problems on the field (or tool row) it is about."""
    kept = [
        f
        for f in formset.forms
        if f.has_changed() and not formset._should_delete_form(f) and f.cleaned_data.get("tool")
    ]
    for problem in problems:
        where = problem.where
        if where[:1] == ("tools",) and len(where) > 1 and isinstance(where[1], int):
            if where[1] < len(kept):
                row = kept[where[1]]
                field = where[2] if len(where) > 2 and where[2] in row.fields else None
                row.add_error(field, problem.message)
                continue
        field = _field_for(where)
        if field in form.fields:
            form.add_error(field, problem.message)
        else:
            form.add_error(None, str(problem))
