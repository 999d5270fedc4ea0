"""Plotly figures for the cost/quality story; pure functions of tidy tables, so tests read `fig.to_dict()`.

    >>> import pandas as pd
    >>> from xrouter_lite.explore import cost_accuracy_figure
    >>> pts = pd.DataFrame({"name": ["a", "b"], "kind": ["model", "model"],
    ...                     "usd_per_query": [0.001, 0.01], "accuracy": [0.6, 0.9]})
    >>> fig = cost_accuracy_figure(pts)
    >>> fig.layout.xaxis.title.text
    'USD per query (log scale)'
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from xrouter_lite.metrics import ndch, pareto_front

# One marker per kind of point, so single models, baselines and trained routers read apart at a glance.
KIND_STYLE = {
    "model": dict(symbol="circle", size=9, color="#7f7f7f"),
    "oracle": dict(symbol="star", size=16, color="#d62728"),
    "baseline": dict(symbol="diamond", size=10, color="#1f77b4"),
    "router": dict(symbol="square", size=12, color="#2ca02c"),
}
COST_AXIS = "USD per query (log scale)"


def _log_cost(values) -> np.ndarray:
    """Costs for a log axis: zero-cost points are drawn at a tiny positive cost instead of vanishing."""
    v = np.asarray(values, dtype=float)
    return np.where(v > 0, v, 1e-7)


def cost_accuracy_figure(points: pd.DataFrame, hulls: Mapping[str, Sequence[tuple[float, float]]] | None = None,
                         aiq: Mapping[str, float] | None = None, show_pareto: bool = True,
                         title: str = "Cost vs accuracy") -> go.Figure:
    """The cost-accuracy plane: one marker per row of `points` (name, kind, usd_per_query, accuracy).

    `hulls` maps a router name to its operating-point hull (drawn as a line, its AIQ in the legend when
    `aiq` has it); the Pareto front of every point is drawn dashed when `show_pareto`.
    """
    fig = go.Figure()
    for kind, group in points.groupby("kind", sort=False):
        style = KIND_STYLE.get(kind, KIND_STYLE["baseline"])
        fig.add_trace(go.Scatter(
            x=_log_cost(group["usd_per_query"]), y=group["accuracy"], mode="markers+text", name=kind,
            text=group["name"], textposition="top center", textfont=dict(size=9), marker=style,
            hovertemplate="%{text}<br>$%{x:.5f}/query<br>accuracy %{y:.3f}<extra></extra>"))
    if show_pareto and len(points) > 1:
        front = pareto_front(list(zip(points["usd_per_query"], points["accuracy"])))
        fig.add_trace(go.Scatter(x=_log_cost([c for c, _ in front]), y=[a for _, a in front], mode="lines",
                                 name="Pareto front", line=dict(dash="dash", color="#bbbbbb")))
    for name, hull in (hulls or {}).items():
        if not hull:
            continue
        label = f"{name} hull" + (f" (AIQ {aiq[name]:.3f})" if aiq and name in aiq else "")
        fig.add_trace(go.Scatter(x=_log_cost([c for c, _ in hull]), y=[a for _, a in hull],
                                 mode="lines+markers", name=label, line=dict(width=2), marker=dict(size=5)))
    fig.update_layout(title=title, xaxis_title=COST_AXIS, yaxis_title="accuracy", template="plotly_white",
                      legend=dict(orientation="v"), height=520)
    fig.update_xaxes(type="log")
    return fig


def hulls_of(points_by_router: Mapping[str, Sequence[tuple[float, float]]]) -> dict[str, list]:
    """The non-decreasing convex hull of each router's operating points."""
    return {name: ndch(pts) for name, pts in points_by_router.items() if len(pts)}


def per_task_figure(summary: pd.DataFrame, title: str = "Accuracy and cost per task") -> go.Figure:
    """Two panels, accuracy and USD per query, one bar group per task and one bar per model."""
    tasks = list(dict.fromkeys(summary["task"]))
    fig = make_subplots(rows=1, cols=2, subplot_titles=("accuracy", "USD per query (log scale)"))
    for model, group in summary.groupby("model", sort=False):
        group = group.set_index("task").reindex(tasks)
        fig.add_trace(go.Bar(x=tasks, y=group["accuracy"], name=model, legendgroup=model), row=1, col=1)
        fig.add_trace(go.Bar(x=tasks, y=group["usd_per_query"], name=model, legendgroup=model,
                             showlegend=False), row=1, col=2)
    fig.update_yaxes(title_text="accuracy", range=[0, 1], row=1, col=1)
    fig.update_yaxes(title_text="USD per query", type="log", row=1, col=2)
    fig.update_layout(title=title, barmode="group", template="plotly_white", height=480)
    return fig


def model_share_figure(share: pd.DataFrame, title: str = "Share of calls per model") -> go.Figure:
    """Stacked bars: for each (router, task) group in `share` (group, model, share), where calls went."""
    fig = go.Figure()
    for model, group in share.groupby("model", sort=False):
        fig.add_trace(go.Bar(x=group["group"], y=group["share"], name=model))
    fig.update_layout(title=title, barmode="stack", yaxis_title="share of calls", xaxis_title="",
                      template="plotly_white", height=440)
    return fig


