"""Guided decoding of tool calls: where the router writes a tool's name, only the tools it was given can come out,
and where the call format leaves exactly one continuation, that is the one written.

Serving stacks do this for tool calls (OpenAI's strict function calling, grammar-constrained decoding in
vLLM/llama.cpp/outlines): the model still chooses *which* tool, but cannot name one that is not in its prompt.
Here it matters for the tiny CPU router: with each tool name a single token (`sft.add_protocol_tokens`), the
name is one prediction, and a 2-layer model trained for minutes learns the prior over models long before it
learns to check which of them the prompt lists (measured: ~60% of its calls named a tool outside a sampled
sub-pool after SFT). The constraint touches the name token after the two openers the protocol writes,

    <tool_call>\\n{"name": "   ->  one of the prompt's tools not called yet in the episode (or select_response)
    "model_call_name": "        ->  one of the call_* tools called earlier in the episode (any listed one if none)

and the few fixed fragments of a call block (`allowed_next` lists every rule), like a JSON-schema constrained
decoder. Every choice stays the model's: which tool, which system prompt, whether to call again, select, answer
or stop. Why the fragments too: after SFT the tiny router still broke ~4% of its agent episodes with a stray
token inside a block ("text after the JSON object", a select mixed with calls), each an invalid ending worth 0.
A Hub model spells names in several BPE pieces and writes the format reliably; `name_constraint` returns None
for it. GRPO's loss applies the same rules where it scores the sampled tokens (`guided_positions`), so the
policy gradient follows the distribution the rollouts sampled from.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from xrouter_lite.routing.protocol import CALL_ARGS, CALL_CLOSE, CALL_OPENER, SELECT, SELECT_ARGS


class GuidedIds:
    """The token ids guided decoding keys on: the openers, every single-token tool name, and the call fragments.

    Only the tiny tokenizer has these as single tokens (`sft.protocol_texts`); `of()` returns None for a Hub one.
    The fragment ids may be None (a tokenizer without them): then only tool names are guided.
    """

    def __init__(self, call_opener: int, select_opener: int, names: set[int], select_name: int | None,
                 args: int | None = None, close: int | None = None, end: int | None = None,
                 prompts: frozenset = frozenset()):
        self.call_opener, self.select_opener = call_opener, select_opener
        self.names = names  # call_* names and select_response
        self.select_name = select_name
        self.args, self.close, self.end, self.prompts = args, close, end, prompts
        self.triggers = torch.tensor(sorted({call_opener, select_opener, *names, *prompts}
                                            | ({close} if close is not None else set())))

    @classmethod
    def of(cls, tokenizer) -> "GuidedIds | None":
        """The ids for this tokenizer, or None where names are not single tokens (Hub models: nothing is guided)."""
        from xrouter_lite.training.traces import DEFAULT_TASK_PROMPT, TASK_PROMPTS

        vocab = tokenizer.get_vocab()
        if CALL_OPENER not in vocab or SELECT_ARGS not in vocab:
            return None
        names = {i for t, i in vocab.items() if t.startswith("call_") or t == SELECT}
        prompts = frozenset(vocab[p] for p in [*TASK_PROMPTS.values(), DEFAULT_TASK_PROMPT] if p in vocab)
        return cls(vocab[CALL_OPENER], vocab[SELECT_ARGS], names, vocab.get(SELECT), vocab.get(CALL_ARGS),
                   vocab.get(CALL_CLOSE), vocab.get("<|im_end|>"), prompts)


def allowed_next(seq: Sequence[int], listed: Sequence[int], ids: GuidedIds) -> list[int] | None:
    """The tokens the protocol allows after `seq` (the sequence so far), or None where the router is free.

    `listed` are the tool-name ids the row's prompt lists. The rules, in the order a call block is written:
      after `<tool_call>\\n{"name": "`     -> a listed tool not called yet in the episode (or select_response)
      after a called name                  -> `", "arguments": {"optimized_system_prompt": "`
      after select_response's name          -> `", "arguments": {"model_call_name": "`
      after that                            -> a tool this episode has called (any listed one if none)
      after the selected name               -> `"}}\\n</tool_call>`
      after a whole task prompt (one token) -> `"}}\\n</tool_call>`
      after a select_response block         -> the end of the turn (a select stands alone)
    Everything else (which tool, which prompt, whether to call again, answer or stop) is the model's choice.
    """
    last = seq[-1]
    prev = seq[-2] if len(seq) > 1 else None
    opened = [i + 1 for i, t in enumerate(seq[:-1]) if t == ids.call_opener]
    called = {seq[i] for i in opened}
    if last == ids.call_opener:
        return [i for i in listed if i not in called] or list(listed)
    if last == ids.select_opener:
        calls = [i for i in listed if i != ids.select_name]
        return [i for i in calls if i in called] or calls
    if last in ids.names and prev == ids.call_opener:
        if last == ids.select_name:
            return [ids.select_opener]
        return [ids.args] if ids.args is not None else None
    if last in ids.names and prev == ids.select_opener:
        return [ids.close] if ids.close is not None else None
    if last in ids.prompts and prev == ids.args:
        return [ids.close] if ids.close is not None else None
    if last == ids.close and ids.end is not None and opened and seq[opened[-1]] == ids.select_name:
        return [ids.end]
    return None


class ToolNameConstraint:
    """A `generate` logits processor: where the protocol leaves one choice or a set of names, mask the rest."""

    def __init__(self, ids: GuidedIds, listed: Sequence[list[int]]):
        self.ids = ids
        self.listed = list(listed)  # per batch row: the tool-name ids its prompt lists

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        hit = torch.isin(input_ids[:, -1], self.ids.triggers.to(input_ids.device))
        for row in torch.nonzero(hit).flatten().tolist():
            # rows repeat when sequences are sampled per prompt
            keep = allowed_next(input_ids[row].tolist(), self.listed[row % len(self.listed)], self.ids)
            if keep:
                masked = torch.full_like(scores[row], float("-inf"))
                masked[keep] = scores[row, keep]
                scores[row] = masked
        return scores


def name_constraint(tokenizer, tools_per_row: Sequence[Sequence[dict] | None]) -> ToolNameConstraint | None:
    """The constraint for a batch (one tool list per row), or None when names are not single tokens (Hub models)."""
    ids = GuidedIds.of(tokenizer)
    if ids is None:
        return None  # the openers are only single tokens in the tiny tokenizer (sft.protocol_texts)
    vocab = tokenizer.get_vocab()
    listed = []
    for tools in tools_per_row:
        names = [t["function"]["name"] for t in tools or []]
        if any(n not in vocab for n in names):
            return None
        listed.append([vocab[n] for n in names])
    return ToolNameConstraint(ids, listed)


# ---------------------------------------------------------------- the same constraint where the loss reads log-probs
def guided_positions(input_ids: torch.LongTensor, completion_len: int, ids: GuidedIds) -> list[tuple[int, int, list[int]]]:
    """(row, completion position, allowed ids) wherever `ToolNameConstraint` restricted the sampled token.

    Rebuilt from the token ids alone with the sampler's own rules (`allowed_next`, the listed names read off the
    prompt). Used by GRPO's loss, so the log-probability it trains is the one of the distribution the rollout
    sampled from (on-policy), not the unconstrained model's.
    """
    prompt_len = input_ids.shape[1] - completion_len
    prev = input_ids[:, prompt_len - 1: -1]  # the token before each completion token
    hits = torch.nonzero(torch.isin(prev, ids.triggers.to(prev.device))).tolist()
    out, listed = [], {}
    for row, t in hits:
        if row not in listed:
            listed[row] = [i for i in dict.fromkeys(input_ids[row, :prompt_len].tolist()) if i in ids.names]
        keep = allowed_next(input_ids[row, : prompt_len + t].tolist(), listed[row], ids)
        if keep:
            out.append((row, t, keep))
    return out
