"""The explorer's widget callbacks: moving a control changes the figures the way it should.

The callbacks are plain functions of the control values (`explorer_view`, `query_options`, `trace_view`); the
`Explorer` widget is driven by setting its controls, as a user would, and read through its `view`.
"""

from __future__ import annotations

import pytest

from test_explore import build_data
from xrouter_lite.explore.widgets import Explorer, explorer_view, query_options, trace_view


@pytest.fixture(scope="module")
def data():
    return build_data()[0]


def _points(fig, kind: str) -> dict[str, tuple[float, float]]:
    """name -> (x, y) of the markers of one kind in the cost-accuracy plane."""
    trace = next(t for t in fig.data if t.name == kind)
    return {n: (x, y) for n, x, y in zip(trace.text, trace.x, trace.y)}


def _names_in(fig) -> str:
    return str([t.to_plotly_json() for t in fig.data])


def test_view_has_every_figure_and_the_headline_table(data):
    view = explorer_view(data, 30.0)
    assert set(view.figures) == {"plane", "per_task", "share", "reward"}
    assert all(f.layout.title.text for f in view.figures.values())
    assert "AIQ" in view.table.columns


def test_lambda_moves_the_baselines_but_not_the_lm_routers(data):
    low, high = explorer_view(data, 0.1), explorer_view(data, 1e4)
    a, b = _points(low.figures["plane"], "baseline"), _points(high.figures["plane"], "baseline")
    assert b["knn"][0] < a["knn"][0]  # re-decided: cheaper at a high lambda
    assert b["best model at λ"] != a["best model at λ"]  # the best fixed model changes from big to tiny
    ra, rb = _points(low.figures["plane"], "router"), _points(high.figures["plane"], "router")
    assert ra == rb  # LM routers stay at the operating points they were trained at...
    rewards = [v.table.set_index("router").loc["GRPO router (λ=30)", "reward at λ=" + f"{lam:g}"]
               for v, lam in ((low, 0.1), (high, 1e4))]
    assert rewards[1] < rewards[0]  # ...but their reward is recomputed at the slider's lambda
    mark = next(t for t in high.figures["reward"].data if t.name.startswith("λ ="))
    assert list(mark.x) == [1e4, 1e4]  # the slider's lambda, marked on the reward curve


def test_budget_moves_the_expensive_points(data):
    free, tight = explorer_view(data, 30.0), explorer_view(data, 30.0, budget=0.005)
    assert _points(tight.figures["plane"], "model")["big"][0] < _points(free.figures["plane"], "model")["big"][0]
    assert _points(tight.figures["plane"], "oracle")["oracle"][1] <= _points(free.figures["plane"], "oracle")["oracle"][1]
    assert "budget $0.005/call" in tight.figures["plane"].layout.title.text


def test_excluded_models_vanish_from_every_figure(data):
    view = explorer_view(data, 30.0, allowed=["tiny", "mid"])
    for name, fig in view.figures.items():
        assert "'big'" not in _names_in(fig), name
    assert "big" not in set(view.table["router"])
    share_models = {t.name for t in view.figures["share"].data}
    assert share_models <= {"tiny", "mid"}


def test_task_filter_redraws_per_task_and_queries(data):
    view = explorer_view(data, 30.0, tasks=["crux"])
    xs = {x for t in view.figures["per_task"].data for x in t.x}
    assert xs == {"crux"}
    options = query_options(data, ["crux"])
    assert options and all(" · crux · " in label for label, _ in options)
    assert len(options) + len(query_options(data, ["gsm"])) == len(data.queries)


def test_trace_view_follows_the_setting(data):
    big = data.models.index("big")
    i = next(i for i, calls in enumerate(data.lm[0].calls) if calls == (big,))
    assert "(fallback)" not in trace_view(data, i, 30.0)
    assert "(fallback)" in trace_view(data, i, 30.0, allowed=["tiny", "mid"])


def test_explorer_widget_redraws_when_controls_move(data):
    ex = Explorer(data, lam=30.0)
    first = ex.view
    ex.lam.value = 1000.0
    assert ex.view is not first and ex.view.what_if.lam == pytest.approx(1000.0)
    ex.use_budget.value = True
    assert ex.view.what_if.budget == pytest.approx(ex.budget.value) and not ex.budget.disabled
    ex.use_budget.value = False
    ex.models["big"].value = False
    assert "big" not in ex.view.what_if.allowed and "'big'" not in _names_in(ex.view.figures["plane"])
    ex.tasks["gsm"].value = False
    assert ex.view.what_if.tasks == ["crux"]
    assert all(" · crux · " in label for label, _ in ex.query.options)
    ex.query.value = ex.query.options[0][1]
    assert data.queries["query_id"][ex.query.value] in ex.trace.value
    for box in ex.models.values():
        box.value = False
    assert "at least one model" in ex.status.value  # nothing to route to: a message, not an exception


def test_headline_table_is_displayed_with_units(data):
    from xrouter_lite.explore.widgets import styled

    page = styled(explorer_view(data, 30.0).table).to_html()
    assert "%" in page  # savings in percent
    assert "oracle (upper bound)" in page


def test_the_lambda_slider_drives_the_conditioned_router():
    from test_explore import CONDITIONED, build_sweep_data
    from xrouter_lite.explore.widgets import nearest_note

    data = build_sweep_data()[0]
    ex = Explorer(data, lam=1.0)
    at = {}
    for lam in (1.0, 60.0, 1000.0):
        ex.lam.value = lam
        w = ex.view.what_if
        at[lam] = _points(ex.view.figures["plane"], "router")[f"{CONDITIONED}, told λ={w.nearest[CONDITIONED]:g}"]
        assert f"{CONDITIONED} is told λ={w.nearest[CONDITIONED]:g}" in ex.status.value
    assert at[1.0][0] > at[60.0][0] > at[1000.0][0]  # cost falls as the slider's λ rises: its replay follows
    assert "nearest to 30" in nearest_note(what_if_at(data, 30.0))
    assert nearest_note(what_if_at(data, 10.0)) == f"{CONDITIONED} is told λ=10"  # a swept λ: no rounding to say
    assert nearest_note(what_if_at(build_data()[0], 10.0)) == ""  # no conditioned router: nothing to say


def what_if_at(data, lam):
    from xrouter_lite.explore.whatif import what_if

    return what_if(data, lam, hulls=False)
