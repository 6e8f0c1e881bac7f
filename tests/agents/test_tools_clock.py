"""The current time tool: the real clock in the zone asked for, the author's default zone, and a
clear answer for a zone that does not exist."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from asgiref.sync import async_to_sync
from pydantic import ValidationError

from agents.tools import tools
from agents.tools.base import ToolContext

CLOCK = tools()["current_time"]


async def _no_engine(_):
    raise AssertionError


def now_in(timezone: str | None, **config):
    ctx = ToolContext(workspace_id=1, user_id=None, engine_for=_no_engine)
    return async_to_sync(CLOCK.arun)(ctx, CLOCK.Config(**config), CLOCK.Params(timezone=timezone))


@pytest.mark.parametrize(
    ("timezone", "default", "expected"),
    [
        ("Asia/Kolkata", "UTC", "Asia/Kolkata"),  # +05:30 all year
        (None, "Asia/Tokyo", "Asia/Tokyo"),  # +09:00, the author's default
        (None, "UTC", "UTC"),
    ],
)
def test_the_time_is_now_in_the_zone_asked_for(timezone, default, expected):
    result = now_in(timezone, default_timezone=default)
    shown = datetime.fromisoformat(result.details["iso"])
    now = datetime.now(UTC)
    assert abs(shown - now) < timedelta(seconds=5)
    assert shown.utcoffset() == now.astimezone(ZoneInfo(expected)).utcoffset()
    assert result.details["weekday"] == shown.strftime("%A")
    assert result.details["timezone"] == expected
    assert result.content == f"It is {shown:%A}, {result.details['iso']} ({expected})."


@pytest.mark.parametrize("timezone", ["Mars/Olympus", "../../etc/passwd", "Europe/", "utc\x00"])
def test_an_unknown_zone_is_refused_with_a_hint(timezone):
    result = now_in(timezone)
    assert result.content.startswith(f"Unknown time zone {timezone!r}")
    assert "IANA" in result.content


def test_the_author_cannot_set_an_unknown_default_zone():
    with pytest.raises(ValidationError, match="not a time zone"):
        CLOCK.Config(default_timezone="Nowhere/Land")
