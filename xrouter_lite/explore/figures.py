"""Plotly figures for the cost/quality story: pure functions of tidy tables, so tests read `fig.to_dict()`.

    >>> import pandas as pd
    >>> from xrouter_lite.explore.figures import cost_accuracy_figure
    >>> pts = pd.DataFrame({"name": ["a", "b"], "kind": ["model", "model"],
    ...                     "usd_per_query": [0.001, 0.01], "accuracy": [0.6, 0.9]})
    >>> fig = cost_accuracy_figure(pts)
    >>> fig.layout.xaxis.title.text
    'USD per query (log scale)'

`explorer_plane_figure` draws one setting of notebook 04's explorer (a `whatif.WhatIf`); `write_figure` saves a
figure as PNG when kaleido and a Chromium work, else as HTML; `write_headline` writes a run's headline files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from xrouter_lite.routing.metrics import ndch, pareto_front

from xrouter_lite.explore.whatif import WhatIf, markdown_table  # explore draws and writes what `whatif` computes

# One marker per kind of point, so single models, baselines and trained routers read apart at a glance.
KIND_STYLE = {
    "model": dict(symbol="circle", size=9, color="#7f7f7f"),
    "oracle": dict(symbol="star", size=16, color="#d62728"),
    "baseline": dict(symbol="diamond", size=10, color="#1f77b4"),
    "router": dict(symbol="square", size=12, color="#2ca02c"),
}
PALETTE = tuple(c for c in qualitative.Dark24 if c != "#FB0D0D")  # one per model; no pure red: only the oracle is red
HULL_COLORS = ("#2ca02c", "#17becf", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#bcbd22")  # one per hull
COST_AXIS = "USD per query (log scale)"


def _log_cost(values, floor: float = 1e-7) -> np.ndarray:
    """Costs for a log axis: zero-cost points are drawn at `floor` (a small positive cost) instead of vanishing."""
    v = np.asarray(values, dtype=float)
    return np.where(v > 0, v, floor)


def _hull_curve(hull: Sequence[tuple[float, float]], steps: int = 40, floor: float = 1e-7) -> tuple[np.ndarray, np.ndarray]:
    """A hull as the curve it is on a log cost axis: mixing is linear in cost, so segments bend on a log axis.

    A hull that starts at the free point (0, 0) (`metrics.verdict_hull`) is drawn from the axis's left edge
    `floor`: its first segment, mixing "answer nothing" with a model, is a chord that rises from 0 there.
    """
    from xrouter_lite.routing.metrics import hull_value

    xs = [hull[0][0]]
    for (c0, _), (c1, _) in zip(hull, hull[1:]):
        start = c0 if c0 > 0 else min(floor, c1 / 100)
        xs += list(np.geomspace(start, c1, steps)[1:] if c0 > 0 else np.geomspace(start, c1, steps))
    xs = np.asarray(xs, dtype=float)
    return _log_cost(xs, floor), np.asarray(hull_value(hull, xs), dtype=float).reshape(-1)


def short_name(model: str) -> str:
    """A model id for a crowded plot: no organisation prefix, no date suffix (gpt-4o-2024-08-06 -> gpt-4o)."""
    return re.sub(r"-(\d{4}-\d{2}-\d{2}|\d{8}|\d{4})$", "", model.split("/")[-1])


def model_colors(names: Sequence[str], palette: Sequence[str] | None = None) -> dict[str, str]:
    """One colour per name, stable in the given order; the oracle always in its own red."""
    palette = list(palette or PALETTE)
    others = [n for n in dict.fromkeys(names) if n != "oracle"]
    colors = {n: palette[i % len(palette)] for i, n in enumerate(others)}
    return colors | ({"oracle": KIND_STYLE["oracle"]["color"]} if "oracle" in names else {})


def cost_accuracy_figure(points: pd.DataFrame, hulls: Mapping[str, Sequence[tuple[float, float]]] | None = None,
                         aiq: Mapping[str, float] | None = None, show_pareto: bool = True,
                         title: str = "Cost vs accuracy") -> go.Figure:
    """The cost-accuracy plane: one marker per row of `points` (name, kind, usd_per_query, accuracy).

    `hulls` maps a router name to its operating-point hull (drawn as a line, its AIQ in the legend when
    `aiq` has it); the Pareto front of every point is drawn dashed when `show_pareto`. Points that cost
    nothing (a router answering directly, or failing) sit at half the cheapest positive cost, the axis's left edge.
    """
    fig = go.Figure()
    costs = pd.to_numeric(points["usd_per_query"], errors="coerce")
    floor = float(costs[costs > 0].min()) / 2 if (costs > 0).any() else 1e-7
    for kind, group in points.groupby("kind", sort=False):
        style = KIND_STYLE.get(kind, KIND_STYLE["baseline"])
        fig.add_trace(go.Scatter(
            x=_log_cost(group["usd_per_query"], floor), y=group["accuracy"], mode="markers+text", name=kind,
            text=group["name"], textposition="top center", textfont=dict(size=9), marker=style,
            hovertemplate="%{text}<br>$%{x:.5f}/query<br>accuracy %{y:.3f}<extra></extra>"))
    if show_pareto and len(points) > 1:
        front = pareto_front(list(zip(points["usd_per_query"], points["accuracy"])))
        # A staircase: the best accuracy reachable at each budget by picking one of the points.
        fig.add_trace(go.Scatter(x=_log_cost([c for c, _ in front], floor), y=[a for _, a in front], mode="lines",
                                 name="Pareto front", line=dict(dash="dash", color="#bbbbbb", shape="hv")))
    for name, hull in (hulls or {}).items():
        if not hull:
            continue
        label = f"{name} hull" + (f" (AIQ {aiq[name]:.3f})" if aiq and name in aiq else "")
        xs, ys = _hull_curve(hull, floor=floor)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=label, line=dict(width=2), legendgroup=label,
                                 hovertemplate=label + "<br>$%{x:.5f}/query<br>accuracy %{y:.3f}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=COST_AXIS, yaxis_title="accuracy", template="plotly_white",
                      legend=dict(orientation="v"), height=520)
    fig.update_xaxes(type="log", exponentformat="none")  # $0.0001, not 100µ
    return fig


def hulls_of(points_by_router: Mapping[str, Sequence[tuple[float, float]]]) -> dict[str, list]:
    """The non-decreasing convex hull of each router's operating points."""
    return {name: ndch(pts) for name, pts in points_by_router.items() if len(pts)}


