"""The route form: name, strategy, timeout and up to ``MAX_TARGETS`` models with weights."""

from __future__ import annotations

from django import forms

from catalog.models import Model, Route, Strategy
from catalog.services.routes import TargetSpec
from studio import access
from studio.slugs import SlugFromNameMixin

MAX_TARGETS = 6


class RouteForm(SlugFromNameMixin, forms.Form):
    name = forms.CharField(max_length=200)
    slug = forms.SlugField(max_length=100, help_text="Flows name the route by this.")
    strategy = forms.ChoiceField(choices=Strategy.choices, initial=Strategy.FALLBACK)
    timeout_s = forms.FloatField(
        min_value=0.1,
        max_value=600,
        initial=30,
        label="Timeout (s)",
        help_text="How long a model may take to its first token before the next is tried.",
    )
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def __init__(
        self,
        *args,
        user,
        models,
        route: Route | None = None,
        workspace_id: int | None = None,
        **kwargs,
    ):
        """``models``: the models offered (those the user may use in the workspace);
        ``workspace_id``: where a new route goes, so that a slug made from the name is free
        there (without it, a taken slug is the service's error)."""
        if route is not None:  # also when posted: the disabled slug reads its initial value
            kwargs.setdefault("initial", _initial(route))
        super().__init__(*args, **kwargs)
        self.user = user
        self.models = {str(m.id): m for m in models}
        choices = [("", "—")] + [(key, f"{m.name} ({m.slug})") for key, m in self.models.items()]
        for i in range(1, MAX_TARGETS + 1):
            self.fields[f"model_{i}"] = forms.ChoiceField(
                choices=choices, required=False, label=f"Model {i}"
            )
            self.fields[f"weight_{i}"] = forms.IntegerField(
                min_value=0, max_value=1000, initial=1, required=False, label=f"Weight {i}"
            )
        if route is not None:
            self.fields["slug"].disabled = True
        if workspace_id is not None:
            self.slug_taken = Route.objects.filter(workspace_id=workspace_id)
        self.slug_from_name_setup()

    def target_rows(self) -> list[tuple]:
        return [(self[f"model_{i}"], self[f"weight_{i}"]) for i in range(1, MAX_TARGETS + 1)]

    def clean(self):
        cleaned = super().clean()
        targets: list[TargetSpec] = []
        for i in range(1, MAX_TARGETS + 1):
            key = cleaned.get(f"model_{i}")
            if not key:
                continue
            model: Model = self.models[key]
            if not access.has_perm(self.user, model, "use"):
                # Django's own answer for an unknown choice: no telling what exists.
                self.add_error(
                    f"model_{i}",
                    f"Select a valid choice. {key} is not one of the available choices.",
                )
                continue
            weight = cleaned.get(f"weight_{i}")
            targets.append(TargetSpec(model=model, weight=1 if weight is None else weight))
        if not targets:
            raise forms.ValidationError("Choose at least one model.")
        cleaned["targets"] = targets
        return cleaned


def _initial(route: Route) -> dict:
    initial = {
        "slug": route.slug,
        "name": route.name,
        "strategy": route.strategy,
        "timeout_s": route.timeout_s,
        "description": route.description,
    }
    for i, target in enumerate(route.targets.all()[:MAX_TARGETS], start=1):
        initial[f"model_{i}"] = str(target.model_id)
        initial[f"weight_{i}"] = target.weight
    return initial
