"""summary.json's extra sections: what a notebook keeps with `runner.record_summary` lands in the run's summary."""

from __future__ import annotations

import json

import pytest

from xrouter_lite.runner import NotebookResult, record_router_results, record_summary, write_run_records


def test_sections_join_the_summary_without_replacing_the_runners_own_keys(tmp_path):
    art = tmp_path / "artifacts"
    art.mkdir()
    record_router_results([{"router": "mlp", "aiq": 0.7, "accuracy": 0.9}], art)
    record_summary("lambda_sweep", {"router": "GRPO router (λ in prompt)", "aiq": 0.8, "mlp_aiq": 0.7}, art)
    record_summary("lambda_sweep", {"router": "GRPO router (λ in prompt)", "aiq": 0.81, "mlp_aiq": 0.7}, art)  # rerun
    record_summary("profile", "not the runner's", art)
    write_run_records(tmp_path, {"name": "smoke", "seed": 0}, "/data", [NotebookResult("04_x.ipynb", "ok", 1.0, 10.0)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["lambda_sweep"] == {"router": "GRPO router (λ in prompt)", "aiq": 0.81, "mlp_aiq": 0.7}
    assert summary["profile"] == "smoke" and summary["routers"][0]["router"] == "mlp"
    with pytest.raises(ValueError, match="section name"):
        record_summary("../escape", {}, art)
