"""The agent loop's strategies: how tools are offered to a model and its answers read.

``AUTO`` picks native function calling when the model's engine parses tool calls, else ReAct.
The catalog's engines do not declare that capability, so it is read here: a remote
OpenAI-compatible endpoint takes ``tools`` (the protocol has them), vLLM does when its entry
names a ``tool_call_parser``; an engine may also declare ``supports_tools`` itself.
"""

from __future__ import annotations

from typing import Any

from agents.spec import Strategy
from agents.strategies.base import AgentStrategy
from agents.strategies.native import Native
from agents.strategies.react import React
from catalog.engines import engine_class

STRATEGIES: dict[str, type[AgentStrategy]] = {Native.name: Native, React.name: React}


def supports_tools(model: Any) -> bool:
    """Whether ``model``'s engine returns native tool calls."""
    declared = getattr(engine_class(model.engine), "supports_tools", None)
    if declared is not None:
        return bool(declared)
    if model.engine == "openai_compatible":
        return True
    if model.engine == "vllm":
        return bool((model.settings or {}).get("tool_call_parser"))
    return False


def strategy_for(chosen: Strategy, model: Any) -> AgentStrategy:
    """The strategy to run: the author's choice, or for ``AUTO`` what ``model`` supports."""
    if chosen == Strategy.AUTO:
        chosen = Strategy.NATIVE if supports_tools(model) else Strategy.REACT
    return STRATEGIES[chosen]()
