"""The GRPO progress printer: fed fake trainer logs, it prints the numbers a learner needs every N steps."""

from __future__ import annotations

from types import SimpleNamespace

from xrouter_lite.training.progress import ProgressPrinter, progress_line


def _feed(printer, logs_per_step, max_steps):
    state = SimpleNamespace(global_step=0, max_steps=max_steps)
    printer.on_train_begin(None, state, None)
    for step, logs in enumerate(logs_per_step, start=1):
        state.global_step = step
        printer.on_log(None, state, None, logs=logs)
    printer.on_train_end(None, state, None)


def test_a_line_every_n_steps_with_window_means():
    lines = []
    logs = [{"reward": 0.1 * i, "episode/valid_rate": 1.0, "frac_reward_zero_std": 0.5, "loss": 0.0}
            for i in range(1, 8)]
    _feed(ProgressPrinter(every=3, print_fn=lines.append), logs, max_steps=7)
    assert lines[0].startswith("training 7 steps; a line every 3")
    assert lines[1].startswith("step 3/7 · reward 0.200 · valid episodes 100% · zero-variance groups 50% · ")
    assert lines[2].startswith("step 6/7 · reward 0.500")
    assert lines[3].startswith("step 7/7 · reward 0.700") and "left" not in lines[3]  # the last step always prints
    assert len(lines) == 4 and "s/step" in lines[1]


def test_the_episode_zero_variance_key_wins_and_a_prefix_tells_runs_apart():
    lines = []
    logs = [{"reward": 1.0, "episode/frac_zero_std": 0.25, "frac_reward_zero_std": 0.9}] * 2
    _feed(ProgressPrinter(every=10, prefix="λ=1000 · ", print_fn=lines.append), logs, max_steps=2)
    assert lines[-1].startswith("λ=1000 · step 2/2 · reward 1.000 · zero-variance groups 25%")


def test_logs_without_the_fields_print_nothing_more():
    lines = []
    _feed(ProgressPrinter(every=1, print_fn=lines.append), [{"loss": 1.0}, {"train_runtime": 3.0}], max_steps=2)
    assert len(lines) == 1  # only the opening line: no step line made of nothing


def test_progress_line_formats_time_left():
    line = progress_line(20, 100, {"reward": 0.5123}, s_per_step=9.0)
    assert line == "step 20/100 · reward 0.512 · 9.0 s/step, ~12 min left"
    assert progress_line(5, 10, {}, s_per_step=2.0) == "step 5/10 · 2.0 s/step, ~10 s left"


def test_it_plugs_into_a_real_trainer_callback_list():
    from transformers import TrainerCallback
    from transformers.trainer_callback import CallbackHandler

    printer = ProgressPrinter(every=1, print_fn=lambda s: None)
    assert isinstance(printer, TrainerCallback)
    handler = CallbackHandler([printer], model=None, processing_class=None, optimizer=None, lr_scheduler=None)
    assert printer in handler.callbacks
