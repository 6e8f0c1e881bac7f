"""The code sandbox: runs a user's Python in a separate, namespaced, resource-limited process.

``run_python`` is the one entry point (the code node's). ``process.py`` starts and bounds the
process; ``runner.py`` is the text that runs inside it (stdlib only, never imported here).
"""

from __future__ import annotations

from flows.runtime.sandbox.process import (
    SandboxError,
    SandboxResult,
    SandboxUnavailable,
    run_python,
)

__all__ = ["SandboxError", "SandboxResult", "SandboxUnavailable", "run_python"]
