"""``{{ eval_run|eval_label }}``: what an evaluation ran, with any swap (``evals.variants``)."""

from __future__ import annotations

from django import template

from evals.models import EvalRun
from evals.variants import eval_run_label

register = template.Library()


@register.filter
def eval_label(eval_run: EvalRun) -> str:
    return eval_run_label(eval_run)
