"""Forms of the evaluation pages; a case's fields are checked by ``CaseData`` (pydantic)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from pydantic import ValidationError as PydanticError

from evals.evaluators import evaluator_classes
from evals.models import Case, Dataset
from evals.schemas import MAX_TEXT, CaseData
from evals.selectors import targets_changeable
from evals.transfer import MAX_FILE_BYTES
from evals.variants import ALL, Swap, llm_nodes, node_target
from studio.slugs import SlugFromNameMixin


class DatasetForm(SlugFromNameMixin, forms.Form):
    name = forms.CharField(max_length=200)
    slug = forms.SlugField(max_length=100)
    target = forms.ChoiceField(label="For", help_text="The flow or agent the cases test.")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def __init__(self, *args: Any, user, workspace_id: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["target"].choices = targets_changeable(user, workspace_id)
        self.slug_taken = Dataset.objects.filter(workspace_id=workspace_id)
        self.slug_from_name_setup()


class CaseForm(forms.Form):
    message = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        max_length=MAX_TEXT,
        help_text="The input message. For other inputs, fill in the JSON below instead.",
    )
    inputs = forms.CharField(
        label="Inputs (JSON)",
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text='An object such as {"message": "…", "language": "fr"}.',
    )
    expected_output = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=MAX_TEXT
    )
    criteria = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        max_length=MAX_TEXT,
        help_text="What a judge should check, when there is no single right answer.",
    )
    expected_sources = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text="Document names or ids that retrieval should find, one per line.",
    )
    tags = forms.CharField(required=False, help_text="Separated by commas.")

    @classmethod
    def initial_for(cls, case: Case) -> dict[str, Any]:
        inputs = dict(case.inputs)
        message = inputs.pop("message", "") if set(inputs) == {"message"} else ""
        return {
            "message": message,
            "inputs": json.dumps(case.inputs, ensure_ascii=False) if not message else "",
            "expected_output": case.expected_output,
            "criteria": case.criteria,
            "expected_sources": "\n".join(case.expected_sources),
            "tags": ", ".join(case.tags),
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        inputs: Any = {}
        if cleaned.get("inputs"):
            try:
                inputs = json.loads(cleaned["inputs"])
            except ValueError as exc:
                self.add_error("inputs", f"Not valid JSON: {exc}")
                return cleaned
            if not isinstance(inputs, dict):
                self.add_error("inputs", "Give a JSON object.")
                return cleaned
        if cleaned.get("message"):
            inputs = {"message": cleaned["message"], **inputs}
        try:
            cleaned["case"] = CaseData(
                inputs=inputs,
                expected_output=cleaned.get("expected_output", ""),
                criteria=cleaned.get("criteria", ""),
                expected_sources=(cleaned.get("expected_sources") or "").splitlines(),
                tags=(cleaned.get("tags") or "").split(","),
            )
        except PydanticError as exc:
            for error in exc.errors():
                field = str(error["loc"][0]) if error["loc"] else None
                field = "message" if field == "inputs" else field
                self.add_error(field if field in self.fields else None, error["msg"])
        return cleaned


class ImportForm(forms.Form):
    file = forms.FileField(
        help_text=f"CSV or JSONL, at most {MAX_FILE_BYTES // 1024 // 1024} MB.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.jsonl"}),
    )


class VersionForm(forms.Form):
    note = forms.CharField(max_length=500, required=False)


SWAP_FIELDS = ("swap_model_node", "swap_model", "swap_prompt_node", "swap_prompt")


class EvalRunForm(forms.Form):
    """Start an evaluation: which cases, which version of the flow (with, optionally, a model
    or a library prompt swapped in), which evaluators (each config is JSON checked by the
    evaluator's pydantic model in ``evals.services``)."""

    cases = forms.ChoiceField(label="Cases", help_text="The current cases are frozen as a version.")
    flow_version = forms.TypedChoiceField(label="Version to evaluate", coerce=int)
    evaluators = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)

    def __init__(
        self,
        *args: Any,
        dataset: Dataset,
        flow_versions,
        models=(),
        prompt_versions=(),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["cases"].choices = [("current", "The current cases")] + [
            (str(v.id), f"Version {v.number} ({len(v.cases)} cases)")
            for v in dataset.versions.all()
        ]
        self.fields["flow_version"].choices = [(v.id, f"Version {v.number}") for v in flow_versions]
        kinds = evaluator_classes()
        self.fields["evaluators"].choices = [(k, cls.label) for k, cls in sorted(kinds.items())]
        for kind in sorted(kinds):
            self.fields[f"config_{kind}"] = forms.CharField(
                label=f"{kinds[kind].label} settings (JSON)",
                required=False,
                max_length=20_000,
                widget=forms.Textarea(attrs={"rows": 1}),
            )
        self.prompt_versions = {v.id: v for v in prompt_versions}
        self._swap_fields(flow_versions, models)
        self.order_fields(["cases", "flow_version", *SWAP_FIELDS])

    def _swap_fields(self, flow_versions, models) -> None:
        """The optional swaps: a catalog model into one LLM node (or into every node calling a
        model), a library prompt version into one node; choices are what the member may use
        and the LLM nodes of the versions offered (``evals.variants`` checks the chosen one)."""
        nodes: dict[str, str] = {}
        targets: set[str] = set()
        for version in flow_versions:
            for node in llm_nodes(version.graph):
                nodes.setdefault(node["id"], f"{node['id']} ({node_target(node)})")
                targets.add(node_target(node))
        if not nodes:
            return
        blank = [("", "No swap")]
        every = [(ALL + t, f"Every LLM node calling {t}") for t in sorted(targets)]
        self.fields["swap_model_node"] = forms.ChoiceField(
            label="Swap a model into",
            required=False,
            choices=blank + sorted(nodes.items()) + every,
        )
        self.fields["swap_model"] = forms.ChoiceField(
            label="Model swapped in",
            required=False,
            choices=blank + [(m.slug, f"{m.name} ({m.slug})") for m in models],
        )
        self.fields["swap_prompt_node"] = forms.ChoiceField(
            label="Swap a library prompt into",
            required=False,
            choices=blank + sorted(nodes.items()),
        )
        self.fields["swap_prompt"] = forms.TypedChoiceField(
            label="Prompt version swapped in",
            required=False,
            coerce=int,
            empty_value=None,
            choices=blank
            + [(str(i), f"{v.prompt.slug} v{v.number}") for i, v in self.prompt_versions.items()],
        )

    def swap(self) -> Swap:
        """The swap asked for (``Swap.empty`` when none)."""
        data = self.cleaned_data
        chosen = data.get("swap_prompt")
        return Swap(
            model_node=data.get("swap_model_node") or "",
            model=data.get("swap_model") or "",
            prompt_node=data.get("swap_prompt_node") or "",
            prompt_version=self.prompt_versions.get(chosen) if chosen else None,
        )

    def chosen(self) -> list[dict]:
        """The chosen evaluators with their configs; errors added to the form when malformed."""
        chosen = []
        for kind in self.cleaned_data["evaluators"]:
            text = self.cleaned_data.get(f"config_{kind}", "").strip()
            try:
                config = json.loads(text) if text else {}
            except json.JSONDecodeError as exc:
                self.add_error(f"config_{kind}", f"Not JSON: {exc}")
                continue
            if not isinstance(config, dict):
                self.add_error(f"config_{kind}", "Settings are a JSON object.")
                continue
            chosen.append({"kind": kind, "config": config})
        return chosen
