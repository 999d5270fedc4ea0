"""ipywidgets controls for the cost/quality explorer, wired to the pure functions of `whatif` and `figures`.

    >>> from xrouter_lite.explore.whatif import eval_data               # doctest: +SKIP
    >>> from xrouter_lite.explore.widgets import Explorer, explorer_view
    >>> ex = Explorer(eval_data(pool, train, test, lm_points=points), lam=30.0)   # doctest: +SKIP
    >>> ex.widget                              # drag the lambda slider   # doctest: +SKIP
    >>> explorer_view(data, lam=300.0, budget=1e-3).figures["plane"]   # what a redraw shows   # doctest: +SKIP

The λ slider re-decides the baselines, re-prices every reward, and drives a λ-conditioned router (`whatif.LMSweep`):
it is replayed at its swept λ nearest to the slider's, and the status line (`nearest_note`) says which.

Every callback is a plain function of the control values (`explorer_view`, `query_options`, `trace_view`),
so tests call them directly; the widget only reads its controls, calls them and shows what they return.
Figures are drawn with `fig.show()` inside `ipywidgets.Output` areas (no FigureWidget), which works in
JupyterLab, classic Jupyter and Colab; under papermill the widget renders its initial state and waits for nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import pandas as pd

from xrouter_lite.explore.figures import (explorer_plane_figure, model_share_figure, per_task_figure,
                                          reward_vs_lambda_figure, setting_label)
from xrouter_lite.explore.whatif import (EvalData, WhatIf, column_format, default_routers, headline_table,
                                         per_task_table, reward_lambda_table, share_table, trace_html, what_if)

LAMBDA_LOG10 = (-1.0, 4.0)  # the lambda slider spans 0.1 .. 10,000 reward points per USD (log scale)
BUDGET_LOG10 = (-5.0, -1.0)  # the budget slider spans $0.00001 .. $0.1 per call (log scale)
# Lambdas the reward curve is drawn at: costs here are $1e-4..$1e-2 per query, so lambda only bites above ~10.
REWARD_CURVE_LAMBDAS = tuple(float(x) for x in np.round(np.geomspace(0.1, 1e4, 26), 6))


@dataclass
class ExplorerView:
    """What the explorer shows at one setting of its controls."""

    what_if: WhatIf
    figures: dict  # name -> plotly Figure: plane, per_task, share, reward
    table: pd.DataFrame  # the headline table at this setting


def explorer_view(data: EvalData, lam: float, budget: float | None = None, allowed: Sequence[str] | None = None,
                  tasks: Sequence[str] | None = None, reward_table: pd.DataFrame | None = None) -> ExplorerView:
    """Every figure and the headline table for one setting (`reward_table` reuses a precomputed reward curve)."""
    w = what_if(data, lam, budget, allowed, tasks)
    shown = default_routers(w)
    if reward_table is None:
        reward_table = reward_curve(data, budget, allowed, tasks)
    where = setting_label(w)
    figures = {
        "plane": explorer_plane_figure(w),
        "per_task": per_task_figure(per_task_table(data, w, shown),
                                    title=f"Accuracy and USD per query per task ({where})"),
        "share": model_share_figure(share_table(data, w, shown),
                                    title=f"Where the calls go: share of calls per model, per router and task ({where})"),
        "reward": reward_vs_lambda_figure(reward_table[reward_table["router"].isin(shown)],
                                          title=f"Mean reward against λ ({setting_label(w, lam=False)})", mark=lam),
    }
    return ExplorerView(w, figures, headline_table(w))


def reward_curve(data: EvalData, budget: float | None = None, allowed: Sequence[str] | None = None,
                 tasks: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean reward of every router over `REWARD_CURVE_LAMBDAS` (it does not depend on the slider's lambda)."""
    return reward_lambda_table(data, REWARD_CURVE_LAMBDAS, budget, allowed, tasks)


def nearest_note(w: WhatIf) -> str:
    """Which swept λ each λ-conditioned router is replayed at for the slider's λ ('' when there is none)."""
    return "; ".join(f"{name} is told λ={lam:g}" + ("" if lam == w.lam else f" (its swept λ nearest to {w.lam:g})")
                     for name, lam in w.nearest.items())


def styled(head: pd.DataFrame):
    """The headline table for display: USD to 6 decimals, savings in percent, 'not reached' where none."""
    fmt = {c: column_format(c) for c in head.columns if c not in ("router", "kind")}
    return head.style.format(fmt, na_rep="not reached").hide(axis="index")


def query_options(data: EvalData, tasks: Sequence[str] | None = None, width: int = 70) -> list[tuple[str, int]]:
    """(label, row index) of every evaluated query of the chosen tasks, for the query browser."""
    keep = data.queries["task"].isin(tasks if tasks is not None else data.tasks).to_numpy()
    return [(f"{i:>3} · {task} · {' '.join(str(q).split())[:width]}", int(i))
            for i, (task, q, k) in enumerate(zip(data.queries["task"], data.queries["question"], keep)) if k]


def trace_view(data: EvalData, index: int, lam: float, budget: float | None = None,
               allowed: Sequence[str] | None = None, tasks: Sequence[str] | None = None) -> str:
    """HTML of one query's trace at a setting: every shown router's calls, grade and cost, LM episodes in full."""
    w = what_if(data, lam, budget, allowed, tasks, hulls=False)
    return trace_html(data, w, index, default_routers(w))