def per_task_figure(summary: pd.DataFrame, title: str = "Accuracy and cost per task") -> go.Figure:
    """Two panels, accuracy and USD per query, one bar group per task and one bar per model.

    A model keeps one colour in both panels (the oracle in red); `color_by_legendgroup` can recolour.
    """
    tasks = list(dict.fromkeys(summary["task"]))
    colors = model_colors(list(dict.fromkeys(summary["model"])))
    fig = make_subplots(rows=1, cols=2, subplot_titles=("accuracy", "USD per query (log scale)"))
    for model, group in summary.groupby("model", sort=False):
        group = group.set_index("task").reindex(tasks)
        fig.add_trace(go.Bar(x=tasks, y=group["accuracy"], name=model, legendgroup=model,
                             marker_color=colors[model]), row=1, col=1)
        fig.add_trace(go.Bar(x=tasks, y=group["usd_per_query"], name=model, legendgroup=model,
                             marker_color=colors[model], showlegend=False), row=1, col=2)
    fig.update_xaxes(title_text="task", row=1, col=1)
    fig.update_xaxes(title_text="task", row=1, col=2)
    fig.update_yaxes(title_text="accuracy", range=[0, 1], row=1, col=1)
    fig.update_yaxes(title_text="USD per query", type="log", exponentformat="none", row=1, col=2)
    fig.update_layout(title=title, barmode="group", template="plotly_white", height=480)
    return fig


