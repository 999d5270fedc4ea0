"""The explorer's figures (`explore.figures`) and what-if replay (`whatif`), on a small built pool with scripted LM routers.

Three models (`tiny` cheap, `mid`, `big` 100x dearer) answer two tasks; two scripted "LM routers" run real
episodes through the episode runner (one in simple mode, one in agent mode with `select_response`), so the
replay is checked against what the episodes actually did.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from synthetic import MODELS, routing_table

from xrouter_lite.explore.figures import (color_by_legendgroup, cost_accuracy_figure, explorer_plane_figure,
                                          model_share_figure, per_task_figure, reward_vs_lambda_figure, write_figure,
                                          write_headline)
from xrouter_lite.explore.whatif import (eval_data, headline_table, lm_point, markdown_table, per_task_table,
                                         reward_lambda_table, route_all, router_checkpoints, share_table, sweep_table,
                                         trace_html, what_if)
from xrouter_lite.pool.core import ModelSpec, ReplayPool, tool_name
from xrouter_lite.routing import metrics as M
from xrouter_lite.routing import baselines as R
from xrouter_lite.routing.episode import run_episodes

P_CORRECT = {"gsm": {"tiny": 0.85, "mid": 0.6, "big": 0.95}, "crux": {"tiny": 0.1, "mid": 0.6, "big": 0.9}}


def _question(task: str, i: int, rng) -> str:
    return (f"Tom has {i} apples and buys 3 more. How many apples now? (#{i})" if task == "gsm" else
            f"def f(x):\n    return x * {i}\nassert f(2) == ??")


def build_table(n_per_task: int = 40, seed: int = 0) -> pd.DataFrame:
    return routing_table(P_CORRECT, _question, n_per_task=n_per_task, seed=seed, unparseable=0.5, usd_jitter=0.1)


def make_pool(table: pd.DataFrame) -> ReplayPool:
    return ReplayPool(table, specs={m: ModelSpec(m, price_in=usd, price_out=usd) for m, usd in MODELS.items()})


def call(model: str) -> str:
    return ('<tool_call>{"name": "%s", "arguments": {"optimized_system_prompt": "Solve it."}}</tool_call>'
            % tool_name(model))


def simple_router(messages, tools):
    """Code to `big`, word problems to `tiny`: a sensible query-aware policy."""
    return call("big" if "def " in messages[-1]["content"] else "tiny")


def agent_router(messages, tools):
    """Ask `tiny` and `mid`, then select `mid`'s answer."""
    if messages[-1]["role"] == "user":
        return call("tiny") + "\n" + call("mid")
    return '<tool_call>{"name": "select_response", "arguments": {"model_call_name": "call_mid"}}</tool_call>'


def build_data(with_learned: bool = True):
    """(EvalData, pool, test queries) with two LM points of one family and, optionally, a fake learned router."""
    pool = make_pool(build_table())
    train, test = pool.query_table(split="train"), pool.query_table(split="test")
    qs = pool.queries(split="test")
    simple = run_episodes(simple_router, qs, pool, mode="simple", progress=False)
    agent = run_episodes(agent_router, qs, pool, mode="agent", progress=False)
    points = [lm_point(simple, test, pool, "GRPO router", 30.0), lm_point(agent, test, pool, "GRPO router", 1.0)]
    data = eval_data(pool, train, test, learned=(), lm_points=points)
    if with_learned:  # a "learned" router that knows the labels a little: enough to trace a hull over lambda
        rng = np.random.default_rng(1)
        data.p_correct["knn"] = np.clip(0.7 * data.correct + 0.3 * rng.random(data.correct.shape), 0, 1)
        data.lam_grids["knn"] = np.concatenate([[0.0], np.geomspace(0.1, 1e4, 20)])
    return data, pool, test


@pytest.fixture(scope="module")
def built():
    return build_data()


@pytest.fixture(scope="module")
def data(built):
    return built[0]


# ---------------------------------------------------------------- figures: titles, units, legends
def _axis_titles(fig) -> list[str]:
    layout = fig.to_dict()["layout"]
    return [v.get("title", {}).get("text", "") for k, v in layout.items() if re.match(r"[xy]axis\d*$", k)]


