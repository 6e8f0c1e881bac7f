"""A node's policy on failure, the same for every node type: retries with backoff, then fail,
use the default outputs, or take the error branch (the extra ``error`` output)."""

from __future__ import annotations

from dataclasses import replace

from flows.nodes.base import NodeOutput
from flows.schema import ERROR_PORT, Node


def succeeded(node: Node, output: NodeOutput) -> NodeOutput:
    """A success; with an error branch, that branch is not taken."""
    if node.policy.on_error == "branch" and ERROR_PORT not in output.skip:
        return replace(output, skip=[*output.skip, ERROR_PORT])
    return output


def handled(node: Node, reason: str) -> NodeOutput | None:
    """What a failure becomes under the node's policy; None when it fails the node."""
    if node.policy.on_error == "default":
        return NodeOutput(
            outputs=dict(node.policy.default), details={"handled": "default", "error": reason}
        )
    if node.policy.on_error == "branch":
        others = [port for port in node.outputs if port != ERROR_PORT]
        return NodeOutput(outputs={ERROR_PORT: reason}, skip=others, details={"handled": "branch"})
    return None


def retry_delay(node: Node, attempts: int) -> float | None:
    """Seconds to wait before attempt ``attempts + 1``, or None when no retry is left."""
    if attempts > node.policy.retries:
        return None
    return node.policy.retry_backoff_s * (2 ** (attempts - 1))


def timeout(node: Node) -> float | None:
    return node.policy.timeout_s