def model_share_figure(share: pd.DataFrame, title: str = "Share of calls per model") -> go.Figure:
    """Stacked bars: for each (router, task) group in `share` (group, model, share), where calls went."""
    fig = go.Figure()
    colors = model_colors(list(dict.fromkeys(share["model"])))
    for model, group in share.groupby("model", sort=False):
        fig.add_trace(go.Bar(x=group["group"], y=group["share"], name=model, marker_color=colors[model],
                             hovertemplate=model + "<br>%{x}: %{y:.1%} of calls<extra></extra>"))
    fig.update_layout(title=title, barmode="stack", yaxis_title="share of calls (0-1)", xaxis_title="router · task",
                      template="plotly_white", height=440, legend_title_text="model called")
    # Groups in the order given (a model missing from the first group must not reorder the axis).
    fig.update_xaxes(categoryorder="array", categoryarray=list(dict.fromkeys(share["group"])))
    fig.update_yaxes(range=[0, 1])
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


def reward_vs_lambda_figure(table: pd.DataFrame, title: str = "Mean reward against lambda",
                            mark: float | None = None) -> go.Figure:
    """Lines of mean reward (columns router, lambda, mean_reward) against the cost weight lambda.

    `mark` draws a vertical line at one lambda (the explorer's slider).
    """
    fig = go.Figure()
    for router, group in table.groupby("router", sort=False):
        group = group.sort_values("lambda")
        fig.add_trace(go.Scatter(x=group["lambda"], y=group["mean_reward"], mode="lines+markers", name=router,
                                 marker=dict(size=5)))
    fig.update_layout(title=title, xaxis_title="lambda (reward points lost per USD of cost, log scale)",
                      yaxis_title="mean reward per query", template="plotly_white", height=440)
    fig.update_xaxes(type="log")
    if mark is not None and mark > 0:  # a trace, not a shape: shapes and annotations on log axes disagree on units
        lo = float(table["mean_reward"].min()) if len(table) else 0.0
        hi = float(table["mean_reward"].max()) if len(table) else 1.0
        fig.add_trace(go.Scatter(x=[mark, mark], y=[min(lo, 0.0), max(hi, 1.0)], mode="lines", name=f"λ = {mark:g}",
                                 line=dict(color="#999999", dash="dot"), hoverinfo="skip"))
    return fig


def pool_plane_figure(points: pd.DataFrame, title: str = "The model pool on the cost-accuracy plane") -> go.Figure:
    """Single models and the oracle (`points`: name, kind, usd_per_query, accuracy) with two reference lines.

    The dashed staircase is the Pareto front of the single models (kind "model"): the best single model
    within each budget. The shaded line is the zero router, their non-decreasing convex hull: what
    query-blind random mixing of models reaches. Mixing is linear in cost, so on the log cost axis its
    segments are drawn as the curves they are, not as straight lines.
    """
    from xrouter_lite.routing.metrics import zero_router

    single = points[points["kind"] == "model"]
    pts = list(zip(single["usd_per_query"], single["accuracy"]))
    fig = cost_accuracy_figure(points, show_pareto=False, title=title)
    front, hull = pareto_front(pts), zero_router(pts)
    fig.add_trace(go.Scatter(x=_log_cost([c for c, _ in front]), y=[a for _, a in front], mode="lines",
                             name="Pareto front (single models)", line=dict(dash="dash", color="#999999", shape="hv")))
    xs, ys = _hull_curve(hull)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines",
                             name="zero router (query-blind mixing)", line=dict(color="#1f77b4", width=2),
                             fill="tozeroy", fillcolor="rgba(31,119,180,0.08)", hoverinfo="skip"))
    fig.update_yaxes(range=[0, 1.05])
    return fig