class Explorer:
    """The interactive explorer: lambda and budget sliders, a pool picker, a task filter, figures, a query browser.

    Controls are public attributes (`lam`, `use_budget`, `budget`, `models`, `tasks`, `query`) so a test or a
    script can set them; each change redraws through `explorer_view`. `view` holds the last drawn state.
    """

    def __init__(self, data: EvalData, lam: float = 30.0, budget: float | None = None, renderer: str | None = None):
        import ipywidgets as W

        self.data, self.renderer = data, renderer  # renderer: a plotly renderer name; None = plotly's default
        self.lam = W.FloatLogSlider(value=lam, base=10, min=LAMBDA_LOG10[0], max=LAMBDA_LOG10[1], step=0.05,
                                    description="λ", continuous_update=False, readout_format=".4g",
                                    layout=W.Layout(width="420px"))
        self.use_budget = W.Checkbox(value=budget is not None, description="per-call budget", indent=False,
                                     layout=W.Layout(width="130px"))
        self.budget = W.FloatLogSlider(value=budget or 1e-3, base=10, min=BUDGET_LOG10[0], max=BUDGET_LOG10[1],
                                       step=0.1, description="USD", continuous_update=False, readout_format=".1e",
                                       disabled=budget is None, layout=W.Layout(width="360px"))
        self.models = {m: W.Checkbox(value=True, description=m, indent=False, layout=W.Layout(width="260px"))
                       for m in data.models}
        self.tasks = {t: W.Checkbox(value=True, description=t, indent=False, layout=W.Layout(width="120px"))
                      for t in data.tasks}
        self.query = W.Dropdown(options=query_options(data), description="query", layout=W.Layout(width="760px"))
        self.status = W.HTML()
        self.outputs = {name: W.Output() for name in ("plane", "per_task", "share", "reward", "table")}
        self.trace = W.HTML()
        self.view: ExplorerView | None = None
        self._reward = lru_cache(maxsize=32)(self._reward_curve)
        for control in [self.lam, self.use_budget, self.budget, *self.models.values(), *self.tasks.values()]:
            control.observe(self._changed, names="value")
        self.query.observe(lambda _: self.show_trace(), names="value")
        self.widget = W.VBox([
            W.HTML("<b>Cost/quality explorer</b>: every figure below redraws when a control changes."),
            W.HBox([self.lam, self.use_budget, self.budget]),
            W.HTML("models the routers may use (LM routers' calls to unticked models go to the cheapest ticked one):"),
            W.GridBox(list(self.models.values()), layout=W.Layout(grid_template_columns="repeat(4, 270px)")),
            W.HBox([W.HTML("tasks:&nbsp;"), *self.tasks.values()]),
            self.status,
            self.outputs["plane"], self.outputs["table"], self.outputs["reward"],
            self.outputs["per_task"], self.outputs["share"],
            W.HTML("<b>Query browser</b>: what each router did on one query"), self.query, self.trace,
        ])
        self.update()

    # -- reading the controls
    def setting(self) -> dict:
        """The control values as `explorer_view` arguments."""
        allowed = [m for m, box in self.models.items() if box.value]
        tasks = [t for t, box in self.tasks.items() if box.value]
        return {"lam": float(self.lam.value), "budget": float(self.budget.value) if self.use_budget.value else None,
                "allowed": allowed, "tasks": tasks}

    def _reward_curve(self, budget, allowed: tuple, tasks: tuple) -> pd.DataFrame:
        return reward_curve(self.data, budget, list(allowed), list(tasks))

    # -- redrawing
    def _changed(self, _change=None) -> None:
        self.budget.disabled = not self.use_budget.value
        self.update()

    def update(self) -> None:
        """Recompute the view from the current control values and redraw every figure and the table."""
        s = self.setting()
        if not s["allowed"] or not s["tasks"]:
            self.status.value = "<span style='color:#d62728'>tick at least one model and one task</span>"
            return
        reward = self._reward(s["budget"], tuple(s["allowed"]), tuple(s["tasks"]))
        self.view = explorer_view(self.data, reward_table=reward, **s)
        w = self.view.what_if
        ref, lm = w.reference, w.table[w.table["kind"] == "router"]
        fell = float(lm["fallback_rate"].max()) if len(lm) else 0.0
        note = f"; queries where an LM router's call went to the fallback: up to {fell:.0%}" if fell > 0 else ""
        told = nearest_note(w)
        self.status.value = (f"most accurate allowed model: <b>{ref['model']}</b> ({ref['accuracy']:.3f} at "
                             f"${ref['usd_per_query']:.5f}/query){note}" + (f"<br>{told}" if told else ""))
        self._draw()
        options = query_options(self.data, s["tasks"])
        if [o[1] for o in self.query.options] != [o[1] for o in options]:
            self.query.options = options  # the observer redraws the trace if the chosen query changes
        self.show_trace()

    def _draw(self) -> None:
        """Show the view's figures and table in their Output areas (only inside a running kernel)."""
        from IPython import get_ipython
        from IPython.display import display

        from xrouter_lite.notebook import interactive_renderer  # no PNG copy per live redraw

        if getattr(get_ipython(), "kernel", None) is None:
            return  # a plain Python process (a test, a script): `view` holds everything, nothing to draw into
        for name, out in self.outputs.items():
            with out:
                out.clear_output(wait=True)
                if name == "table":
                    display(styled(self.view.table))
                else:
                    self.view.figures[name].show(renderer=self.renderer or interactive_renderer())

    def show_trace(self) -> None:
        """Show the chosen query's trace at the current setting."""
        if self.query.value is None:
            self.trace.value = ""
            return
        self.trace.value = trace_view(self.data, self.query.value, **self.setting())
