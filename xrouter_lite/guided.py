"""Guided decoding of tool names: where the router writes a tool's name, only the tools it was given can come out.

Serving stacks do this for tool calls (OpenAI's strict function calling, grammar-constrained decoding in
vLLM/llama.cpp/outlines): the model still chooses *which* tool, but cannot name one that is not in its prompt.
Here it matters for the tiny CPU router: with each tool name a single token (`sft.add_protocol_tokens`), the
name is one prediction, and a 2-layer model trained for minutes learns the prior over models long before it
learns to check which of them the prompt lists (measured: ~60% of its calls named a tool outside a sampled
sub-pool after SFT). The constraint touches only the name token after the two openers the protocol writes,

    <tool_call>\\n{"name": "   ->  one of the prompt's tools not called yet in the episode (or select_response)
    "model_call_name": "        ->  one of the call_* tools called earlier in the episode (any listed one if none)

and leaves every other token, the rest of the format included, to the model. A Hub model spells names in
several BPE pieces and copies them from its prompt reliably; `name_constraint` returns None for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from xrouter_lite.protocol import SELECT, Action, render_calls


def _openers() -> tuple[str, str]:
    """The text right before a tool name in a call and in select_response's argument, as render_calls writes it."""
    call = render_calls([Action("call", model="M", args={})])
    select = render_calls([Action("select", model="M", args={"model_call_name": "NAME"})])
    call_opener = call[: call.index('"name": "') + len('"name": "')]
    select_opener = select[select.index(SELECT) + len(SELECT): select.index('"NAME"') + 1]
    return call_opener, select_opener


class ToolNameConstraint:
    """A `generate` logits processor: after a name opener, mask every token but the row's allowed tool names."""

    def __init__(self, call_opener_id: int, select_opener_id: int, allowed: Sequence[tuple[list[int], list[int]]]):
        self.call_opener_id, self.select_opener_id = call_opener_id, select_opener_id
        self.allowed = list(allowed)  # per batch row: (ids after the call opener, ids after the select opener)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        last = input_ids[:, -1]
        for opener, which in ((self.call_opener_id, 0), (self.select_opener_id, 1)):
            for row in torch.nonzero(last == opener).flatten().tolist():
                keep = self.allowed[row % len(self.allowed)][which]  # rows repeat when sequences are sampled per prompt
                called = self.called(input_ids[row])
                if which == 1:  # select_response may only name a tool this episode has called
                    keep = [i for i in keep if i in called] or keep
                else:  # a model already called would answer the same again: only new ones (or select_response)
                    keep = [i for i in keep if i not in called] or keep
                if keep:
                    masked = torch.full_like(scores[row], float("-inf"))
                    masked[keep] = scores[row, keep]
                    scores[row] = masked
        return scores

    def called(self, ids: torch.LongTensor) -> set[int]:
        """The tool-name ids written right after a call opener in this sequence (the episode's earlier calls)."""
        at = torch.nonzero(ids[:-1] == self.call_opener_id).flatten() + 1
        return set(ids[at].tolist())


def name_constraint(tokenizer, tools_per_row: Sequence[Sequence[dict] | None]) -> ToolNameConstraint | None:
    """The constraint for a batch (one tool list per row), or None when names are not single tokens (Hub models)."""
    vocab = tokenizer.get_vocab()
    call_opener, select_opener = _openers()
    if call_opener not in vocab or select_opener not in vocab:
        return None  # the openers are only single tokens in the tiny tokenizer (sft.protocol_texts)
    allowed = []
    for tools in tools_per_row:
        names = [t["function"]["name"] for t in tools or []]
        if any(n not in vocab for n in names):
            return None
        calls = [vocab[n] for n in names if n != SELECT]
        allowed.append(([vocab[n] for n in names], calls))
    return ToolNameConstraint(vocab[call_opener], vocab[select_opener], allowed)


# ---------------------------------------------------------------- the same constraint where the loss reads log-probs
class GuidedIds:
    """The token ids guided decoding keys on: the two name openers and every single-token tool name."""

    def __init__(self, call_opener: int, select_opener: int, names: set[int], select_name: int | None):
        self.call_opener, self.select_opener = call_opener, select_opener
        self.names = names  # call_* names and select_response
        self.select_name = select_name

    @classmethod
    def of(cls, tokenizer) -> "GuidedIds | None":
        """The ids for this tokenizer, or None where names are not single tokens (Hub models: nothing is guided)."""
        vocab = tokenizer.get_vocab()
        call_opener, select_opener = _openers()
        if call_opener not in vocab or select_opener not in vocab:
            return None
        added = tokenizer.get_added_vocab()
        names = {i for t, i in added.items() if t.startswith("call_") or t == SELECT}
        return cls(vocab[call_opener], vocab[select_opener], names, added.get(SELECT))


def guided_positions(input_ids: torch.LongTensor, completion_len: int, ids: GuidedIds) -> list[tuple[int, int, list[int]]]:
    """(row, completion position, allowed ids) wherever `ToolNameConstraint` restricted the sampled token.

    Rebuilt from the token ids alone, exactly as the sampler decided: after the call opener, the names the
    row's prompt lists (its tools, `select_response` included) and the episode has not called yet; after the
    select opener, the call names
    already written in this episode, else every listed call name. Used by GRPO's loss, so the log-probability
    it trains is the one of the distribution the rollout sampled from (on-policy), not the unmasked model's.
    """
    prompt_len = input_ids.shape[1] - completion_len
    prev = input_ids[:, prompt_len - 1: -1]  # the token before each completion token
    hits = torch.nonzero((prev == ids.call_opener) | (prev == ids.select_opener)).tolist()
    out, listed = [], {}
    for row, t in hits:
        if row not in listed:
            listed[row] = [i for i in dict.fromkeys(input_ids[row, :prompt_len].tolist()) if i in ids.names]
        names = listed[row]
        seq = input_ids[row, : prompt_len + t]
        at = torch.nonzero(seq[:-1] == ids.call_opener).flatten() + 1
        called = set(seq[at].tolist())
        if prev[row, t] == ids.call_opener:
            out.append((row, t, [i for i in names if i not in called] or names))
            continue
        calls = [i for i in names if i != ids.select_name]
        out.append((row, t, [i for i in calls if i in called] or calls))
    return out
