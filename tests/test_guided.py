"""Guided decoding of tool names: only the prompt's tools after a call opener, only called tools in select_response."""

import torch

from xrouter_lite.routing.protocol import CALL_OPENER, SELECT, SELECT_ARGS
from xrouter_lite.training.guided import name_constraint

SELECT_OPENER = SELECT_ARGS
NAMES = ["call_a", "call_b", "call_c", SELECT]
VOCAB = {tok: i for i, tok in enumerate(["x", "y", CALL_OPENER, SELECT_OPENER, *NAMES])}  # ids 0..7


class Vocab:
    """The one tokenizer method the constraint reads."""

    def __init__(self, vocab):
        self.vocab = vocab

    def get_vocab(self):
        return dict(self.vocab)


def tools(*names):
    return [{"type": "function", "function": {"name": n, "parameters": {}}} for n in names]


def allowed_after(constraint, ids):
    scores = constraint(torch.tensor(ids), torch.zeros(len(ids), len(VOCAB)))
    return [{tok for tok, i in VOCAB.items() if torch.isfinite(row[i])} for row in scores]


def test_after_a_call_opener_only_the_prompts_tools_can_be_named():
    c = name_constraint(Vocab(VOCAB), [tools("call_a", "call_c", SELECT), tools("call_b")])
    left, right = allowed_after(c, [[0, VOCAB[CALL_OPENER]], [1, VOCAB[CALL_OPENER]]])
    assert left == {"call_a", "call_c", SELECT} and right == {"call_b"}


def test_a_model_called_earlier_in_the_episode_is_not_offered_again():
    c = name_constraint(Vocab(VOCAB), [tools("call_a", "call_b", SELECT)])
    ids = [VOCAB[CALL_OPENER], VOCAB["call_a"], 0, VOCAB[CALL_OPENER]]
    assert allowed_after(c, [ids]) == [{"call_b", SELECT}]  # a replayed model would answer the same twice
    ids = [VOCAB[CALL_OPENER], VOCAB["call_a"], 0, VOCAB[CALL_OPENER], VOCAB["call_b"], 1, VOCAB[CALL_OPENER]]
    assert allowed_after(c, [ids]) == [{SELECT}]


def test_other_positions_are_left_to_the_model():
    c = name_constraint(Vocab(VOCAB), [tools("call_a")])
    assert allowed_after(c, [[VOCAB[CALL_OPENER], 0]]) == [set(VOCAB)]


def test_select_response_may_only_name_a_tool_called_earlier():
    c = name_constraint(Vocab(VOCAB), [tools("call_a", "call_b", "call_c", SELECT)])
    ids = [VOCAB[CALL_OPENER], VOCAB["call_b"], 0, 1, VOCAB[SELECT_OPENER]]
    assert allowed_after(c, [ids]) == [{"call_b"}]
    # nothing called yet (a malformed episode): any listed model, never select_response itself
    assert allowed_after(c, [[0, VOCAB[SELECT_OPENER]]]) == [{"call_a", "call_b", "call_c"}]


def test_no_constraint_where_names_are_not_single_tokens():
    assert name_constraint(Vocab(VOCAB), [tools("call_a", "call_unknown_model")]) is None
    assert name_constraint(Vocab({"call_a": 0}), [tools("call_a")]) is None  # no opener tokens: a Hub tokenizer


# ---------------------------------------------------------------- the loss sees the same constraint (on-policy)
class AddedVocab(Vocab):
    def get_added_vocab(self):
        return {t: i for t, i in self.vocab.items() if t.startswith("call_") or t == SELECT}


def test_the_loss_rebuilds_exactly_the_sampler_constraint_from_the_ids():
    """Sample under the constraint, then `guided_positions` (what GRPO's loss masks) must agree at every step."""
    from xrouter_lite.training.guided import GuidedIds, guided_positions

    tok = AddedVocab(VOCAB)
    ids = GuidedIds.of(tok)
    x, y = VOCAB["x"], VOCAB["y"]
    prompts = [[x, VOCAB["call_a"], y, VOCAB["call_c"], VOCAB[SELECT], x], [y, VOCAB["call_b"], x, x, x, x]]
    constraint = name_constraint(tok, [tools("call_a", "call_c", SELECT), tools("call_b")])
    gen = torch.Generator().manual_seed(0)
    seqs = torch.tensor(prompts)
    constrained = []
    # the model's own tokens where it is free (openers, filler), sampled under the constraint everywhere else
    script = [[VOCAB[CALL_OPENER], x, x, VOCAB[CALL_OPENER], y, y, VOCAB[SELECT_OPENER], x],
              [VOCAB[CALL_OPENER], y, y, y, VOCAB[SELECT_OPENER], x, x, x]]
    for t in range(len(script[0])):
        scores = constraint(seqs, torch.randn(2, len(VOCAB), generator=gen))
        nxt = []
        for row in range(2):
            allowed = torch.isfinite(scores[row]).nonzero().flatten().tolist()
            if len(allowed) < len(VOCAB):
                constrained.append((row, t, sorted(allowed)))
                nxt.append(int(torch.multinomial(scores[row].softmax(-1), 1, generator=gen)))
            else:
                nxt.append(script[row][t])
        seqs = torch.cat([seqs, torch.tensor(nxt)[:, None]], dim=1)
    rebuilt = sorted((row, t, sorted(allowed)) for row, t, allowed in guided_positions(seqs, len(script[0]), ids))
    assert rebuilt == sorted(constrained) and len(rebuilt) >= 4


def test_guided_ids_exist_only_for_single_token_names():
    from xrouter_lite.training.guided import GuidedIds

    assert GuidedIds.of(AddedVocab(VOCAB)).names == {VOCAB[n] for n in NAMES}
    assert GuidedIds.of(AddedVocab({"call_a": 0})) is None


def test_grpo_log_probs_of_a_guided_name_are_normalised_over_the_allowed_names():
    from types import SimpleNamespace

    from xrouter_lite.training.grpo import guided_log_probs
    from xrouter_lite.training.guided import GuidedIds

    ids = GuidedIds.of(AddedVocab(VOCAB))
    logits = torch.randn(1, 9, len(VOCAB), generator=torch.Generator().manual_seed(1))

    def model(input_ids, attention_mask, logits_to_keep):
        return SimpleNamespace(logits=logits[:, -logits_to_keep:])

    seq = torch.tensor([[0, VOCAB["call_a"], VOCAB["call_b"], 1, 0, VOCAB[CALL_OPENER], VOCAB["call_b"], 1, 0]])
    logps, ent = guided_log_probs(model, seq, torch.ones_like(seq), 4, 1.0, ids, compute_entropy=True)
    step = logits[0, -4:-1]  # predictions for the 3 completion tokens after the first: opener, name, 1 ... (shifted)
    full = logits[0, -5:-1].log_softmax(-1)
    assert torch.allclose(logps[0, [0, 2, 3]], full[[0, 2, 3], seq[0, -4:][[0, 2, 3]]])  # unguided: unchanged
    allowed = [VOCAB["call_a"], VOCAB["call_b"]]  # the prompt lists call_a and call_b
    expect = logits[0, -4, allowed].log_softmax(-1)[1]  # call_b, normalised over the allowed names only
    assert torch.allclose(logps[0, 1], expect) and logps[0, 1] > full[1, VOCAB["call_b"]]
    assert torch.isfinite(ent).all() and step.shape[0] == 3