def _check_labelled(fig, cost_axis: bool = True):
    d = fig.to_dict()
    assert d["layout"]["title"]["text"], "figure without a title"
    titles = _axis_titles(fig)
    assert titles and all(titles), f"an axis without a title: {titles}"
    if cost_axis:
        assert any("USD" in t for t in titles), f"no USD axis among {titles}"
    named = [t for t in d["data"] if t.get("name") and t.get("showlegend", True) is not False]
    assert named, "no legend entries"


def test_every_explorer_figure_has_title_units_and_legend(data):
    w = what_if(data, 30.0)
    _check_labelled(explorer_plane_figure(w))
    assert any("accuracy" in t for t in _axis_titles(explorer_plane_figure(w)))
    _check_labelled(per_task_figure(per_task_table(data, w)))
    _check_labelled(model_share_figure(share_table(data, w)), cost_axis=False)
    assert "share of calls" in " ".join(_axis_titles(model_share_figure(share_table(data, w))))
    fig = reward_vs_lambda_figure(reward_lambda_table(data, [1, 10, 100]), mark=10)
    _check_labelled(fig, cost_axis=False)
    assert "lambda" in fig.layout.xaxis.title.text and "reward" in fig.layout.yaxis.title.text


def test_plane_has_hulls_with_aiq_in_the_legend(data):
    w = what_if(data, 30.0)
    names = [t.name for t in explorer_plane_figure(w).data]
    for family in ("GRPO router", "knn", "zero router"):
        hull = [n for n in names if n.startswith(family) and "hull" in n]
        assert hull and "AIQ" in hull[0], (family, names)
    assert "Pareto front" in names and {"router", "baseline", "oracle", "model"} <= set(names)
    # the legend's AIQ is the metric's, with one c_max shared by every router
    grpo = [(r.usd.mean(), r.score.mean()) for r in w.runs.values() if r.family == "GRPO router"]
    c_max = max(c for pts in [grpo] + [[(r.usd.mean(), r.score.mean())] for r in w.runs.values()] for c, _ in pts)
    c_max = max(c_max, max(c for c, _ in w.hulls["knn"]))
    assert w.aiq["GRPO router"] == pytest.approx(M.aiq(grpo, c_max))
    label = next(n for n in names if n.startswith("GRPO router hull"))
    assert f"{w.aiq['GRPO router']:.3f}" in label


def test_hull_of_the_cost_accuracy_figure_bends_on_the_log_axis():
    pts = pd.DataFrame({"name": ["a", "b"], "kind": ["model", "model"], "usd_per_query": [0.001, 0.01],
                        "accuracy": [0.6, 0.9]})
    fig = cost_accuracy_figure(pts, hulls={"r": [(0.001, 0.6), (0.01, 0.9)]}, aiq={"r": 0.5})
    hull = next(t for t in fig.data if t.name.startswith("r hull"))
    assert hull.name == "r hull (AIQ 0.500)"
    assert len(hull.x) > 2 and hull.y[0] == pytest.approx(0.6) and hull.y[-1] == pytest.approx(0.9)
    mid = len(hull.x) // 2  # linear mixing in cost: accuracy at cost x is 0.6 + 0.3 * (x - 0.001) / 0.009
    assert hull.y[mid] == pytest.approx(0.6 + 0.3 * (hull.x[mid] - 0.001) / 0.009)


def test_per_task_figure_gives_a_model_one_colour_in_both_panels():
    summary = pd.DataFrame({"task": ["a", "a", "a", "b", "b", "b"], "model": ["m1", "m2", "oracle"] * 2,
                            "accuracy": [0.5, 0.7, 0.9] * 2, "usd_per_query": [0.001, 0.01, 0.002] * 2})
    fig = per_task_figure(summary)
    colours = {}
    for t in fig.data:
        colours.setdefault(t.legendgroup, set()).add(t.marker.color)
    assert all(len(c) == 1 for c in colours.values()), colours
    assert len({next(iter(c)) for c in colours.values()}) == 3
    assert colours["oracle"] == {"#d62728"}
    recoloured = color_by_legendgroup(fig, palette=["#000001", "#000002"])  # still one colour per group
    by_group = {}
    for t in recoloured.data:
        by_group.setdefault(t.legendgroup, set()).add(t.marker.color)
    assert by_group == {"m1": {"#000001"}, "m2": {"#000002"}, "oracle": {"#d62728"}}


