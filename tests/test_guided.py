"""Guided decoding of tool names: only the prompt's tools after a call opener, only called tools in select_response."""

import torch

from xrouter_lite.guided import _openers, name_constraint
from xrouter_lite.protocol import SELECT

CALL_OPENER, SELECT_OPENER = _openers()
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
