"""Exploring cost and quality (notebook 04): every router re-decided under a cost weight, budget and pool.

    whatif    the what-if replay: every router under λ, a budget, a model pool and a task filter, from arrays
    figures   plotly figures of the cost/quality story and the headline files (pure functions of tables)
    widgets   the ipywidgets explorer wired to `whatif` and `figures`
"""

from xrouter_lite import _lazy_exports

# name -> its module here: the names the notebooks import from this package, loaded on first use
_EXPORTS = {
    "aiq_difference": "whatif", "default_routers": "whatif", "eval_data": "whatif", "headline_details": "whatif",
    "headline_rows": "whatif", "headline_table": "whatif", "lm_point": "whatif", "lm_sweep": "whatif",
    "per_task_table": "whatif", "reward_lambda_table": "whatif", "router_checkpoints": "whatif",
    "run_outcomes": "whatif", "share_table": "whatif", "singles_of": "whatif", "sweep_table": "whatif",
    "trace_html": "whatif", "what_if": "whatif",
    "color_by_legendgroup": "figures", "cost_accuracy_figure": "figures", "curves_figure": "figures",
    "episode_figure": "figures", "explorer_plane_figure": "figures", "lambda_sweep_figure": "figures",
    "model_share_figure": "figures", "per_task_figure": "figures", "pool_plane_figure": "figures",
    "reward_cost_figure": "figures", "reward_vs_lambda_figure": "figures", "sensitivity_figure": "figures",
    "short_name": "figures", "write_headline": "figures",
    "Explorer": "widgets", "REWARD_CURVE_LAMBDAS": "widgets", "styled": "widgets",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
