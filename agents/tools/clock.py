"""The current date and time: what a model cannot know by itself, in the time zone it asks for
(an IANA name such as Europe/Paris), else the author's default, else UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from agents.tools import register
from agents.tools.base import Tool, ToolConfig, ToolContext, ToolParams, ToolResult

# An IANA name's shape (Area/Location, UTC, Etc/GMT+3): checked before the zone database is
# opened, so a path-like name never reaches it.
_ZONE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+){0,2}$")


def zone(name: str) -> ZoneInfo | None:
    """The time zone called ``name``, or None when there is none by that name."""
    if not _ZONE_NAME.match(name):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


class ClockParams(ToolParams):
    timezone: str | None = Field(
        default=None,
        max_length=64,
        description="An IANA time zone such as Europe/Paris or America/New_York; "
        "leave it out for the default",
    )


class ClockConfig(ToolConfig):
    default_timezone: str = Field(default="UTC", max_length=64)

    @field_validator("default_timezone")
    @classmethod
    def _known(cls, name: str) -> str:
        if zone(name) is None:
            raise ValueError(f"{name!r} is not a time zone (use an IANA name like Europe/Paris)")
        return name


@register
class Clock(Tool):
    name = "current_time"
    description = (
        "The current date and time (ISO 8601) and the weekday, in a time zone you may name."
    )
    Params = ClockParams
    Config = ClockConfig

    async def arun(self, ctx: ToolContext, config: ClockConfig, params: ClockParams) -> ToolResult:
        name = params.timezone or config.default_timezone
        tz = zone(name)
        if tz is None:
            return ToolResult(
                content=f"Unknown time zone {name!r}: use an IANA name such as Europe/Paris, "
                "America/New_York or UTC.",
                details={"error": "unknown time zone"},
            )
        now = datetime.now(UTC).astimezone(tz)
        iso = now.isoformat(timespec="seconds")
        weekday = now.strftime("%A")
        return ToolResult(
            content=f"It is {weekday}, {iso} ({name}).",
            details={"timezone": name, "iso": iso, "weekday": weekday},
        )