# ---------------------------------------------------------------- the replay
def test_replay_matches_routers_evaluate_for_the_baselines(built):
    data, pool, test = built
    train = pool.query_table(split="train")
    w = what_if(data, 3.0)
    t = w.table.set_index("router")
    for name in ("cheapest", "strongest", "random", "oracle", "keywords", "length", "cascade", "tiny", "big"):
        row = R.evaluate(R.make_router(name, data.models).fit(train, pool), test, pool, lam=3.0)
        for key in ("accuracy", "usd_per_query", "mean_reward"):
            assert t.loc[name, key] == pytest.approx(row[key]), (name, key)


def test_lm_points_reproduce_their_episodes(built):
    data, pool, _ = built
    w = what_if(data, 30.0)
    simple, agent = data.lm
    run = w.runs[simple.name]
    eps = simple.episodes
    assert run.score.tolist() == [e.score for e in eps]
    assert run.usd == pytest.approx([e.usd for e in eps])
    assert all(len(c) == 2 for c in agent.calls)  # agent: tiny and mid called, mid selected
    assert set(agent.final.tolist()) == {data.models.index("mid")}
    assert w.runs[agent.name].score == pytest.approx(data.correct[:, data.models.index("mid")])
    # the LM point keeps its trained lambda; its reward is recomputed at the explorer's lambda
    row = w.table.set_index("router").loc[simple.name]
    assert row["lambda"] == 30.0
    lo, hi = (what_if(data, lam, hulls=False).table.set_index("router").loc[simple.name, "mean_reward"]
              for lam in (1.0, 100.0))
    assert lo > hi


def test_learned_routers_are_re_decided_with_lambda(data):
    cheap, dear = (what_if(data, lam, hulls=False).table.set_index("router").loc["knn"] for lam in (1e4, 0.0))
    assert cheap["usd_per_query"] < dear["usd_per_query"]
    assert cheap["accuracy"] <= dear["accuracy"]


def test_budget_guard_sends_calls_over_budget_to_the_cheapest_model(data):
    big, tiny = data.models.index("big"), data.models.index("tiny")
    budget = 0.005  # under big's quote (~0.011), over mid's and tiny's
    runs = route_all(data, 30.0, budget=budget)
    for name, run in runs.items():
        assert big not in {c for calls in run.calls for c in calls}, name
    assert {c for calls in runs["big"].calls for c in calls} == {tiny}  # "big" under the guard is tiny
    assert runs["GRPO router (λ=30)"].remapped.any()  # its code queries went to big: now to tiny
    assert runs["GRPO router (λ=30)"].usd.max() < budget


def test_pool_picker_excludes_models_everywhere(data):
    w = what_if(data, 30.0, allowed=["tiny", "mid"])
    big = data.models.index("big")
    assert all(big not in calls for run in w.runs.values() for calls in run.calls)
    assert "big" not in set(w.table["router"])
    figs = [explorer_plane_figure(w), model_share_figure(share_table(data, w))]
    text = str([t.to_plotly_json() for f in figs for t in f.data])
    assert "'big'" not in text and "tiny" in text
    with pytest.raises(ValueError, match="at least one"):
        what_if(data, 30.0, allowed=[])


def test_task_filter_counts_only_the_chosen_tasks(data):
    w = what_if(data, 30.0, tasks=["gsm"])
    assert w.table["n"].eq(int((data.queries["task"] == "gsm").sum())).all()
    assert set(per_task_table(data, w)["task"]) == {"gsm"}


def test_headline_and_markdown_tables(data):
    w = what_if(data, 30.0)
    head = headline_table(w)
    assert {"accuracy", "USD/query", "AIQ"} <= set(head.columns)
    assert "oracle (upper bound)" in set(head["router"])
    assert w.reference["model"] in set(head["router"])
    md = markdown_table(head)
    assert md.count("\n") == len(head) + 2 and md.startswith("| router |")


