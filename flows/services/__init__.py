"""Writes of flows (``flows.py``) and of runs (``runs.py``)."""

from flows.services.flows import (
    flow_create,
    flow_delete,
    flow_publish,
    flow_settings_change,
    flow_version_save,
)
from flows.services.runs import (
    run_answer,
    run_create,
    run_fail,
    run_inputs_clean,
    runs_fail_stale,
)

__all__ = [
    "flow_create",
    "flow_delete",
    "flow_publish",
    "flow_settings_change",
    "flow_version_save",
    "run_answer",
    "run_create",
    "run_fail",
    "run_inputs_clean",
    "runs_fail_stale",
]
