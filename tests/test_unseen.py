"""The unseen-pool report: how a router used models no training row offered (issue 14)."""

import pytest

from xrouter_lite.routing.episode import Call, Episode
from xrouter_lite.training.evaluation import unseen_report


def episode(qid: str, models: list[str], score: float, usd: float) -> Episode:
    return Episode(query_id=qid, task="gsm8k", source="zeroeval", allowed=["a", "b", "new"], mode="agent",
                   calls=[Call(model=m, turn=1, usd=usd / len(models)) for m in models], usd=usd, score=score,
                   reward=score * (1 - min(10 * usd, 0.8)), ending="called", final="x")


def test_counts_calls_to_unseen_models_and_pairs_the_two_runs():
    offered = [episode("q1", ["new"], 1.0, 0.001), episode("q2", ["a", "new"], 0.0, 0.002),
               episode("q3", ["a"], 1.0, 0.001), episode("q4", ["b"], 1.0, 0.003)]
    withheld = [episode("q1", ["a"], 0.0, 0.001), episode("q2", ["a"], 0.0, 0.001),
                episode("q3", ["a"], 1.0, 0.001), episode("q4", ["b"], 1.0, 0.003)]
    r = unseen_report(offered, withheld, ["new"], name="the GRPO router")
    assert (r["episodes_calling_unseen"], r["n"]) == (2, 4)
    assert r["episode_share"] == 0.5 and r["call_share"] == pytest.approx(2 / 5)
    assert r["accuracy_when_called"] == 0.5
    assert r["offered"]["accuracy"] == 0.75 and r["withheld"]["accuracy"] == 0.5
    assert r["difference"]["accuracy"] == pytest.approx(0.25)
    assert r["difference"]["usd_per_query"] == pytest.approx((0.007 - 0.006) / 4)
    assert "new" in r["text"] and "2 of 4" in r["text"]


def test_never_called_reports_none_and_mismatched_queries_are_refused():
    eps = [episode("q1", ["a"], 1.0, 0.001)]
    r = unseen_report(eps, eps, ["new"])
    assert r["episodes_calling_unseen"] == 0 and r["accuracy_when_called"] is None
    assert r["difference"] == {"accuracy": 0.0, "usd_per_query": 0.0, "mean_reward": 0.0}
    with pytest.raises(ValueError, match="same queries"):
        unseen_report(eps, [episode("q2", ["a"], 1.0, 0.001)], ["new"])
