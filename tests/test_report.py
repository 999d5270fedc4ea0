"""Generated results: the README's results blocks are exactly what the committed results files render."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xrouter_lite import report as R
from xrouter_lite.routing.verdicts import Interval, verdict

REPO = Path(__file__).resolve().parents[1]


def test_readme_blocks_are_the_render_of_the_committed_results():
    """The done-when check: change a number in docs/results/<profile>.json (or the README) and this fails."""
    blocks = R.readme_blocks((REPO / "README.md").read_text())
    assert blocks, "README.md has no <!-- results:<profile>:begin --> block"
    for profile, body in blocks.items():
        results = json.loads((REPO / "docs" / "results" / f"{profile}.json").read_text())
        assert results["schema"] == R.SCHEMA and results["profile"] == profile
        assert body == R.render(results), f"README block '{profile}' is stale: run `python -m xrouter_lite report`"
        assert (REPO / "docs" / "results" / f"{profile}.md").read_text() == body
    assert R.check(REPO / "README.md", REPO / "docs" / "results") == []


def _zero(est, low, high, n=20):
    return verdict(Interval(est, low, high, n=n, n_boot=2000)).to_dict()


def fake_run(root: Path, name: str = "smoke-20261207-101010") -> Path:
    """A finished run directory with the files notebooks 03 and 04 write, tiny and hand-made."""
    run = root / name
    art = run / "artifacts"
    art.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({
        "profile": "smoke", "notebooks": {"01_model_pool.ipynb": {"status": "ok", "wall_s": 50.2, "peak_mb": 900}},
        "routers": []}))
    rows = [{"router": "GRPO router (λ=10)", "kind": "router", "family": "GRPO router", "lambda": 10.0, "n": 20,
             "accuracy": 0.55, "usd_per_query": 8e-5, "mean_reward": 0.549, "aiq": 0.5, "cost_saved_95": None,
             "best_model_at_cost": "deepseek", "best_model_accuracy": 0.7, "best_model_usd": 7e-5,
             "zero_margin": _zero(-0.12, -0.3, 0.04)},
            {"router": "oracle", "kind": "oracle", "family": "oracle", "lambda": 10.0, "n": 20, "accuracy": 0.95,
             "usd_per_query": 1e-3, "mean_reward": 0.94, "aiq": 0.9, "cost_saved_95": 0.9,
             "best_model_at_cost": "deepseek", "best_model_accuracy": 0.7, "zero_margin": _zero(0.2, 0.1, 0.3)}]
    (art / "headline.json").write_text(json.dumps({
        "split": "test", "source": "zeroeval", "n": 20, "tasks": {"gsm": 10, "crux": 10}, "lambda": 10.0,
        "reference": {"model": "o1-mini", "accuracy": 0.9, "usd_per_query": 0.011}, "c_max": 0.011, "rows": rows}))
    (art / "findings_04.json").write_text(json.dumps({"split": "test", "findings": [
        {"kind": "zero_margin", "text": "On the test split, the GRPO router is 12.0 points below the hull.",
         "verdicts": {"zero_margin": _zero(-0.12, -0.3, 0.04)}}]}))
    return run


def test_collect_render_and_update_the_readme(tmp_path):
    run = fake_run(tmp_path)
    results = R.collect(run)
    assert results["provenance"]["run"] == run.name
    assert results["provenance"]["report_command"] == f"python -m xrouter_lite report runs/{run.name}"
    assert results["provenance"]["run_date"] == "2026-12-07 10:10"
    row = results["headline"]["rows"][0]
    assert {"router", "n", "accuracy", "usd_per_query", "mean_reward", "lambda", "split"} <= set(row)  # issue 14
    assert row["intervals"]["zero_margin"]["outcome"] == "not shown"
    md = R.render(results)
    assert md == R.render(json.loads(json.dumps(results)))  # pure: the JSON round trip renders the same
    assert "| GRPO router (λ=10) | router | 10 | 20 | 0.550 | 0.000080 | deepseek (0.700) | -12.0 | -30.0 to +4.0 | not shown |" in md
    assert "12.0 points below the hull" in md and run.name in md and "python -m xrouter_lite notebooks --profile smoke" in md

    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n## Results\n\n<!-- results:cpu:begin -->\nold\n<!-- results:cpu:end -->\n\nafter\n")
    written = R.write(results, tmp_path / "docs" / "results", readme)
    assert [p.name for p in written] == ["smoke.json", "smoke.md", "README.md"]
    text = readme.read_text()
    assert text.index("results:smoke:begin") < text.index("results:cpu:begin")  # a new block goes before the first
    assert R.readme_blocks(text)["smoke"] == md and R.readme_blocks(text)["cpu"] == "old\n"
    # cpu's block has no results file: --check says so; smoke's is current
    problems = R.check(readme, tmp_path / "docs" / "results")
    assert len(problems) == 1 and "'cpu' has no results file" in problems[0]
    # a second report of the same profile replaces its block, nothing else
    again = R.update_readme(text, "smoke", "new\n")
    assert R.readme_blocks(again) == {"smoke": "new\n", "cpu": "old\n"} and again.endswith("after\n")
    # with the anchor, a new profile's block goes there (not inside another block's <details>)
    smoke = R.block("smoke", "x\n")
    anchored = R.update_readme(f"a\n{R.NEW_BLOCKS}\n<details>\n{smoke}\n</details>\n", "gpu", "g\n")
    assert anchored.index("results:gpu:begin") < anchored.index(R.NEW_BLOCKS) < anchored.index("<details>")


def test_check_fails_when_a_number_is_edited_by_hand(tmp_path):
    results = R.collect(fake_run(tmp_path))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:smoke:begin -->\n<!-- results:smoke:end -->\n")
    R.write(results, tmp_path / "docs" / "results", readme)
    assert R.check(readme, tmp_path / "docs" / "results") == []
    readme.write_text(readme.read_text().replace("0.550", "0.650"))  # someone "fixes" a number in the README
    assert any("differs" in p for p in R.check(readme, tmp_path / "docs" / "results"))


def test_report_command_and_check_exit_codes(tmp_path, capsys):
    from xrouter_lite.__main__ import main

    run = fake_run(tmp_path / "runs")
    (tmp_path / "README.md").write_text("intro\n<!-- results:smoke:begin -->\n<!-- results:smoke:end -->\n")
    assert main(["report", str(run), "--root", str(tmp_path)]) == 0
    assert (tmp_path / "docs" / "results" / "smoke.json").is_file()
    assert main(["report", "--check", "--root", str(tmp_path)]) == 0
    (tmp_path / "docs" / "results" / "smoke.md").write_text("edited\n")
    assert main(["report", "--check", "--root", str(tmp_path)]) == 1
    assert "smoke.md" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nowhere"), "--root", str(tmp_path)]) == 2  # one clear line, no traceback
    assert "no summary.json" in capsys.readouterr().err


def test_baselines_seeds_and_extra_tables(tmp_path):
    run = fake_run(tmp_path)
    ev = tmp_path / "zeroeval_test.jsonl"
    ev.write_text("\n".join(json.dumps(r) for r in [
        {"router": "knn", "n": 261, "accuracy": 0.86, "usd_per_query": 0.005, "mean_reward": 0.84, "aiq": 0.86,
         "cost_saved_95": 0.43, "model_share": {"a": 1.0}},
        {"router": "zero", "n": 261, "aiq": 0.85, "hull": [[0.001, 0.5]]},
        {"reference": "most accurate single model", "model": "o1-mini", "accuracy": 0.94, "usd_per_query": 0.011}]))
    seeds = tmp_path / "grpo_seeds.json"
    seeds.write_text(json.dumps({
        "command": "python benchmarks/grpo_seeds.py --seeds 0 1", "split": "validation", "n_validation": 20,
        "settings": {"lam": 10.0}, "fixed": [{"router": "sft router", "n": 20, "accuracy": 0.5, "usd_per_query": 1e-4,
                                              "mean_reward": 0.5}],
        "seeds": [{"seed": s, "grpo": {"router": f"grpo seed {s}", "n": 20, "accuracy": 0.6, "usd_per_query": 1e-4,
                                       "mean_reward": 0.6, "valid_rate": 1.0},
                   "gains": {"reward_vs_sft": _zero(0.1 * s, 0.1 * s - 0.05, 0.1 * s + 0.05),
                             "above_zero_hull": _zero(0.0, -0.1, 0.1)}} for s in (0, 1)]}))
    table = tmp_path / "unseen.json"
    table.write_text(json.dumps({"title": "Unseen pool", "command": "python -m xrouter_lite evaluate --unseen",
                                 "split": "test", "rows": [{"router": "GRPO", "n": 261, "accuracy": 0.7,
                                                            "usd_per_query": 1e-4, "mean_reward": 0.7,
                                                            "lambda": 10, "split": "test"}]}))
    results = R.collect(run, {"zeroeval": ev}, 3.0, seeds, [table])
    assert results["baselines"][0]["rows"][0]["router"] == "knn" and results["baselines"][0]["zero_aiq"] == 0.85
    assert results["seeds"]["shown"] == {"reward_vs_sft": 1, "above_zero_hull": 0}  # seed 1 only: +10 [+5, +15]
    assert "--baselines zeroeval=zeroeval_test.jsonl" in results["provenance"]["report_command"]
    md = R.render(results)
    for text in ("Baseline routers, zeroeval test split", "| knn | 0.860 | 0.005000 | 0.840 | 0.860 | 43% |",
                 "GRPO over seeds", "reward_vs_sft 1 of 2", "#### Unseen pool", "not shown: +0.0 points"):
        assert text in md, text
    old = tmp_path / "old_seeds.json"
    old.write_text(json.dumps({"seeds": [{"seed": 0, "grpo": {"router": "g"}, "gains": {"reward_above_sft": True}}]}))
    with pytest.raises(R.ReportError, match="before interval verdicts"):
        R.seeds_section(old)
    with pytest.raises(R.ReportError, match="SOURCE=FILE"):
        R._pairs(["zeroeval"])


def _sweep_section() -> dict:
    def saved(est, low, high):  # a share of cost saved, as evaluation.cost_falls words it
        return verdict(Interval(est, low, high, n=20, n_boot=2000), unit="%", digits=0).to_dict()

    def step(lo, hi, est, low, high):
        return {"from_lambda": lo, "to_lambda": hi, **saved(est, low, high)}

    return {"router": "SFT router (λ in prompt)", "checkpoint": "router_sft", "split": "test", "source": "zeroeval",
            "n": 20, "c_max": 0.011, "aiq": 0.71, "mlp_aiq": 0.64, "aiq_vs_mlp": _zero(0.07, 0.01, 0.13),
            "cost_falls": {"overall": saved(0.9, 0.8, 0.95),
                           "monotone": True, "text": "From λ=1 to λ=1000 the cost per query falls by 90%.",
                           "steps": [step(1.0, 10.0, 0.5, 0.2, 0.7), step(10.0, 1000.0, 0.1, -0.1, 0.3)]},
            "rows": [{"lambda": lam, "n": 20, "accuracy": acc, "usd_per_query": usd, "mean_reward": acc - 0.01,
                      "valid_rate": 1.0, "model_share": {"a": 1.0}}
                     for lam, acc, usd in ((1.0, 0.9, 0.01), (10.0, 0.85, 0.005), (1000.0, 0.6, 0.0001))]}


def test_the_lambda_sweep_section_comes_from_the_summary_and_renders(tmp_path):
    run = fake_run(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    summary["lambda_sweep"] = _sweep_section()
    (run / "summary.json").write_text(json.dumps(summary))
    sw = R.collect(run)["lambda_sweep"]
    assert [r["lambda"] for r in sw["rows"]] == [1.0, 10.0, 1000.0] and "model_share" not in sw["rows"][0]
    assert (sw["aiq"], sw["mlp_aiq"], sw["c_max"]) == (0.71, 0.64, 0.011)
    md = R.render(R.collect(run))
    for text in ("#### One checkpoint, a whole curve: the cost weight in the prompt (notebook 04)",
                 "SFT router (λ in prompt) (`router_sft`), told each cost weight in its prompt (λ = 1, 10, 1000",
                 "AIQ over the sweep 0.710; the MLP router's over its λ grid 0.640 (same queries, c_max $0.011000/query)",
                 "Its AIQ is higher than the MLP's: +7.0 points (95% interval +1.0 to +13.0).",
                 "From λ=1 to λ=1000 the cost per query falls by 90%.",
                 "| 1 | 20 | 0.900 | 0.010000 | 0.890 | 100.0% |  |",
                 "| 10 | 20 | 0.850 | 0.005000 | 0.840 | 100.0% | beats: +50% (95% interval +20 to +70) |",
                 "| 1000 | 20 | 0.600 | 0.000100 | 0.590 | 100.0% | not shown: +10% (95% interval -10 to +30) |"):
        assert text in md, text


def test_a_run_without_a_summary_section_still_reports_the_sweep_rows(tmp_path):
    run = fake_run(tmp_path)
    assert "lambda_sweep" not in R.collect(run)  # no conditioned router: no section, nothing rendered
    rows = _sweep_section()["rows"]
    (run / "artifacts" / "lambda_sweep.json").write_text(json.dumps(rows[::-1]))
    sw = R.collect(run)["lambda_sweep"]
    assert [r["lambda"] for r in sw["rows"]] == [1.0, 10.0, 1000.0] and "aiq" not in sw
    assert "| 1000 | 20 | 0.600 |" in R.render(R.collect(run))
    # a section kept by notebook 04 (runner.record_summary) counts even when summary.json predates it
    from xrouter_lite.runner import record_summary

    record_summary("lambda_sweep", _sweep_section(), run / "artifacts")
    assert R.collect(run)["lambda_sweep"]["aiq"] == 0.71
    (run / "artifacts" / "summary_sections" / "lambda_sweep.json").unlink()
    (run / "artifacts" / "lambda_sweep.json").write_text(json.dumps({"lambda": 1}))
    with pytest.raises(R.ReportError, match="list of"):
        R.collect(run)


def test_another_runs_headline_is_a_table(tmp_path):
    """The MMLU-Pro series' notebook-04 headline goes into the cpu results as a table, with its run and command."""
    run = fake_run(tmp_path)
    other = fake_run(tmp_path / "mmlu", "cpu-20261207-121212")
    head = json.loads((other / "artifacts" / "headline.json").read_text())
    (other / "summary.json").write_text(json.dumps({"profile": "cpu", "notebooks": {}, "routers": [],
                                                    "notebook_settings": {"LAMBDA_SWEEP": False}}))
    (other / "artifacts" / "headline.json").write_text(json.dumps(head | {"source": "mmlu-pro"}))
    results = R.collect(run, {}, 3.0, None, [other / "artifacts" / "headline.json"])
    t = results["tables"][0]
    assert t["title"] == "Every router on the mmlu-pro test split (run `cpu-20261207-121212`, notebook 04)"
    assert t["command"] == "python -m xrouter_lite notebooks --profile cpu --source mmlu-pro --set LAMBDA_SWEEP=false"
    assert [r["router"] for r in t["rows"]] == [r["router"] for r in head["rows"]]
    assert "#### Every router on the mmlu-pro test split" in R.render(results)


def test_the_runs_figure_is_copied_linked_and_checked(tmp_path):
    """The README's figure is the reported run's, never a stale one: copied beside the results, linked from the block."""
    run = fake_run(tmp_path / "runs")
    (run / "artifacts" / "cost_accuracy.png").write_bytes(b"\x89PNG not really")
    results = R.collect(run)
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:smoke:begin -->\n<!-- results:smoke:end -->\n")
    R.write(results, tmp_path / "docs" / "results", readme)
    figure = tmp_path / "docs" / "figures" / "cost_accuracy_smoke.png"
    assert figure.read_bytes() == b"\x89PNG not really"
    saved = json.loads((tmp_path / "docs" / "results" / "smoke.json").read_text())
    assert saved["figure"] == "docs/figures/cost_accuracy_smoke.png" and R.FIGURE_FROM not in saved
    assert f"]({saved['figure']})" in R.readme_blocks(readme.read_text())["smoke"]
    assert R.check(readme, tmp_path / "docs" / "results") == []
    figure.unlink()
    assert any("figure" in p and "missing" in p for p in R.check(readme, tmp_path / "docs" / "results"))
