"""The teaching figures (one episode, the reward against cost) and the static PNG copy of every notebook figure."""

from __future__ import annotations

import numpy as np
import plotly.io as pio
import pytest

from xrouter_lite import notebook as NB
from xrouter_lite.explore.figures import episode_figure, reward_cost_figure
from xrouter_lite.routing.reward import RewardConfig, reward


def test_reward_cost_figure_draws_the_reward_formula_per_lambda():
    figure = reward_cost_figure(lams=(1, 10, 100, 1000), K=1.0, cost_max=0.8, marks={"o1-mini": 0.011})
    fig = figure.to_dict()
    names = [t["name"] for t in fig["data"]]
    assert names[:5] == ["λ = 1", "λ = 10", "λ = 100", "λ = 1000", "wrong answer (any λ)"] and "o1-mini" in names
    assert fig["layout"]["xaxis"]["type"] == "log"
    for trace, lam in zip(figure.data[:4], (1, 10, 100, 1000)):
        x, y = np.asarray(trace.x), np.asarray(trace.y)
        assert np.allclose(y, [reward(1.0, c, RewardConfig(K=1.0, lam=lam, cost_max=0.8)) for c in x])
    assert min(figure.data[3].y) == pytest.approx(0.2)  # capped at K - cost_max, still above a wrong answer's 0
    assert max(figure.data[4].y) == 0


def test_episode_figure_prices_the_call_and_computes_the_reward():
    fig = episode_figure(called=("gemini-1.5-flash", 0.075, 0.30, 180, 90, "18"),
                         skipped=("o1-mini-2024-09-12", 3.0, 12.0), lam=10.0).to_dict()
    text = " ".join(a.get("text", "") for a in fig["layout"]["annotations"])
    usd = (180 * 0.075 + 90 * 0.30) / 1e6
    for part in ("query", "router LM", "call_gemini_1_5_flash", "$0.075 in / $0.30 out", f"${usd:.6f}",
                 "call_o1_mini_2024_09_12", "not called", "select_response", "reward",
                 f"{reward(1.0, usd, RewardConfig(lam=10.0, cost_max=0.8)):.4f}"):
        assert part in text, part
    assert len([s for s in fig["layout"]["shapes"] if s["type"] == "rect"]) == 12  # 6 boxes, fill + outline each


@pytest.fixture()
def fresh_renderer(monkeypatch):
    monkeypatch.setattr(pio.renderers, "default", "plotly_mimetype")
    monkeypatch.setattr(NB, "_png_off", None)
    yield
    pio.renderers.default = "plotly_mimetype"


def test_figures_carry_a_png_next_to_the_interactive_output(fresh_renderer):
    if NB.browser_path() is None:
        pytest.skip("no Chrome/Chromium on this machine (scripts/setup.sh installs Debian's chromium as root)")
    said = NB.static_figures()
    assert "static PNG" in said and pio.renderers.default == f"plotly_mimetype+{NB.PNG_RENDERER}"
    bundle = reward_cost_figure()._repr_mimebundle_()  # what a notebook cell shows (one output, two mimetypes)
    assert "application/vnd.plotly.v1+json" in bundle
    import base64

    assert base64.b64decode(bundle["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_kaleido_or_a_browser_figures_stay_interactive_and_one_line_says_why(fresh_renderer, monkeypatch,
                                                                                      capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("no browser found")

    monkeypatch.setattr(NB, "_start_kaleido", broken)
    NB.static_figures()
    first = reward_cost_figure()._repr_mimebundle_()
    second = reward_cost_figure()._repr_mimebundle_()
    assert "image/png" not in first and "image/png" not in second
    assert "application/vnd.plotly.v1+json" in second
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "no browser found" in out  # said once, not per figure


def test_on_colab_the_renderer_is_left_to_colab(fresh_renderer, monkeypatch):
    import sys
    import types

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(pio.renderers, "default", "colab")
    assert "Colab" in NB.static_figures() and pio.renderers.default == "colab"


def test_quiet_libraries_turns_off_loading_bars_and_info_logs():
    import transformers
    from transformers.utils import logging as hf_logging

    NB.quiet_libraries()
    assert transformers.logging.get_verbosity() == transformers.logging.ERROR
    assert not hf_logging.is_progress_bar_enabled()


def test_live_redraws_use_the_renderer_without_the_png_copy(fresh_renderer):
    NB.static_figures()
    if "google.colab" not in __import__("sys").modules:
        assert NB.interactive_renderer() == "plotly_mimetype"