def color_by_legendgroup(fig: go.Figure, palette: Sequence[str] | None = None) -> go.Figure:
    """One colour per legend group across every panel (the oracle in its own red); many groups get many colours."""
    colors = model_colors([t.legendgroup or t.name for t in fig.data], palette)
    for t in fig.data:
        t.marker.color = colors[t.legendgroup or t.name]
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
    fig.update_xaxes(type="log", exponentformat="none")
    return fig


def setting_label(w: "WhatIf", lam: bool = True) -> str:
    """One what-if setting in words, for titles: "λ=30, no budget, 12 models, all tasks"."""
    parts = [f"λ={w.lam:g}"] if lam else []
    parts.append("no budget" if w.budget is None else f"budget ${w.budget:g}/call")
    parts.append(f"{len(w.allowed)} models")
    parts.append("all tasks" if w.mask.all() else ", ".join(w.tasks))
    return ", ".join(parts)


def _plane_name(w: "WhatIf", name: str, kind: str) -> str:
    """A marker's label: short model names; a λ-conditioned router says which swept λ it is replayed at."""
    if kind == "model":
        return short_name(name)
    return f"{name}, told λ={w.nearest[name]:g}" if name in w.nearest else name


def explorer_plane_figure(w: "WhatIf", title: str | None = None) -> go.Figure:
    """The cost-accuracy plane of one what-if setting: every router, single models, oracle, Pareto front,
    the hull of every family with several operating points (AIQ in the legend) and the zero router.

    A λ-conditioned router's marker is its point at the swept λ nearest to the setting's (its label says which);
    its hull runs through all its swept points."""
    t = w.table
    points = pd.DataFrame({"name": [_plane_name(w, n, k) for n, k in zip(t["router"], t["kind"])],
                           "kind": t["kind"], "usd_per_query": t["usd_per_query"], "accuracy": t["accuracy"]})
    # A hull for every family with several operating points (LM checkpoints, learned routers' lambda grid,
    # the single models = the zero router); one-point baselines have their AIQ in the tables instead.
    lm = set(t.loc[t["kind"] == "router", "family"])
    label = {f: "zero router (single models)" if f == "single models" else f for f in w.hulls}
    keep = [f for f in w.hulls if f in lm or f in ("knn", "mlp", "single models")]
    hulls = {label[f]: w.hulls[f] for f in keep}
    aiq = {label[f]: w.aiq[f] for f in keep if f in w.aiq}
    fig = cost_accuracy_figure(points, hulls, aiq, title=title or f"Cost vs accuracy at {setting_label(w)}")
    palette = iter(HULL_COLORS)
    for trace in fig.data:
        if trace.name.endswith(")") and " hull" in trace.name:
            zero = trace.name.startswith("zero router")
            trace.line.color = KIND_STYLE["baseline"]["color"] if zero else next(palette, None)
            trace.line.dash = "dot" if zero else None
    fig.update_yaxes(title_text="accuracy (share of queries answered correctly)", range=[0, 1.05])
    return fig