def test_headline_names_the_best_model_at_each_cost_and_the_margin_with_its_interval(data):
    from xrouter_lite.explore.whatif import headline_rows

    w = what_if(data, 30.0)
    rows = {r["router"]: r for r in headline_rows(w)}
    head = headline_table(w, rows=list(rows.values())).set_index("router")
    models = w.table[w.table["kind"] == "model"].set_index("router")
    for name, r in rows.items():
        cheaper = models[models["usd_per_query"] <= r["usd_per_query"] * (1 + 1e-9)]
        if len(cheaper):  # the most accurate single model that costs no more than the router
            assert r["best_model_accuracy"] == pytest.approx(cheaper["accuracy"].max())
        z = r["zero_margin"]
        assert z["low"] <= z["estimate"] <= z["high"] and z["n"] == int(w.mask.sum())
        if r["kind"] == "model" or r["router"] in ("cheapest", "strongest"):  # one model, part of the hull:
            assert z["high"] <= 0.0  # its interval never reaches above it
        point = M.zero_margin((r["usd_per_query"], r["accuracy"]), zip(models["usd_per_query"], models["accuracy"]))
        assert z["estimate"] == pytest.approx(point)  # the (0, 0)-hull margin of the router's point
    assert set(head["verdict vs zero hull"]) <= {"above", "below", "not shown"}
    # a single model never beats the hull it is on; the oracle (reads the labels) does, clearly
    assert (head.loc[head["kind"] == "model", "verdict vs zero hull"] != "above").all()
    assert head.loc["oracle (upper bound)", "verdict vs zero hull"] == "above"
    # every single model on the zero router's hull gets its own row
    hull = set(M.verdict_hull(list(zip(models["usd_per_query"], models["accuracy"]))))
    on_hull = [m for m, c, a in zip(models.index, models["usd_per_query"], models["accuracy"]) if (c, a) in hull]
    assert set(on_hull) <= set(head.index)


def test_write_headline_writes_the_readme_results_and_never_fails_for_the_png(data, tmp_path, monkeypatch):
    w = what_if(data, 30.0)
    head, plane = headline_table(w), explorer_plane_figure(w)
    said = write_headline(head, plane, tmp_path, note="measured here", png=False)
    assert (tmp_path / "headline.csv").exists() and "PNG export switched off" in said[-1]
    md = (tmp_path / "headline.md").read_text()
    assert md.startswith("measured here") and "| router |" in md and "(cost_accuracy.html)" in md
    assert "plotly" in (tmp_path / "cost_accuracy.html").read_text()[:100_000].lower()

    def no_browser(*args, **kwargs):
        raise RuntimeError("Kaleido requires Google Chrome to be installed.")
    monkeypatch.setattr(type(plane), "write_image", no_browser)
    path, line = write_figure(plane, tmp_path / "again.png")
    assert path.suffix == ".html" and "Kaleido requires Google Chrome" in line and "\n" not in line


def test_sweep_table_is_tidy(data):
    t = sweep_table(data, [1.0, 100.0])
    assert set(t["eval_lambda"]) == {1.0, 100.0}
    assert {"router", "kind", "accuracy", "usd_per_query", "mean_reward", "aiq"} <= set(t.columns)
    assert t.groupby("eval_lambda").size().nunique() == 1


def test_trace_shows_the_question_calls_and_episode(data):
    w = what_if(data, 30.0)
    page = trace_html(data, w, 0)
    assert data.queries["query_id"][0] in page and "recorded episode" in page
    assert "call_tiny" in page or "call_big" in page  # the router's tool call, from Episode.render
    assert "<script" not in page


@pytest.mark.data
def test_replay_matches_evaluate_all_on_recorded_data(data_dir):
    from xrouter_lite.pool.splits import add_splits
    from xrouter_lite.pool.table import load_table

    pool = ReplayPool(add_splits(load_table(data_dir, sources=["zeroeval"], progress=False)))
    train, test = pool.query_table(split="train", source="zeroeval"), pool.query_table(split="test", source="zeroeval")
    names = ["random", "cheapest", "strongest", "oracle", "keywords", "cascade"]
    ref = {r["router"]: r for r in R.evaluate_all(names, train, test, pool, lam=30.0) if "router" in r}
    t = what_if(eval_data(pool, train, test, learned=()), 30.0).table.set_index("router")
    for name in names:
        assert t.loc[name, "accuracy"] == pytest.approx(ref[name]["accuracy"])
        assert t.loc[name, "usd_per_query"] == pytest.approx(ref[name]["usd_per_query"])