def curves_figure(log: pd.DataFrame, columns: Sequence[str], x: str = "step",
                  title: str = "Training curves") -> go.Figure:
    """One small panel per logged column against `x` (loss, reward, USD per query, ...)."""
    cols = [c for c in columns if c in log.columns]
    fig = make_subplots(rows=1, cols=max(len(cols), 1), subplot_titles=cols)
    for i, col in enumerate(cols, start=1):
        data = log[[x, col]].dropna()
        fig.add_trace(go.Scatter(x=data[x], y=data[col], mode="lines+markers", name=col, showlegend=False),
                      row=1, col=i)
        fig.update_xaxes(title_text=x, row=1, col=i)
    fig.update_layout(title=title, template="plotly_white", height=360)
    return fig


def reward_vs_lambda_figure(table: pd.DataFrame, title: str = "Mean reward against lambda") -> go.Figure:
    """Lines of mean reward (columns router, lambda, mean_reward) against the cost weight lambda."""
    fig = go.Figure()
    for router, group in table.groupby("router", sort=False):
        group = group.sort_values("lambda")
        fig.add_trace(go.Scatter(x=group["lambda"], y=group["mean_reward"], mode="lines+markers", name=router))
    fig.update_layout(title=title, xaxis_title="lambda (reward per USD of cost)", yaxis_title="mean reward",
                      template="plotly_white", height=440)
    fig.update_xaxes(type="log")
    return fig


def pool_plane_figure(points: pd.DataFrame, title: str = "The model pool on the cost-accuracy plane") -> go.Figure:
    """Single models and the oracle (`points`: name, kind, usd_per_query, accuracy) with two reference lines.

    The dashed staircase is the Pareto front of the single models (kind "model"): the best single model
    within each budget. The shaded line is the zero router, their non-decreasing convex hull: what
    query-blind random mixing of models reaches. Mixing is linear in cost, so on the log cost axis its
    segments are drawn as the curves they are, not as straight lines.
    """
    from xrouter_lite.metrics import hull_value, zero_router

    single = points[points["kind"] == "model"]
    pts = list(zip(single["usd_per_query"], single["accuracy"]))
    fig = cost_accuracy_figure(points, show_pareto=False, title=title)
    front, hull = pareto_front(pts), zero_router(pts)
    fig.add_trace(go.Scatter(x=_log_cost([c for c, _ in front]), y=[a for _, a in front], mode="lines",
                             name="Pareto front (single models)", line=dict(dash="dash", color="#999999", shape="hv")))
    xs = [hull[0][0]]
    for (c0, _), (c1, _) in zip(hull, hull[1:]):
        xs += list(np.geomspace(max(c0, 1e-9), c1, 40)[1:]) if c0 > 0 else [c1]
    fig.add_trace(go.Scatter(x=_log_cost(xs), y=hull_value(hull, np.array(xs)), mode="lines",
                             name="zero router (query-blind mixing)", line=dict(color="#1f77b4", width=2),
                             fill="tozeroy", fillcolor="rgba(31,119,180,0.08)", hoverinfo="skip"))
    fig.update_yaxes(range=[0, 1.05])
    return fig


def color_by_legendgroup(fig: go.Figure, palette: Sequence[str] | None = None) -> go.Figure:
    """One colour per legend group across every panel (the oracle in its own red); many groups get many colours."""
    from plotly.colors import qualitative

    palette = list(palette or qualitative.Dark24)
    groups = list(dict.fromkeys(t.legendgroup or t.name for t in fig.data if (t.legendgroup or t.name) != "oracle"))
    for t in fig.data:
        group = t.legendgroup or t.name
        t.marker.color = KIND_STYLE["oracle"]["color"] if group == "oracle" else palette[groups.index(group) % len(palette)]
    return fig


def sensitivity_figure(points: pd.DataFrame, title: str = "Moving one assumption") -> go.Figure:
    """Points that move with a setting (rows with a `setting` label, joined per name) over fixed grey points.

    `points`: name, usd_per_query, accuracy, setting (e.g. "5x"; empty or NaN for points that do not move).
    """
    fig = go.Figure()
    label = points["setting"].fillna("").astype(str)
    fixed, moving = points[label == ""], points[label != ""]
    fig.add_trace(go.Scatter(x=_log_cost(fixed["usd_per_query"]), y=fixed["accuracy"], mode="markers+text",
                             name="other models (fixed)", text=fixed["name"], textposition="top center",
                             textfont=dict(size=9, color="#999999"), marker=dict(size=8, color="#bbbbbb"),
                             hovertemplate="%{text}<br>$%{x:.5f}/query<br>accuracy %{y:.3f}<extra></extra>"))
    for name, group in moving.groupby("name", sort=False):
        fig.add_trace(go.Scatter(
            x=_log_cost(group["usd_per_query"]), y=group["accuracy"], mode="lines+markers+text", name=name,
            text=group["setting"].astype(str), textposition="bottom center", marker=dict(size=11),
            hovertemplate=name + " at %{text}<br>$%{x:.5f}/query<br>accuracy %{y:.3f}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=COST_AXIS, yaxis_title="accuracy", template="plotly_white",
                      height=480)
    fig.update_xaxes(type="log")
    return fig
