"""Template filters that show numbers in human units (durations)."""

from __future__ import annotations

from django import template

register = template.Library()

EMPTY = "–"


@register.filter
def duration(milliseconds: float | int | str | None) -> str:
    """A duration given in milliseconds, in the unit a person reads best: "0.4 ms", "850 ms",
    "1.2 s", "2 min 5 s", "1 h 3 min". None or a value that is not a number gives "–"."""
    try:
        ms = float(milliseconds)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return EMPTY
    if ms != ms or ms < 0:  # NaN, or a clock that went backwards
        return EMPTY
    if ms == 0:
        return "0 ms"
    if ms < 1:
        return f"{ms:.1f} ms" if round(ms, 1) > 0 else "<0.1 ms"
    # Rounding decides the unit: 999.7 ms reads "1.0 s", not "1000 ms".
    if round(ms) < 1000:
        return f"{round(ms)} ms"
    seconds = ms / 1000
    if round(seconds, 1) < 60:
        return f"{seconds:.1f} s"
    total = round(seconds)
    if total < 3600:
        minutes, rest = divmod(total, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(total, 3600)
    minutes = rest // 60
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
