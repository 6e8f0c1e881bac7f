"""Writes of the catalog's model entries and their LoRA adapters.

Every value is validated here, whoever calls (a form, a seed command, a test): a refused value
raises Django's ``ValidationError`` keyed by field name, so a form can show it next to its field.

A credential goes where its model's engine settings say (``base_url``). So choosing a model's
credential, and changing the engine or settings of a model that has one, needs the right to
manage credentials (``catalog.selectors.credentials.MANAGE_CREDENTIALS``): an "edit" grant on a
model must not let its holder point the workspace's API key at a server of theirs. ``actor``
None is a trusted caller (a management command, the studio itself).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from catalog import schemas
from catalog.bundled import ALL_MINILM, BUNDLED_PREFIX
from catalog.engines import engine_class
from catalog.models import Credential, LoraAdapter, Model, Source, Status, Task
from catalog.selectors.credentials import may_manage_credentials
from workspaces.audit import audit_record, snapshot
from workspaces.models import Workspace

# What the audit log records of an entry. Never a secret: the credential is its id.
MODEL_FIELDS = (
    "slug",
    "name",
    "task",
    "source",
    "engine",
    "weights",
    "revision",
    "quantization",
    "dtype",
    "settings",
    "context_length",
    "sampling",
    "price_input",
    "price_output",
    "tags",
    "status",
    "credential",
    "description",
    "card",
)
ADAPTER_FIELDS = ("base", "slug", "name", "weights", "description")

DTYPES = ("auto", "float16", "bfloat16", "float32")
PRICE_QUANTUM = Decimal("0.0001")  # the price columns' 4 decimal places


def _snapshot(model: Model) -> dict[str, Any] | None:
    data = snapshot(model, MODEL_FIELDS)
    # Prices are Decimals, which JSON cannot hold; their text keeps every digit.
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in data.items()}


def _clean(values: dict[str, Any], *, instance: Model, workspace_id: int | None) -> dict:
    """``values`` as they will be stored, or ValidationError naming each bad field.

    ``instance`` gives the values not being changed (the engine that settings are checked
    against); ``workspace_id`` is the entry's workspace (None: shared).
    """
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}

    def attempt(name: str, clean) -> None:
        try:
            cleaned[name] = clean()
        except ValidationError as exc:
            errors.setdefault(name, []).extend(exc.messages)

    for name, value in values.items():
        if name == "settings":
            continue  # below, once the engine is known
        if name == "sampling":
            attempt(name, lambda v=value: schemas.sampling_clean(v or {}))
        elif name == "tags":
            attempt(name, lambda v=value: schemas.tags_clean(v))
        elif name == "credential":
            attempt(name, lambda v=value: _credential_clean(v, workspace_id))
        elif name == "dtype":
            attempt(name, lambda v=value: _dtype_clean(v))
        elif name == "context_length":
            attempt(name, lambda v=value: _context_length_clean(v, instance))
        else:
            # The model field's own checks: choices, lengths, slug format, decimal digits.
            field = Model._meta.get_field(name)
            attempt(name, lambda f=field, v=value: f.clean(v, instance))

    if "engine" in values or "settings" in values:
        engine = cleaned.get("engine", values.get("engine", instance.engine))
        if "engine" in values:
            try:
                engine_class(engine)
            except KeyError:
                errors.setdefault("engine", []).append(f"Unknown engine {engine!r}.")
        if "engine" not in errors:
            settings = values.get("settings", instance.settings)
            attempt("settings", lambda: schemas.engine_settings_clean(engine, settings or {}))

    checked = ("engine", "task")
    if any(name in values for name in checked) and not any(errors.get(n) for n in checked):
        _task_check(
            engine=cleaned.get("engine", instance.engine),
            task=cleaned.get("task", instance.task),
            field="task" if "task" in values else "engine",
            errors=errors,
        )

    if "slug" in cleaned and not errors.get("slug"):
        taken = Model.objects.filter(workspace_id=workspace_id, slug=cleaned["slug"])
        if instance.pk is not None:
            taken = taken.exclude(pk=instance.pk)
        if taken.exists():
            errors["slug"] = [f"A model with the slug {cleaned['slug']!r} already exists here."]

    for name in ("price_input", "price_output"):
        if cleaned.get(name) is None:
            continue
        if cleaned[name] < 0:
            errors.setdefault(name, []).append("A price cannot be negative.")
        # As the column stores it, so the returned entry and its audit entry read as it will.
        cleaned[name] = cleaned[name].quantize(PRICE_QUANTUM)

    if errors:
        raise ValidationError(errors)
    return cleaned


def _task_check(*, engine: str, task: str, field: str, errors: dict[str, list[str]]) -> None:
    """Add an error under ``field`` when ``engine`` does not serve ``task``: an entry the worker
    could never use is refused when it is saved, not when a flow first calls it."""
    try:
        served = engine_class(engine).tasks
    except KeyError:
        return  # an unknown engine is reported on its own field
    if task not in served:
        errors.setdefault(field, []).append(
            f"The {engine} engine serves {', '.join(sorted(served))}; not {task}."
        )


def _credential_clean(credential: Credential | None, workspace_id: int | None):
    # A workspace's secret must never serve another workspace's (or a shared) entry.
    if credential is not None and credential.workspace_id != workspace_id:
        raise ValidationError("The credential must belong to the model's workspace.")
    return credential


# What decides where a model's credential is sent.
ENDPOINT_FIELDS = ("engine", "settings")


def _credential_guard(
    cleaned: dict[str, Any], *, instance: Model, workspace_id: int | None, actor
) -> None:
    """ValidationError unless ``actor`` may make these changes to a model's credential or to
    where a credential-bearing model sends it (see the module's docstring)."""
    if actor is None or may_manage_credentials(actor, workspace_id):
        return
    errors: dict[str, list[str]] = {}
    credential = cleaned["credential"] if "credential" in cleaned else instance.credential
    if credential is not None and credential.pk != instance.credential_id:
        errors["credential"] = [
            "Only an admin who manages credentials may choose a model's credential."
        ]
    elif credential is not None and instance.pk is not None:
        for name in ENDPOINT_FIELDS:
            if name in cleaned and cleaned[name] != getattr(instance, name):
                errors[name] = [
                    f"This model calls with the credential {credential.name!r}: only an admin "
                    f"who manages credentials may change its {name} (or remove the credential "
                    "first)."
                ]
    elif _remote(cleaned.get("engine", instance.engine)) or _remote(instance.engine):
        # Without a key there is nothing to leak, but the endpoint may lie in a network the
        # operator trusts for model fleets only (STUDIO_EGRESS_ALLOW_MODELS): admins choose it.
        for name in ENDPOINT_FIELDS:
            if name in cleaned and (
                instance.pk is None or cleaned[name] != getattr(instance, name)
            ):
                errors[name] = [
                    f"Only an admin who manages credentials may set where a remote model calls "
                    f"(its {name})."
                ]
    if errors:
        raise ValidationError(errors)


def _remote(engine: str | None) -> bool:
    try:
        return bool(engine) and engine_class(engine).remote
    except KeyError:
        return False  # an unknown engine is refused on its own field


def _dtype_clean(dtype: str | None) -> str:
    dtype = dtype or ""
    if dtype and dtype not in DTYPES:
        raise ValidationError(f"The dtype must be one of {', '.join(DTYPES)} (or empty).")
    return dtype


def _context_length_clean(value: Any, instance: Model) -> int:
    value = Model._meta.get_field("context_length").clean(value, instance)
    if value < 1:
        raise ValidationError("The context length must be at least 1 token.")
    return value


def model_create(
    *,
    slug: str,
    name: str,
    engine: str,
    weights: str = "",
    settings: dict | None = None,
    workspace: Workspace | None = None,
    task: str = Task.CHAT,
    context_length: int = 2048,
    source: str = Source.OPEN_WEIGHT,
    revision: str = "",
    quantization: str = "",
    dtype: str = "",
    sampling: dict | None = None,
    price_input: Decimal | str | int = Decimal("0"),
    price_output: Decimal | str | int = Decimal("0"),
    tags: list[str] | str | None = None,
    status: str = Status.AVAILABLE,
    credential: Credential | None = None,
    description: str = "",
    card: str = "",
    actor=None,
) -> Model:
    """A catalog entry of ``workspace`` (None: shared with every workspace), audited.

    Raises ValidationError keyed by field: engine settings are checked by the engine's own
    schema, sampling by ``catalog.schemas.Sampling``, and the credential must be the workspace's
    and ``actor`` (unless None) must manage credentials to attach one.
    """
    workspace_id = workspace.id if workspace is not None else None
    model = Model(workspace_id=workspace_id)
    values = {
        "slug": slug,
        "name": name,
        "engine": engine,
        "weights": weights,
        "settings": settings or {},
        "task": task,
        "context_length": context_length,
        "source": source,
        "revision": revision,
        "quantization": quantization,
        "dtype": dtype,
        "sampling": sampling or {},
        "price_input": price_input,
        "price_output": price_output,
        "tags": tags,
        "status": status,
        "credential": credential,
        "description": description,
        "card": card,
    }
    cleaned = _clean(values, instance=model, workspace_id=workspace_id)
    _credential_guard(cleaned, instance=model, workspace_id=workspace_id, actor=actor)
    for field, value in cleaned.items():
        setattr(model, field, value)
    try:
        with transaction.atomic():
            model.save()
            audit_record(
                workspace=workspace_id,
                actor=actor,
                action="model.create",
                target=model,
                after=_snapshot(model),
            )
    except IntegrityError as exc:
        # The slug was free when checked and taken since (a form submitted twice).
        raise ValidationError(
            {"slug": f"A model with the slug {slug!r} already exists here."}
        ) from exc
    return model


def model_update(*, model: Model, actor=None, **changes) -> Model:
    """Change fields of a catalog entry, validated as in ``model_create``; audited with the
    entry before and after. A changed engine re-checks the settings against it. Choosing a
    credential, or changing the engine or settings of an entry that has one, needs ``actor``
    (unless None) to manage credentials."""
    unknown = set(changes) - set(MODEL_FIELDS)
    if unknown:
        raise TypeError(f"not catalog fields: {', '.join(sorted(unknown))}")
    cleaned = _clean(changes, instance=model, workspace_id=model.workspace_id)
    _credential_guard(cleaned, instance=model, workspace_id=model.workspace_id, actor=actor)
    with transaction.atomic():
        before = _snapshot(model)
        for name, value in cleaned.items():
            setattr(model, name, value)
        model.save()
        audit_record(
            workspace=model.workspace_id,
            actor=actor,
            action="model.change",
            target=model,
            before=before,
            after=_snapshot(model),
        )
    return model


def model_delete(*, model: Model, actor=None) -> None:
    """Delete an entry with its adapters and route targets (usage rows keep their slug)."""
    with transaction.atomic():
        audit_record(
            workspace=model.workspace_id,
            actor=actor,
            action="model.delete",
            target=model,
            before=_snapshot(model),
        )
        model.delete()


def adapter_create(
    *,
    base: Model,
    slug: str,
    name: str,
    weights: str,
    description: str = "",
    actor=None,
) -> LoraAdapter:
    """A LoRA adapter on ``base``, audited. Refused (ValidationError) when ``base``'s engine
    cannot serve adapters, or the slug is taken on this base."""
    try:
        supports = engine_class(base.engine).supports_adapters
    except KeyError:
        supports = False
    if not supports:
        raise ValidationError(
            f"The {base.engine} engine of {base.name} cannot serve LoRA adapters; "
            "adapters need an engine that supports them (such as vLLM)."
        )
    adapter = LoraAdapter(base=base, slug=slug, name=name, weights=weights, description=description)
    errors: dict[str, list[str]] = {}
    for field in ("slug", "name", "weights", "description"):
        try:
            setattr(
                adapter,
                field,
                LoraAdapter._meta.get_field(field).clean(getattr(adapter, field), adapter),
            )
        except ValidationError as exc:
            errors[field] = exc.messages
    if "slug" not in errors and base.adapters.filter(slug=adapter.slug).exists():
        errors["slug"] = [f"{base.name} already has an adapter {adapter.slug!r}."]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        adapter.save()
        audit_record(
            workspace=base.workspace_id,
            actor=actor,
            action="adapter.create",
            target=adapter,
            after=snapshot(adapter, ADAPTER_FIELDS),
        )
    return adapter


def adapter_delete(*, adapter: LoraAdapter, actor=None) -> None:
    with transaction.atomic():
        audit_record(
            workspace=adapter.base.workspace_id,
            actor=actor,
            action="adapter.delete",
            target=adapter,
            before=snapshot(adapter, ADAPTER_FIELDS),
        )
        adapter.delete()


# The studio's default embedding model: small, CPU-friendly, shipped in a package (no download).
EMBEDDING_DEFAULT = {
    "slug": "all-minilm-l6-v2",
    "name": "all-MiniLM-L6-v2 (CPU)",
    "task": Task.EMBEDDING,
    "engine": "sentence_transformers",
    "weights": f"{BUNDLED_PREFIX}{ALL_MINILM}",
    "context_length": 256,
    "tags": ["embedding", "bundled"],
    "description": "all-MiniLM-L6-v2 sentence embeddings (384 dimensions), bundled with the "
    "studio and run on the CPU.",
}


def embedding_model_default() -> Model:
    """The shared catalog entry of the bundled MiniLM embedder, created on first call.

    Idempotent and safe under concurrency: the shared-slug unique constraint lets one creator
    win; a loser's insert fails (``model_create`` reports it as a slug ValidationError) and it
    returns the winner's entry. An entry already there is returned as it is, even if an
    administrator has edited it since.
    """
    shared = Model.objects.filter(workspace__isnull=True, slug=EMBEDDING_DEFAULT["slug"])
    if (model := shared.first()) is not None:
        return model
    try:
        return model_create(**EMBEDDING_DEFAULT)
    except ValidationError:
        # Another process created it since the read above; any other refusal is a real error.
        if (model := shared.first()) is not None:
            return model
        raise