def test_router_checkpoints_reads_every_router_json(tmp_path):
    import json

    for folder, info in {"router_sft": {"stage": "sft", "lambda": 30.0, "mode": "agent"},
                         "router_grpo": {"stage": "grpo", "lambda": 30.0, "mode": "agent"},
                         "router_grpo_lam1000": {"stage": "grpo", "lambda": 1000.0, "mode": "agent"},
                         "router_grpo_lam30": {"stage": "grpo", "lambda": 30.0, "mode": "agent"},
                         "tiny_base": None}.items():
        (tmp_path / folder).mkdir()
        if info:
            (tmp_path / folder / "router.json").write_text(json.dumps(info))
    found = router_checkpoints(tmp_path)
    assert [f["name"] for f in found] == ["SFT router (λ=30)", "GRPO router (λ=30)",
                                          "GRPO router (router_grpo_lam30, λ=30)", "GRPO router (λ=1000)"]
    assert found[1]["path"].endswith("router_grpo") and found[1]["family"] == "GRPO router"


def test_a_hull_from_the_free_point_is_drawn_as_a_chord_from_the_axis_edge():
    pts = pd.DataFrame({"name": ["router", "a"], "kind": ["router", "model"], "usd_per_query": [0.0002, 0.001],
                        "accuracy": [0.1, 0.6]})
    fig = cost_accuracy_figure(pts, hulls={"zero router": M.verdict_hull([(0.001, 0.6)])})
    hull = next(t for t in fig.data if t.name.startswith("zero router"))
    assert hull.x[0] == pytest.approx(0.0001) and hull.y[0] == 0.0  # (0, 0) at the axis's left edge (half 0.0002)
    # mixing "answer nothing" with model a: accuracy 0.6 * cost / 0.001 along the chord, up to a itself
    assert list(hull.y[1:]) == pytest.approx([0.6 * x / 0.001 for x in hull.x[1:]])
    assert hull.x[-1] == pytest.approx(0.001) and hull.y[-1] == pytest.approx(0.6)


# ---------------------------------------------------------------- a λ-conditioned router: one checkpoint, a whole curve
SWEPT = (1.0, 10.0, 100.0, 1000.0)
CONDITIONED = "GRPO router (λ in prompt)"


def build_sweep_data():
    """`build_data` plus a scripted λ-conditioned router swept over SWEPT: big up to λ=10, mid to 100, tiny above."""
    from conditioned import by_lambda, price_ladder
    from xrouter_lite.explore.whatif import lm_sweep
    from xrouter_lite.routing.reward import RewardConfig

    data, pool, test = build_data()
    router = by_lambda(price_ladder("tiny", "mid", "big"))
    qs = pool.queries(split="test")
    episodes = {lam: run_episodes(router, qs, pool, mode="simple", reward_cfg=RewardConfig(lam=lam),
                                  state_lambda=True, progress=False) for lam in SWEPT}
    data.sweeps.append(lm_sweep(episodes, test, pool, CONDITIONED))
    return data, pool, test, episodes


@pytest.fixture(scope="module")
def swept():
    return build_sweep_data()


def test_conditioned_router_is_replayed_at_the_nearest_swept_lambda(swept):
    data, _, _, episodes = swept
    col = {m: j for j, m in enumerate(data.models)}
    for slider, want, model in ((0.1, 1.0, "big"), (4.0, 10.0, "big"), (40.0, 100.0, "mid"), (400.0, 1000.0, "tiny"),
                                (1e4, 1000.0, "tiny")):
        w = what_if(data, slider)
        assert w.nearest == {CONDITIONED: want}, slider
        run = w.runs[CONDITIONED]
        assert {c for calls in run.calls for c in calls} == {col[model]}  # the episodes told the nearest λ
        assert run.usd == pytest.approx([e.usd for e in episodes[want]])
        row = w.table.set_index("router").loc[CONDITIONED]
        assert row["lambda"] == want and row["kind"] == "router"
        # its reward is the reward at the slider's λ of what it did when told the nearest swept λ
        assert row["mean_reward"] == pytest.approx(
            np.mean([e.score * (1 - min(slider * e.usd, 0.8)) for e in episodes[want]]))
    # one hull over every swept point, AIQ with the setting's shared c_max
    w = what_if(data, 30.0)
    pts = [(np.mean([e.usd for e in episodes[lam]]), np.mean([e.score for e in episodes[lam]])) for lam in SWEPT]
    assert w.aiq[CONDITIONED] == pytest.approx(M.aiq(pts, w.c_max))
    assert set(w.hulls[CONDITIONED]) <= set(pts)
    assert w.c_max == pytest.approx(max(c for pts in w.hulls.values() for c, _ in pts))


