"""The guardrail node: lets a text through with its personal data masked, or blocks it.

A text passes on ``text`` (emails, phone numbers, card numbers, IP addresses and IBANs masked
as ``[email]``…) and ``blocked`` is skipped; a text that is too short or too long, has a denied
word (whole word, any case) or matches a denied pattern goes to ``blocked`` with the reason, and
``text`` is skipped. The checks read the text as it came; masking applies to what passes.

The node runs inline on a worker thread, so its work is bounded: a text longer than
``MAX_TEXT`` characters is blocked unread (checking a part would let the rest through), the
denied words are found in one pass over the text, and the words and patterns share one time
budget (``PATTERN_BUDGET_S``), past which the text is blocked too.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Literal

import regex
from pydantic import Field, field_validator, model_validator

from flows.nodes import register
from flows.nodes.base import NodeConfig, NodeOutput, NodeType, PortType
from flows.runtime.conditions import (
    PatternBudget,
    PatternBudgetSpent,
    pattern_compile,
    pattern_search,
    to_text,
)

PiiKind = Literal["email", "phone", "credit_card", "ip", "iban"]
# The longest text the node checks. 500 denied words scan 200,000 characters in about 0.2 s and
# masking takes less; the 9 MB a run could pass took minutes.
MAX_TEXT = 200_000
# Masked in this order: a card or an IBAN is not left for the phone pattern to half-mask.
PII_ORDER: tuple[PiiKind, ...] = ("email", "iban", "credit_card", "ip", "phone")

# Each pattern starts only where a match could begin (a lookbehind), so that a long run of
# letters or digits is scanned once, not once per character.
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"(?<!\w)\d(?:[ \-]?\d){12,18}(?!\w)")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .\-]?)?(?:\(\d{1,4}\)[ .\-]?)?\d{2,4}(?:[ .\-]?\d{2,4}){1,4}(?!\w)"
)
# What looks like a phone number but reads as a date or an amount: 2024-05-17, 1 250 000.
_NOT_PHONE = re.compile(r"\d{1,4}[.\-/]\d{1,2}[.\-/]\d{1,4}|\d{1,3}(?:[ .,]\d{3})+")


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        number = int(char)
        if index % 2:
            number = number * 2 - 9 if number > 4 else number * 2
        total += number
    return total % 10 == 0


def _iban_valid(text: str) -> bool:
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _card(match: re.Match) -> bool:
    digits = re.sub(r"\D", "", match.group())
    return 13 <= len(digits) <= 19 and _luhn(digits)


def _ip(match: re.Match) -> bool:
    try:
        ipaddress.ip_address(match.group())
    except ValueError:
        return False
    return True


def _phone(match: re.Match) -> bool:
    found = match.group()
    digits = sum(c.isdigit() for c in found)
    if not 7 <= digits <= 15:
        return False
    # A bare run of digits is an order or account number more often than a phone number.
    if not found.startswith(("+", "(")) and found.isdigit():
        return False
    return not _NOT_PHONE.fullmatch(found)


PII: dict[PiiKind, list[tuple[re.Pattern, Callable[[re.Match], bool]]]] = {
    "email": [(_EMAIL, lambda m: True)],
    "iban": [(_IBAN, lambda m: _iban_valid(m.group()))],
    "credit_card": [(_CARD, _card)],
    "ip": [(_IPV4, _ip), (_IPV6, lambda m: any(c.isalnum() for c in m.group()) and _ip(m))],
    "phone": [(_PHONE, _phone)],
}


def mask_pii(text: str, kinds: list[PiiKind]) -> tuple[str, dict[str, int]]:
    """``text`` with each found item of ``kinds`` replaced by ``[kind]``, and how many of each."""
    counts: dict[str, int] = {}
    for kind in PII_ORDER:
        if kind not in kinds:
            continue
        for pattern, valid in PII[kind]:

            def replace(match: re.Match, kind: str = kind, valid=valid) -> str:
                if not valid(match):
                    return match.group()
                counts[kind] = counts.get(kind, 0) + 1
                return f"[{kind}]"

            text = pattern.sub(replace, text)
    return text, counts


class GuardrailConfig(NodeConfig):
    min_length: int = Field(
        default=0, ge=0, title="Minimum length", description="Block texts with fewer characters."
    )
    max_length: int | None = Field(
        default=None,
        ge=1,
        title="Maximum length",
        description="Block texts with more characters; empty: no limit.",
    )
    deny_words: list[str] = Field(
        default_factory=list,
        max_length=500,
        title="Denied words",
        description="Block texts with any of these words or phrases (whole words, any case).",
    )
    deny_patterns: list[str] = Field(
        default_factory=list,
        max_length=50,
        title="Denied patterns",
        description="Block texts that match any of these regular expressions.",
    )
    mask_pii: list[PiiKind] = Field(
        default_factory=lambda: list(PII_ORDER),
        title="Mask personal data",
        description="Replace these in the text that passes, e.g. an email by [email].",
    )
    message: str = Field(
        default="",
        max_length=2_000,
        title="Blocked message",
        description="What the blocked branch gives; {reason} is replaced by the reason. "
        "Empty: the reason itself.",
    )

    @field_validator("deny_words")
    @classmethod
    def _words(cls, words: list[str]) -> list[str]:
        cleaned = [w.strip() for w in words]
        for word in cleaned:
            if not word or len(word) > 100:
                raise ValueError(f"{word!r}: a denied word has 1 to 100 characters")
        return cleaned

    @field_validator("deny_patterns")
    @classmethod
    def _patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            pattern_compile(pattern)  # its ValueError names the pattern
        return patterns

    @model_validator(mode="after")
    def _lengths(self) -> GuardrailConfig:
        if self.max_length is not None and self.max_length < self.min_length:
            raise ValueError("max_length is below min_length")
        return self


@lru_cache(maxsize=64)
def _words_pattern(words: tuple[str, ...]) -> regex.Pattern:
    # One alternation, one group per word in the list's order: at each place in the text the
    # first listed word that fits is the one matched. Lookarounds rather than \b, so that a word
    # that starts or ends with punctuation works.
    alternatives = "|".join(f"({regex.escape(word)})" for word in words)
    return regex.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", regex.IGNORECASE)


def _denied_word(words: list[str], text: str, budget: PatternBudget) -> str | None:
    """The first of ``words`` (in the list's order) that ``text`` contains, in one pass.

    Overlapped, so that a word starting inside another's match (``card`` in ``credit card``)
    is seen too; the whole scan may take what is left of ``budget``."""
    pattern = _words_pattern(tuple(words))

    def scan(timeout: float) -> int | None:
        first = None
        for match in pattern.finditer(text, overlapped=True, timeout=timeout):
            first = match.lastindex if first is None else min(first, match.lastindex)
            if first == 1:
                break
        return first

    first = budget.run(scan, limit=budget.seconds)
    return None if first is None else words[first - 1]


def violation(config: GuardrailConfig, text: str) -> str | None:
    """Why ``text`` is blocked, or None if it passes."""
    if len(text) < config.min_length:
        return f"the text is shorter than {config.min_length} characters"
    if config.max_length is not None and len(text) > config.max_length:
        return f"the text is longer than {config.max_length} characters"
    if len(text) > MAX_TEXT:
        return f"the text is longer than {MAX_TEXT} characters, the most a guardrail checks"
    budget = PatternBudget()
    try:
        word = _denied_word(config.deny_words, text, budget) if config.deny_words else None
        if word is not None:
            return f"the text contains the denied word {word!r}"
        for pattern in config.deny_patterns:
            try:
                if pattern_search(pattern, text, budget):
                    return f"the text matches the denied pattern {pattern!r}"
            except TimeoutError:
                # Closed, not open: a text that makes a pattern crawl must not slip through.
                return f"the denied pattern {pattern!r} took too long on this text"
    except PatternBudgetSpent:
        return f"the denied words and patterns took longer than {budget.seconds:g} s on this text"
    return None


@register
class GuardrailNode(NodeType):
    type = "guardrail"
    label = "Guardrail"
    group = "Logic"
    description = "Block texts by length, words or patterns; mask personal data in the rest."
    Config = GuardrailConfig

    def input_ports(self, config: GuardrailConfig) -> dict[str, PortType]:
        return {"text": "text"}

    def output_ports(self, config: GuardrailConfig) -> dict[str, PortType]:
        return {"text": "text", "blocked": "text"}

    def run(self, config: GuardrailConfig, inputs: dict[str, Any], run_inputs: dict) -> NodeOutput:
        text = to_text(inputs.get("text"))
        reason = violation(config, text)
        if reason is not None:
            shown = config.message.replace("{reason}", reason) if config.message else reason
            return NodeOutput(
                outputs={"blocked": shown}, skip=["text"], details={"blocked": reason}
            )
        masked, counts = mask_pii(text, config.mask_pii)
        return NodeOutput(outputs={"text": masked}, skip=["blocked"], details={"masked": counts})
