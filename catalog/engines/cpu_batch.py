"""Step batching for the CPU engine: one thread decodes every running request in one forward pass.

Requests wait in a queue; between two decode steps the thread admits those that fit (a free slot
each, and together at most ``max_prefill_tokens`` padded prompt tokens, so a burst of long
prompts is read over several rounds with decode steps between them). The admitted prompts are
read in one forward pass, left-padded to the longest, so each gets its first token after that one
pass; their key/value cache rows then join the running batch, left-padded to a common length.
Each decode step feeds every running sequence its last token at its own position; a sequence
leaves the batch when it ends (an end-of-sequence token or its ``max_tokens``) or when its
consumer cancels it.

The batch's cache is a transformers ``DynamicCache`` whose layers hold ``[batch, heads, length,
head_dim]`` tensors; padded slots are masked by the 2-D attention mask, and positions are passed
explicitly (``position_ids``), so a padded row computes what it would alone, up to float
rounding (a batched matrix product may sum in another order than a single row's).

This module is found by the engine registry's discovery, so torch is imported inside functions.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# How long ``close`` waits for the generation thread to finish its current step.
CLOSE_TIMEOUT_S = 30.0
# Padded prompt tokens one admission round may read (see ``Batcher``). On SmolLM2-135M a token
# costs about as much in a pass of 4 prompts as of 26, so a small budget loses little
# throughput; it gives a burst's first requests their first token sooner and keeps decoding
# the running batch while the rest of the burst waits.
DEFAULT_MAX_PREFILL_TOKENS = 256


@dataclass(frozen=True)
class Finished:
    """The last item a sequence delivers when it ends normally."""

    output_tokens: int
    finish_reason: str  # "stop" (end-of-sequence token) or "length" (max_tokens reached)


@dataclass(eq=False)
class Sequence:
    """One request inside the batcher.

    ``deliver`` is called from the generation thread with each new token id, then with one
    ``Finished`` or one exception; it must be thread-safe and never block. ``cancelled`` is set
    by the consumer's thread; the generation thread drops the sequence at its next step.
    """

    prompt_ids: list[int]
    max_tokens: int
    temperature: float
    top_p: float
    deliver: Callable[[object], None]
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    cancelled: bool = False
    generated: int = 0
    last_token: int = 0
    # The answer so far, and for each (n-1)-token run in it the tokens that followed it.
    output_ids: list[int] = field(default_factory=list, repr=False)
    followers: dict[tuple[int, ...], set[int]] = field(default_factory=dict, repr=False)
    # Tokens of this sequence held in the cache: the position of the next token fed in.
    length: int = 0
    done: bool = field(default=False, repr=False)

    def remember(self, token: int) -> None:
        """Add a generated token to the answer (and to its n-grams, when they are banned)."""
        self.output_ids.append(token)
        n = self.no_repeat_ngram_size
        if n and len(self.output_ids) >= n:
            prefix = tuple(self.output_ids[-n:-1])
            self.followers.setdefault(prefix, set()).add(token)

    def banned(self) -> set[int]:
        """The tokens that would complete an n-gram the answer already holds."""
        n = self.no_repeat_ngram_size
        if not n or len(self.output_ids) < n - 1:
            return set()
        prefix = tuple(self.output_ids[len(self.output_ids) - (n - 1) :])
        return self.followers.get(prefix, set())


class Batcher:
    """Owns the model's forward passes: a daemon thread running the admit/step loop.

    ``threads`` sets torch's intra-op threads from that thread (torch's setting is process-wide).
    ``max_prefill_tokens`` bounds one admission round: the admitted prompts' count times the
    longest one's length (what their padded prefill reads); a longer prompt is admitted alone.
    """

    def __init__(
        self,
        model: Any,
        *,
        eos_ids: frozenset[int],
        max_batch_size: int,
        threads: int,
        max_prefill_tokens: int = DEFAULT_MAX_PREFILL_TOKENS,
    ) -> None:
        self.model = model
        self.eos_ids = eos_ids
        self.max_batch_size = max_batch_size
        self.threads = threads
        self.max_prefill_tokens = max_prefill_tokens
        self._waiting: collections.deque[Sequence] = collections.deque()
        self._wake = threading.Condition()
        self._closed = False
        # The running batch, touched only by the generation thread.
        self._rows: list[Sequence] = []
        self._cache: Any = None  # transformers.DynamicCache
        self._mask: torch.Tensor | None = None  # [rows, length], 1 where a real token is
        self._thread = threading.Thread(target=self._run, name="cpu-batch", daemon=True)
        self._thread.start()

    def submit(self, sequence: Sequence) -> None:
        with self._wake:
            if self._closed:
                raise RuntimeError("the engine is closed")
            self._waiting.append(sequence)
            self._wake.notify()

    def close(self) -> None:
        """Stop the thread after its current step; waiting and running sequences get an error."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(CLOSE_TIMEOUT_S)

    # --- The loop (generation thread only) -----------------------------------------------------

    def _run(self) -> None:
        import torch

        torch.set_num_threads(self.threads)
        with torch.inference_mode():
            while (admitted := self._next_admissions()) is not None:
                try:
                    self._admit(admitted)
                    if self._rows:
                        self._step()
                except Exception as exc:  # the whole batch fails; the loop carries on
                    log.exception("CPU batch step failed")
                    self._fail_all(exc)
        self._fail_all(RuntimeError("the engine was closed"))
        with self._wake:
            waiting, self._waiting = list(self._waiting), collections.deque()
        for sequence in waiting:
            _send(sequence, RuntimeError("the engine was closed"))

    def _next_admissions(self) -> list[Sequence] | None:
        """The waiting sequences that fit in the batch and in one prefill now, in arrival order
        (blocks while there is no work); None once the batcher is closed."""
        with self._wake:
            while not (self._waiting or self._rows or self._closed):
                self._wake.wait()
            if self._closed:
                return None
            admitted: list[Sequence] = []
            longest = 0
            while self._waiting and len(self._rows) + len(admitted) < self.max_batch_size:
                candidate = self._waiting[0]
                if candidate.cancelled:
                    self._waiting.popleft()
                    continue
                longer = max(longest, len(candidate.prompt_ids))
                if admitted and (len(admitted) + 1) * longer > self.max_prefill_tokens:
                    break
                admitted.append(self._waiting.popleft())
                longest = longer
            return admitted

    def _admit(self, admitted: list[Sequence]) -> None:
        """Prefill the new prompts together, emit their first tokens, then merge the survivors.

        When the batched prefill fails, each prompt is retried alone, so a prompt that fails
        fails alone; a failed merge fails the newcomers and the batch.
        """
        if not admitted:
            return
        try:
            joining = [self._prefill(admitted)]
        except Exception as exc:
            if len(admitted) == 1:
                _send(admitted[0], exc)
                return
            log.warning("batched CPU prefill failed; reading the prompts one by one")
            joining = []
            for sequence in admitted:
                try:
                    joining.append(self._prefill([sequence]))
                except Exception as exc:
                    _send(sequence, exc)
        if not joining:
            return
        try:
            self._merge(joining)
        except Exception as exc:
            for rows, _, _ in joining:
                for sequence in rows:
                    _send(sequence, exc)
            raise
        self._drop_ended()

    def _prefill(self, rows: list[Sequence]) -> tuple[list[Sequence], Any, torch.Tensor]:
        """Read the prompts in one pass, left-padded to the longest (each at its own positions,
        padding masked), pick each one's first token; return the rows, their cache and mask."""
        import torch
        from transformers import DynamicCache

        length = max(len(s.prompt_ids) for s in rows)
        ids = torch.zeros(len(rows), length, dtype=torch.long)
        mask = torch.zeros(len(rows), length, dtype=torch.long)
        for i, sequence in enumerate(rows):
            n = len(sequence.prompt_ids)
            ids[i, length - n :] = torch.tensor(sequence.prompt_ids)
            mask[i, length - n :] = 1
        cache = DynamicCache(config=self.model.config)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=(mask.cumsum(dim=1) - 1).clamp(min=0),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        for sequence in rows:
            sequence.length = len(sequence.prompt_ids)
        self._advance(rows, out.logits[:, -1, :])
        return rows, cache, mask

    def _merge(self, joining: list[tuple[list[Sequence], Any, torch.Tensor]]) -> None:
        """Append the new rows' caches to the batch, all left-padded to the longest."""
        import torch
        import torch.nn.functional as F

        caches = [cache for _, cache, _ in joining]
        masks = [mask for _, _, mask in joining]
        if self._rows:
            caches.insert(0, self._cache)
            masks.insert(0, self._mask)
        length = max(m.shape[1] for m in masks)

        def pad(t: torch.Tensor, dim_from_end: int) -> torch.Tensor:
            missing = length - t.shape[-dim_from_end]
            if not missing:
                return t
            spec = [0, 0] * (dim_from_end - 1) + [missing, 0]
            return F.pad(t, spec)

        target = caches[0]
        if len(caches) > 1 or length != masks[0].shape[1]:
            for index, layer in enumerate(target.layers):
                others = [c.layers[index] for c in caches]
                layer.keys = torch.cat([pad(o.keys, 2) for o in others])
                layer.values = torch.cat([pad(o.values, 2) for o in others])
        self._cache = target
        self._mask = torch.cat([pad(m, 1) for m in masks])
        for rows, _, _ in joining:
            self._rows.extend(rows)

    def _step(self) -> None:
        """One decode step for every running sequence, then drop those that ended."""
        import torch

        rows = self._rows
        self._mask = torch.cat([self._mask, torch.ones(len(rows), 1, dtype=torch.long)], dim=1)
        out = self.model(
            input_ids=torch.tensor([[s.last_token] for s in rows]),
            attention_mask=self._mask,
            position_ids=torch.tensor([[s.length] for s in rows]),
            past_key_values=self._cache,
            use_cache=True,
        )
        for sequence in rows:
            sequence.length += 1
        self._advance(rows, out.logits[:, -1, :])
        self._drop_ended()

    def _advance(self, rows: list[Sequence], logits: torch.Tensor) -> None:
        """Pick each row's next token, deliver it, and mark the rows that ended."""
        for sequence, token in zip(rows, pick_tokens(rows, logits), strict=True):
            if sequence.cancelled:
                sequence.done = True
                continue
            sequence.generated += 1
            sequence.last_token = token
            sequence.remember(token)
            ended = token in self.eos_ids or sequence.generated >= sequence.max_tokens
            alive = _send(sequence, token)
            if ended:
                reason = "stop" if token in self.eos_ids else "length"
                alive = _send(sequence, Finished(sequence.generated, reason)) and alive
            sequence.done = ended or not alive

    def _drop_ended(self) -> None:
        import torch

        keep = [i for i, s in enumerate(self._rows) if not (s.done or s.cancelled)]
        if len(keep) == len(self._rows):
            return
        self._rows = [self._rows[i] for i in keep]
        if not keep:
            self._cache = self._mask = None
            return
        index = torch.tensor(keep)
        self._mask = self._mask[index]
        # Columns that are padding in every remaining row hold nothing: cut them.
        start = int(self._mask.any(dim=0).long().argmax())
        self._mask = self._mask[:, start:]
        for layer in self._cache.layers:
            layer.keys = layer.keys[index, :, start:]
            layer.values = layer.values[index, :, start:]

    def _fail_all(self, exc: BaseException) -> None:
        for sequence in self._rows:
            _send(sequence, exc)
        self._rows, self._cache, self._mask = [], None, None