def test_plane_and_trace_say_which_swept_lambda_is_shown(swept):
    data = swept[0]
    w = what_if(data, 40.0)
    plane = explorer_plane_figure(w)
    routers = next(t for t in plane.data if t.name == "router")
    assert f"{CONDITIONED}, told λ=100" in routers.text
    assert any(t.name.startswith(f"{CONDITIONED} hull (AIQ") for t in plane.data)
    page = trace_html(data, w, 0)
    assert "told λ=100 (the swept λ nearest to 40)" in page and "Cost weight" not in page.split("told")[0]


def test_conditioned_router_without_the_neighbours_of_a_budget(swept):
    """The budget guard and the pool picker apply to a conditioned router's replay as to any LM router's."""
    data = swept[0]
    w = what_if(data, 1.0, budget=0.005)  # told λ=1 it calls big, which the guard sends to tiny
    run = w.runs[CONDITIONED]
    assert run.remapped.all() and {c for calls in run.calls for c in calls} == {data.models.index("tiny")}


def test_lambda_sweep_figure_draws_the_curve_beside_every_reference(swept):
    from xrouter_lite.explore.figures import lambda_sweep_figure

    data, _, _, episodes = swept
    w = what_if(data, 30.0)
    rows = pd.DataFrame([{"lambda": lam, "usd_per_query": np.mean([e.usd for e in eps]),
                          "accuracy": np.mean([e.score for e in eps])} for lam, eps in episodes.items()])
    fig = lambda_sweep_figure(rows, w, CONDITIONED, aiq=w.aiq[CONDITIONED])
    _check_labelled(fig)
    d = fig.to_dict()
    curve = next(t for t in d["data"] if t["name"].startswith(f"{CONDITIONED}, λ in its prompt"))
    assert f"(AIQ {w.aiq[CONDITIONED]:.3f})" in curve["name"]
    assert list(curve["text"]) == ["λ=1", "λ=10", "λ=100", "λ=1000"] and "lines" in curve["mode"]
    assert list(curve["y"]) == pytest.approx(list(rows["accuracy"]))
    names = [t["name"] for t in d["data"]]
    for want in ("knn hull (AIQ", "zero router (single models) hull (AIQ"):
        assert any(n.startswith(want) for n in names), (want, names)
    markers = {n for t in d["data"] if t["name"] in ("router", "baseline", "oracle", "model") for n in t["text"]}
    assert {"GRPO router (λ=30)", "GRPO router (λ=1)", "knn", "oracle", "big", "tiny"} <= markers
    assert CONDITIONED not in markers  # the conditioned router is the curve, not one more marker


def test_aiq_difference_is_paired_and_centred_on_the_difference(swept):
    from xrouter_lite.explore.whatif import aiq_difference

    data = swept[0]
    w = what_if(data, 30.0)
    iv = aiq_difference(data, w, CONDITIONED, "knn", n_boot=300, seed=3)
    assert iv.estimate == pytest.approx(w.aiq[CONDITIONED] - w.aiq["knn"])
    assert iv.low <= iv.estimate <= iv.high and iv.n == len(data.queries) and iv.n_boot == 300
    assert aiq_difference(data, w, CONDITIONED, "knn", n_boot=300, seed=3) == iv  # seeded
    same = aiq_difference(data, w, "knn", "knn", n_boot=300, seed=3)  # paired: a family against itself is exactly 0
    assert (same.low, same.estimate, same.high) == (0.0, 0.0, 0.0)
    with pytest.raises(KeyError, match="no family"):
        aiq_difference(data, w, "nope", "knn")