def lambda_sweep_figure(sweep: pd.DataFrame, w: "WhatIf", name: str, aiq: float | None = None,
                        title: str | None = None) -> go.Figure:
    """One λ-conditioned checkpoint's cost-accuracy curve over the prompt's λ (`sweep`: lambda, usd_per_query,
    accuracy; one row per swept λ), beside the other routers of the setting `w`: routers trained at one λ each
    (squares), the kNN and MLP hulls over their λ grids, the zero router (the single models' hull), single models
    and the oracle. `aiq`: the sweep's AIQ, shown in its legend entry (computed with the setting's c_max)."""
    t = w.table
    others = t[(t["router"] != name) & ((t["kind"] == "router") | t["router"].isin(["knn", "mlp", "oracle"])
                                        | (t["kind"] == "model"))]
    points = pd.DataFrame({"name": [short_name(n) if k == "model" else n for n, k in zip(others["router"], others["kind"])],
                           "kind": others["kind"], "usd_per_query": others["usd_per_query"],
                           "accuracy": others["accuracy"]})
    label = {"single models": "zero router (single models)"}
    keep = [f for f in ("knn", "mlp", "single models") if f in w.hulls]
    hulls = {label.get(f, f): w.hulls[f] for f in keep}
    fig = cost_accuracy_figure(points, hulls, {label.get(f, f): w.aiq[f] for f in keep if f in w.aiq},
                               show_pareto=False,
                               title=title or f"One checkpoint, a whole curve: {name} told λ in its prompt")
    palette = iter(HULL_COLORS[1:])
    for trace in fig.data:
        if " hull" in trace.name:
            zero = trace.name.startswith("zero router")
            trace.line.color = KIND_STYLE["baseline"]["color"] if zero else next(palette, None)
            trace.line.dash = "dot" if zero else None
    costs = pd.to_numeric(points["usd_per_query"], errors="coerce")
    floor = float(costs[costs > 0].min()) / 2 if (costs > 0).any() else 1e-7
    sweep = sweep.sort_values("lambda")
    legend = f"{name}, λ in its prompt" + (f" (AIQ {aiq:.3f})" if aiq is not None else "")
    fig.add_trace(go.Scatter(
        x=_log_cost(sweep["usd_per_query"], floor).tolist(), y=sweep["accuracy"].astype(float).tolist(),
        mode="lines+markers+text", name=legend,
        text=[f"λ={v:g}" for v in sweep["lambda"]], textposition="bottom right", textfont=dict(size=9),
        line=dict(color=KIND_STYLE["router"]["color"], width=2), marker=dict(symbol="square", size=9),
        hovertemplate=name + " told %{text}<br>$%{x:.5f}/query<br>accuracy %{y:.3f}<extra></extra>"))
    fig.update_yaxes(title_text="accuracy (share of queries answered correctly)", range=[0, 1.05])
    return fig


def write_figure(fig: go.Figure, path, png: bool = True) -> tuple[Path, str]:
    """`fig` as a PNG at `path` when kaleido and Chrome/Chromium work, else as interactive HTML beside it.

    Never raises for the picture: the returned line says which file was written and, for HTML, why.
    """
    path = Path(path)
    if png:
        try:  # kaleido >= 1 drives a Chrome or Chromium it finds on the machine (or at $BROWSER_PATH)
            fig.write_image(path, width=1200, height=650, scale=2)
            return path, f"wrote {path}"
        except Exception as exc:  # no kaleido, no browser, a browser that fails to start: fall back to HTML
            reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
    else:
        reason = "PNG export switched off"
    html_path = path.with_suffix(".html")
    fig.write_html(html_path, include_plotlyjs=True)  # self-contained: opens offline
    return html_path, (f"no PNG ({reason}; it needs `pip install kaleido` and Chrome or Chromium); "
                       f"wrote {html_path} instead")


def write_headline(head: pd.DataFrame, plane: go.Figure, artifacts, note: str = "", png: bool = True,
                   details: dict | None = None) -> list[str]:
    """The run's headline results in `artifacts`: headline.csv, headline.md (note, table, figure), cost_accuracy.png
    and, with `details` (the numbers with their intervals, see `headline_details`), headline.json, which
    `python -m xrouter_lite report` reads.

    The PNG falls back to cost_accuracy.html (see `write_figure`); the returned lines say what was written.
    """
    out = Path(artifacts)
    out.mkdir(parents=True, exist_ok=True)
    head.to_csv(out / "headline.csv", index=False)
    if details is not None:
        (out / "headline.json").write_text(json.dumps(details, indent=1, default=_json_default) + "\n")
    picture, said = write_figure(plane, out / "cost_accuracy.png", png)
    link = f"![cost vs accuracy]({picture.name})" if picture.suffix == ".png" else f"[cost vs accuracy]({picture.name})"
    (out / "headline.md").write_text(f"{note}\n\n{markdown_table(head)}\n{link}\n".lstrip())
    wrote = "headline.csv, headline.md" + (" and headline.json" if details is not None else "")
    return [f"wrote {wrote} in {out}", said]