def _send(sequence: Sequence, item: object) -> bool:
    """Deliver ``item``; False when the consumer is gone (its event loop closed)."""
    try:
        sequence.deliver(item)
    except RuntimeError:
        sequence.cancelled = True
        return False
    return True


def pick_tokens(rows: list[Sequence], logits: torch.Tensor) -> list[int]:
    """The next token of each row: argmax at temperature 0, else a sample from the softmax at
    the row's temperature, restricted to its top-p nucleus (the smallest set of most likely
    tokens whose probabilities reach ``top_p``). First each row's repetition controls: the
    penalty on the tokens its answer holds, and the ban of a token that would repeat an n-gram.
    """
    import torch

    logits = logits.float()
    for i, sequence in enumerate(rows):
        _discourage_repeats(sequence, logits[i])
    tokens = logits.argmax(dim=-1)
    sampled = [i for i, s in enumerate(rows) if s.temperature > 0]
    if sampled:
        index = torch.tensor(sampled)
        temperature = torch.tensor([rows[i].temperature for i in sampled]).unsqueeze(1)
        top_p = torch.tensor([rows[i].top_p for i in sampled]).unsqueeze(1)
        probs = torch.softmax(logits[index] / temperature, dim=-1)
        if bool((top_p < 1).any()):
            ordered, order = probs.sort(dim=-1, descending=True)
            # Keep a token while those before it have not reached top_p (the first always).
            outside = (ordered.cumsum(dim=-1) - ordered) >= top_p
            outside[:, 0] = False
            ordered = ordered.masked_fill(outside, 0.0)
            tokens[index] = order.gather(1, torch.multinomial(ordered, 1)).squeeze(1)
        else:
            tokens[index] = torch.multinomial(probs, 1).squeeze(1)
    return tokens.tolist()


def _discourage_repeats(sequence: Sequence, logits: torch.Tensor) -> None:
    """In place, on one row's logits: the repetition penalty as CTRL defines it (a positive
    logit divided by it, a negative one multiplied) on every token of the answer so far, then
    minus infinity on the tokens ``no_repeat_ngram_size`` bans."""
    import torch

    if sequence.repetition_penalty != 1.0 and sequence.output_ids:
        seen = torch.tensor(sorted(set(sequence.output_ids)))
        scores = logits[seen]
        penalty = sequence.repetition_penalty
        logits[seen] = torch.where(scores > 0, scores / penalty, scores * penalty)
    if banned := sequence.banned():
        logits[torch.tensor(sorted(banned))] = float("-inf")
