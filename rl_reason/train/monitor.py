"""Run monitoring beyond TRL's metrics: the W&B traces table and the run's W&B address.

The per-step health and timing metrics are measured inside the rollout (``rl_reason.train.trainer``,
``rl_reason.train.health``); this module holds what only talks to W&B.
"""

from __future__ import annotations

import random

from transformers import TrainerCallback

from rl_reason.traces.schema import write_wandb_run


class WandbRunInfo(TrainerCallback):
    """At the start of the W&B run: the resolved recipe (our sections too, not only
    TrainingArguments) into its config, and OUTPUT_DIR/wandb_run.json, which W&B run the job
    logged to (``rl-reason export --wandb`` reads it to put the dataset next to that run)."""

    def __init__(self, raw: dict):
        self.raw = raw

    def on_train_begin(self, args, state, control, **kwargs):
        run = _wandb_run(args, state)
        if run is None:
            return
        run.config.update({"recipe": self.raw}, allow_val_change=True)
        info = {
            "id": run.id,
            "project": run.project,
            "entity": run.entity or None,
            "group": run.group or None,
            "name": run.name,
            "mode": "offline" if run.offline else "online",
        }
        write_wandb_run(args.output_dir, info)


class WandbTracesTable(TrainerCallback):
    """Every ``every`` steps, a ``traces`` table of ``rows`` sampled completions of rank 0.

    TRL's ``log_completions`` table has no reference answer and no per-function None (unjudged);
    this one is built from the trace records themselves, so it shows exactly what was stored.
    """

    def __init__(self, trainer, every: int, rows: int, seed: int = 0):
        self.trainer, self.every, self.rows = trainer, every, rows
        self.rng = random.Random(seed)

    def on_step_end(self, args, state, control, **kwargs):
        if not self.every or state.global_step % self.every:
            return
        run = _wandb_run(args, state)
        records = list(self.trainer.recent_traces)
        if run is None or not records:
            return
        import wandb

        sample = self.rng.sample(records, min(self.rows, len(records)))
        names = sorted({name for r in sample for name in r["rewards"]})
        columns = ["step", "prompt", "completion", "answer", "reward", "advantage", *names,
                   "completion_tokens", "truncated"]
        table = wandb.Table(columns=columns)
        for r in sample:
            table.add_data(
                r["step"], _text(r["prompt"]), r["completion"], None if r["answer"] is None else str(r["answer"]),
                r["reward"], r["advantage"], *(r["rewards"].get(n) for n in names), r["completion_tokens"],
                r["truncated"],
            )
        # No wandb step (the Trainer's WandbCallback owns that counter; a smaller one is dropped), but the
        # x-axis value: WandbCallback plots everything against train/global_step, and a row without it
        # takes the last one logged, which on_step_end precedes: the table would land one step early.
        run.log({"traces": table, "train/global_step": state.global_step})


def _wandb_run(args, state):
    if not state.is_world_process_zero or "wandb" not in (args.report_to or []):
        return None
    import wandb

    return wandb.run


def _text(prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in prompt)


def monitoring_callbacks(recipe, trainer) -> list:
    """Callbacks ``rl_reason.train.run`` adds to every GRPO run."""
    table = WandbTracesTable(trainer, recipe.wandb.table_every, recipe.wandb.table_rows, seed=recipe.args.seed)
    return [WandbRunInfo(recipe.raw), table]
