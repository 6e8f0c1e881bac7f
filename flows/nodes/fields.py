"""The field list shared by the input and output nodes' configs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flows.nodes.base import PortType


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    type: PortType = "text"
    label: str = ""
    required: bool = True


def repeated(names: list[str]) -> list[str]:
    """The names that stand more than once, sorted (each node type words its own error)."""
    return sorted({n for n in names if names.count(n) > 1})


def unique_names(fields: list[FieldSpec]) -> list[FieldSpec]:
    duplicates = repeated([f.name for f in fields])
    if duplicates:
        raise ValueError(f"duplicate field names: {', '.join(duplicates)}")
    return fields


class FieldsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fields: list[FieldSpec] = Field(min_length=1, max_length=50)

    _unique = field_validator("fields")(unique_names)