def _json_default(v):
    """numpy scalars and NaN as JSON: numbers, None for NaN."""
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return None if np.isnan(v) else float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


# ---------------------------------------------------------------- teaching figures (notebooks 01 and 03)
def _box(fig: go.Figure, x0: float, x1: float, y0: float, y1: float, text: str, color: str, dash: str | None = None,
         font_color: str = "#222222") -> None:
    """A labelled rectangle on the diagram's unit grid."""
    fig.add_shape(type="rect", x0=x0, x1=x1, y0=y0, y1=y1, line=dict(color=color, width=2, dash=dash),
                  fillcolor=color, opacity=0.12, layer="below")
    fig.add_shape(type="rect", x0=x0, x1=x1, y0=y0, y1=y1, line=dict(color=color, width=2, dash=dash))
    fig.add_annotation(x=(x0 + x1) / 2, y=(y0 + y1) / 2, text=text, showarrow=False, align="center",
                       font=dict(size=12, color=font_color))


def _arrow(fig: go.Figure, x0: float, y0: float, x1: float, y1: float, text: str = "") -> None:
    fig.add_annotation(x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y", showarrow=True,
                       arrowhead=3, arrowsize=1.2, arrowwidth=1.6, arrowcolor="#555555", text="")
    if text:
        fig.add_annotation(x=(x0 + x1) / 2, y=(y0 + y1) / 2 + 0.25, text=text, showarrow=False,
                           font=dict(size=10, color="#555555"))


def episode_figure(query: str = "Janet's ducks lay 16 eggs per day. She eats three ... How much does she make "
                                "every day at the farmers' market?",
                   called: tuple[str, float, float, int, int, str] = ("gemini-1.5-flash", 0.075, 0.30, 180, 90, "18"),
                   skipped: tuple[str, float, float] = ("o1-mini-2024-09-12", 3.00, 12.00),
                   score: float = 1.0, lam: float = 10.0, K: float = 1.0, cost_max: float = 0.8,
                   title: str = "One xRouter episode: the router LM prices its options, calls a model, "
                                "selects the answer, and is paid for it") -> go.Figure:
    """A diagram of one routing episode: query → router → priced tool calls → select_response → reward.

    `called` = (model, USD per 1M input tokens, per 1M output tokens, input tokens, output tokens, its answer);
    `skipped` = a dearer tool the router saw but did not call. The cost and reward are computed with
    `xrouter_lite.routing.reward` (the default prices are prices.csv's list prices).
    """
    from xrouter_lite.pool.core import tool_name
    from xrouter_lite.routing.reward import RewardConfig, reward

    model, p_in, p_out, t_in, t_out, answer = called
    usd = (t_in * p_in + t_out * p_out) / 1e6
    r = reward(score, usd, RewardConfig(K=K, lam=lam, cost_max=cost_max))
    s_model, s_in, s_out = skipped
    s_usd = (t_in * s_in + 4 * t_out * s_out) / 1e6  # a reasoning model also bills hidden tokens (~4x here)
    import textwrap

    def price(p: float) -> str:
        return f"${p:.2f}" if p >= 0.1 else f"${p:.3f}"

    wrapped = "<br>".join(textwrap.wrap(query, 22, max_lines=6, placeholder=" ..."))
    fig = go.Figure()
    _box(fig, 0.0, 1.9, 1.6, 4.4, f"<b>query</b><br>{wrapped}", "#7f7f7f")
    _box(fig, 2.4, 4.3, 1.6, 4.4, "<b>router LM</b><br>reads the query<br>and every tool's<br>tier and price;<br>"
                                  "writes tool calls<br>(up to 3 turns)", "#1f77b4")
    _box(fig, 4.9, 7.7, 3.3, 5.7, f"<b>{tool_name(model)}</b><br>{price(p_in)} in / {price(p_out)} out per 1M tokens<br>"
                                  f"{t_in} + {t_out} tokens = <b>${usd:.6f}</b><br>answer: \"{answer}\"", "#2ca02c")
    _box(fig, 4.9, 7.7, 0.3, 2.7, f"<b>{tool_name(s_model)}</b> (not called)<br>{price(s_in)} in / {price(s_out)} out "
                                  f"per 1M tokens<br>would cost ~${s_usd:.4f}", "#bbbbbb", dash="dot",
         font_color="#888888")
    _box(fig, 8.3, 10.0, 1.6, 4.4, f"<b>select_response</b><br>({tool_name(model)})<br><br>final answer:<br>"
                                   f"\"{answer}\"", "#9467bd")
    verdict = "correct" if score else "wrong"
    _box(fig, 10.6, 12.6, 1.6, 4.4, f"<b>reward</b><br>score {score:g} ({verdict})<br>cost ${usd:.6f}<br>"
                                    f"{score:g}·({K:g} − min({lam:g}·cost, {cost_max:g}))<br>= <b>{r:.4f}</b>",
         "#d62728")
    _arrow(fig, 1.9, 3.0, 2.4, 3.0)
    _arrow(fig, 4.3, 3.4, 4.9, 4.5, "call")
    _arrow(fig, 7.7, 4.5, 8.3, 3.4, "answer")
    _arrow(fig, 10.0, 3.0, 10.6, 3.0)
    fig.add_annotation(x=6.3, y=-0.25, showarrow=False, font=dict(size=11, color="#555555"),
                       text="a wrong or invalid ending earns 0 whatever it cost; a correct one earns K minus its "
                            "capped price")
    fig.update_xaxes(visible=False, range=[-0.1, 12.7])
    fig.update_yaxes(visible=False, range=[-0.6, 6.0])
    fig.update_layout(title=title, template="plotly_white", height=380, margin=dict(l=10, r=10, t=60, b=10),
                      showlegend=False)
    return fig


