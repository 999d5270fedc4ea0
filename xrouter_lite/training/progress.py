"""Training progress a learner can read: one line every N steps with the numbers that say whether GRPO learns.

    >>> from xrouter_lite.training.progress import ProgressPrinter
    >>> printer = ProgressPrinter(every=10, prefix="λ=10 · ")
    >>> trainer.add_callback(printer)            # any transformers/TRL trainer   # doctest: +SKIP

prints, every 10 optimizer steps (the means over those steps):

    λ=10 · step 20/100 · reward 0.512 · valid episodes 97% · zero-variance groups 31% · 8.9 s/step, ~12 min left

- reward: the mean episode reward (what GRPO maximises); it should drift up.
- valid episodes: the share of rollouts that ended well-formed (`episode/valid_rate`); falling = the policy is breaking.
- zero-variance groups: groups whose completions all earned the same reward (`episode/frac_zero_std`, else TRL's
  `frac_reward_zero_std`); they teach nothing, so a share near 100% means the run is stalling.
A progress bar shows only "Training Loss", which for GRPO with `beta=0` says little; this says what matters.
"""

from __future__ import annotations

import time
from typing import Callable

from transformers import TrainerCallback

# (label, log keys tried in order, format): what one line shows
FIELDS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("reward", ("reward",), "{:.3f}"),
    ("valid episodes", ("episode/valid_rate",), "{:.0%}"),
    ("zero-variance groups", ("episode/frac_zero_std", "frac_reward_zero_std"), "{:.0%}"),
)


def _minutes(seconds: float) -> str:
    return f"~{seconds / 60:.0f} min left" if seconds >= 90 else f"~{seconds:.0f} s left"


def progress_line(step: int, max_steps: int, means: dict[str, float], s_per_step: float | None = None,
                  prefix: str = "") -> str:
    """One progress line: step, every field that was logged (window means), speed and time left."""
    parts = [f"{prefix}step {step}/{max_steps}" if max_steps else f"{prefix}step {step}"]
    parts += [f"{label} {fmt.format(means[label])}" for label, _, fmt in FIELDS if label in means]
    if s_per_step:
        left = f", {_minutes(s_per_step * (max_steps - step))}" if max_steps and step < max_steps else ""
        parts.append(f"{s_per_step:.1f} s/step{left}")
    return " · ".join(parts)


class ProgressPrinter(TrainerCallback):
    """A `TrainerCallback` that prints `progress_line` every `every` steps and at the last step.

    `prefix` tells runs apart (the λ sweep: `prefix="λ=1000 · "`); `print_fn` receives each line (tests pass a
    list's append). Reads only the trainer's logs, so it works with `logging_steps=1` (what `grpo_config` sets)
    and averages whatever steps were logged since the last line.
    """

    def __init__(self, every: int = 10, prefix: str = "", print_fn: Callable[[str], None] = print):
        self.every = max(1, int(every))
        self.prefix = prefix
        self.print_fn = print_fn
        self._window: dict[str, list[float]] = {}
        self._last_printed = 0
        self._start: float | None = None
        self._start_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self._window, self._last_printed = {}, state.global_step
        self._start, self._start_step = time.perf_counter(), state.global_step  # a resumed run starts mid-way
        self.print_fn(f"{self.prefix}training {state.max_steps} steps; a line every {self.every}: "
                      "mean reward, valid episodes, zero-variance groups")

    def on_log(self, args, state, control, logs=None, **kwargs):
        for label, keys, _ in FIELDS:
            key = next((k for k in keys if k in (logs or {})), None)
            if key is not None and logs[key] is not None:
                self._window.setdefault(label, []).append(float(logs[key]))
        step = state.global_step
        if self._window and (step - self._last_printed >= self.every or (state.max_steps and step >= state.max_steps)):
            self._print(step, state.max_steps)

    def on_train_end(self, args, state, control, **kwargs):
        if self._window:  # steps logged after the last line (max_steps not a multiple of `every`)
            self._print(state.global_step, state.max_steps)

    def _print(self, step: int, max_steps: int) -> None:
        means = {label: sum(v) / len(v) for label, v in self._window.items() if v}
        done = step - self._start_step
        speed = (time.perf_counter() - self._start) / done if self._start is not None and done > 0 else None
        self.print_fn(progress_line(step, max_steps, means, speed, self.prefix))
        self._window, self._last_printed = {}, step
