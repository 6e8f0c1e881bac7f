"""Figures as the benchmarks compute and print them: percentiles and sizes. Free of side
effects (no settings, no var dir), so every benchmark may import it."""

from __future__ import annotations


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100), interpolated linearly between closest ranks."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:,.0f} MB"