def reward_cost_figure(lams: Sequence[float] = (1, 10, 100, 1000), K: float = 1.0, cost_max: float = 0.8,
                       cost_range: tuple[float, float] = (1e-5, 1e-1), marks: Mapping[str, float] | None = None,
                       title: str = "The reward of a correct answer against its cost, for several λ") -> go.Figure:
    """score·(K − min(λ·cost, cost_max)) for a correct answer (score 1) against the episode's USD cost (log axis),
    one line per λ, plus the 0 a wrong answer earns. `marks` ({label: USD}) draws typical costs as dotted lines."""
    from xrouter_lite.routing.reward import RewardConfig, reward_array

    costs = np.logspace(np.log10(cost_range[0]), np.log10(cost_range[1]), 200)
    fig = go.Figure()
    for i, lam in enumerate(lams):
        r = reward_array(np.ones_like(costs), costs, RewardConfig(K=K, lam=float(lam), cost_max=cost_max))
        fig.add_trace(go.Scatter(x=costs, y=r, mode="lines", name=f"λ = {lam:g}",
                                 line=dict(width=2.5, color=HULL_COLORS[i % len(HULL_COLORS)]),
                                 hovertemplate=f"λ={lam:g}<br>$%{{x:.6f}}<br>reward %{{y:.4f}}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[costs[0], costs[-1]], y=[0, 0], mode="lines", name="wrong answer (any λ)",
                             line=dict(color="#999999", dash="dash")))
    for label, usd in (marks or {}).items():  # a trace, not a shape: shapes on log axes disagree on units
        fig.add_trace(go.Scatter(x=[usd, usd], y=[0, K], mode="lines+text", text=["", label], name=label,
                                 textposition="top center", showlegend=False, hoverinfo="skip",
                                 line=dict(color="#bbbbbb", dash="dot", width=1), textfont=dict(size=10)))
    fig.update_xaxes(type="log", exponentformat="none", title_text="USD cost of the episode (log scale)")
    fig.update_yaxes(title_text="reward", range=[-0.05, K + 0.12])
    fig.update_layout(title=title, template="plotly_white", height=420)
    return fig
