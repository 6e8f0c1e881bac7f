"""The duration filter: milliseconds in the unit a person reads best."""

from __future__ import annotations

import pytest
from django.template import Context, Template

from studio.templatetags.studio_format import duration


@pytest.mark.parametrize(
    ("ms", "shown"),
    [
        (None, "–"),
        ("not a number", "–"),
        (0, "0 ms"),
        (0.4, "0.4 ms"),
        (0.01, "<0.1 ms"),
        (12.34, "12 ms"),
        (850, "850 ms"),
        (999, "999 ms"),
        (999.7, "1.0 s"),
        (1236, "1.2 s"),
        (59_990, "1 min"),
        (65_000, "1 min 5 s"),
        (125_000, "2 min 5 s"),
        (3_780_000, "1 h 3 min"),
    ],
)
def test_duration_reads_in_human_units(ms, shown):
    assert duration(ms) == shown


def test_duration_filter_loads_in_a_template():
    rendered = Template("{% load studio_format %}{{ value|duration }}").render(
        Context({"value": 1236})
    )
    assert rendered == "1.2 s"
