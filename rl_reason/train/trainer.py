"""TRL's GRPOTrainer, plus the one thing it does not do: keep every scored completion as a trace.

TRL keeps only the last generation batch per logging step (``_logs`` is a bounded deque), so
we hook the two overridable steps of its rollout: ``_calculate_rewards`` (per-function rewards
for the whole group, gathered over ranks) and ``_generate_and_score_completions`` (advantages).
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from pathlib import Path

import torch
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import GRPOTrainer

from rl_reason.traces.reader import read_shard
from rl_reason.traces.writer import TraceWriter


class _FlushTraces(TrainerCallback):
    def __init__(self, writer: TraceWriter):
        self.writer = writer

    def on_step_end(self, args, state, control, **kwargs):
        self.writer.flush()

    def on_train_end(self, args, state, control, **kwargs):
        self.writer.flush()


class _StepTimer(TrainerCallback):
    """Splits each optimizer step's wall time into generation, reward, scoring and update.

    TRL's own profiling goes straight to ``wandb.log`` at no particular step and never reaches
    the log history; these land in ``_metrics`` so the console, W&B, trainer_state.json and
    ``rl-reason report`` all see the same numbers.
    """

    def __init__(self, trainer: "TracingGRPOTrainer"):
        self.trainer = trainer
        self.begin = None

    def on_step_begin(self, args, state, control, **kwargs):
        self.begin = time.perf_counter()
        self.trainer._timers = dict.fromkeys(self.trainer._timers, 0.0)

    def on_step_end(self, args, state, control, **kwargs):
        if self.begin is None:
            return
        t = self.trainer._timers
        wall = time.perf_counter() - self.begin
        metrics = self.trainer._metrics["train"]
        metrics["time/step"].append(wall)
        metrics["time/generation"].append(t["generation"])
        metrics["time/reward"].append(t["reward"])
        # Reference and old-policy log-probs, advantages, gathers: the rest of the rollout.
        metrics["time/scoring"].append(max(t["rollout"] - t["generation"] - t["reward"], 0.0))
        metrics["time/update"].append(max(wall - t["rollout"], 0.0))
        metrics["throughput/tokens_per_s"].append(t["tokens"] / wall if wall > 0 else 0.0)
        if t["reward"] > 0:
            metrics["reward_pool/checks_per_s"].append(t["checks"] / t["reward"])


COUNTERS_DIR = "trace_counters"


class _SaveTraceCounters(TrainerCallback):
    """Each rank's trace counters go into every checkpoint, so a resumed run continues them:
    group ids (``step-batch-group``) and ``traces/written`` equal an uninterrupted run's."""

    def __init__(self, trainer: "TracingGRPOTrainer"):
        self.trainer = trainer

    def on_save(self, args, state, control, **kwargs):
        t = self.trainer
        path = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}" / COUNTERS_DIR
        path.mkdir(parents=True, exist_ok=True)
        counters = {"generation_batches": t._generation_batches, "written": t.trace_writer.total,
                    "run_id": t.trace_writer.run_id}
        tmp = path / f"rank-{t.accelerator.process_index:05d}.json.tmp"
        tmp.write_text(json.dumps(counters))
        tmp.replace(tmp.with_suffix(""))


def load_trace_counters(checkpoint: str | Path, rank: int, shard: Path, run_id: str) -> dict:
    """This rank's counters at ``checkpoint``; from its (rewound) shard when the checkpoint has none
    (made before counters were saved, or the run died between the checkpoint and its counters)."""
    path = Path(checkpoint) / COUNTERS_DIR / f"rank-{rank:05d}.json"
    if path.exists():
        return json.loads(path.read_text())
    written, batches = 0, 0
    if shard.exists():
        for record in read_shard(shard):
            if record.get("run_id") == run_id:
                written += 1
                batch = str(record.get("group", "")).split("-")
                if len(batch) == 3 and batch[1].isdigit():
                    batches = max(batches, int(batch[1]) + 1)
    print(f"rank {rank}: {path} missing; trace counters recovered from {shard.name}: {written} written, {batches} batches")
    return {"generation_batches": batches, "written": written, "run_id": run_id}


class TracingGRPOTrainer(GRPOTrainer):
    def __init__(self, *args, trace_writer: TraceWriter | None = None, trace_counters: dict | None = None,
                 recent_traces: int = 64, **kwargs):
        """``trace_counters``: a checkpoint's (``load_trace_counters``), continued on resume."""
        super().__init__(*args, **kwargs)
        self.trace_writer = trace_writer
        self._pending = None
        self._generation_batches = 0
        if trace_counters:
            self._generation_batches = int(trace_counters["generation_batches"])
            trace_writer.written = int(trace_counters["written"])
        self._timers = dict.fromkeys(("generation", "reward", "rollout", "tokens", "checks"), 0.0)
        # The latest records of this rank, for the W&B traces table (rl_reason.train.monitor).
        self.recent_traces: deque[dict] = deque(maxlen=recent_traces)
        # Flush before the timer closes the step, so time/step includes the cost of capture.
        if trace_writer is not None:
            self.add_callback(_FlushTraces(trace_writer))
            self.add_callback(_SaveTraceCounters(self))
        self.add_callback(_StepTimer(self))

    def _generate(self, prompts):
        start = time.perf_counter()
        output = super()._generate(prompts)
        self._timers["generation"] += time.perf_counter() - start
        return output

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        start = time.perf_counter()
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._timers["reward"] += time.perf_counter() - start
        # Checks this rank ran: every reward function scores every local completion.
        self._timers["checks"] += len(prompts) * len(self.reward_funcs)
        if self.trace_writer is not None:
            self._pending = (inputs, prompts, completions, completion_ids_list, rewards_per_func)
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        start = time.perf_counter()
        output = super()._generate_and_score_completions(inputs)
        self._timers["rollout"] += time.perf_counter() - start
        if "completion_mask" in output and self.model.training:
            # Completion tokens generated on all ranks, so tokens/s is the job's throughput.
            local = output["completion_mask"].sum().float().reshape(1)
            self._timers["tokens"] += self.accelerator.gather(local).sum().item()
        if self.trace_writer is not None and self._pending is not None:
            self._write_traces(output["advantages"])
            self._pending = None
        return output

    def _write_traces(self, advantages: torch.Tensor) -> None:
        inputs, prompts, completions, completion_ids, rewards_all = self._pending
        mode = "train" if self.model.training else "eval"
        group_size = self.num_generations if mode == "train" else self.num_generations_eval
        n_local = len(prompts)
        offset = self.accelerator.process_index * n_local
        weights = self.reward_weights.to(rewards_all.device)
        # Totals over the whole gathered batch, so group statistics cover groups split across ranks.
        totals = (rewards_all * weights.unsqueeze(0)).nansum(dim=1)
        totals[torch.isnan(rewards_all).all(dim=1)] = torch.nan
        grouped = totals.view(-1, group_size)
        group_mean = torch.nanmean(grouped, dim=1).tolist()
        group_std = _nanstd_rows(grouped)
        step = self.state.global_step
        batch = self._generation_batches
        self._generation_batches += 1
        eos_ids = set(self.eos_token_ids)
        # One device->host copy each, not an .item() (a GPU sync) per completion.
        advantages_list = advantages.tolist()
        totals_list = totals.tolist()
        rewards_rows = rewards_all[offset : offset + n_local].tolist()
        for i in range(n_local):
            g = offset + i
            group = g // group_size
            row = inputs[i]
            completion = completions[i]
            text = completion if isinstance(completion, str) else "".join(m.get("content") or "" for m in completion)
            ids = completion_ids[i]
            per_func = {
                name: (None if math.isnan(v) else v)
                for name, v in zip(self.reward_func_names, rewards_rows[i], strict=True)
            }
            total = totals_list[g]
            record = {
                "step": step,
                "mode": mode,
                "group": f"{step}-{batch}-{group}",
                "prompt": prompts[i],
                "completion": text,
                "answer": row.get("answer"),
                "rewards": per_func,
                "reward": None if math.isnan(total) else total,
                "advantage": float(advantages_list[i]),
                "group_mean": _none_if_nan(group_mean[group]),
                "group_std": _none_if_nan(group_std[group]),
                "completion_tokens": len(ids),
                "completion_ids": list(ids),
                "truncated": not (len(ids) > 0 and ids[-1] in eos_ids),
                "finish_reason": "stop" if (len(ids) > 0 and ids[-1] in eos_ids) else "length",
                "id": row.get("id"),
                "source": row.get("source"),
            }
            self.trace_writer.add(record)
            self.recent_traces.append(record)
        self._log_rollout_health(mode, rewards_all, totals, grouped, completion_ids, eos_ids)
        if mode == "eval":
            self.trace_writer.flush()

    def _log_rollout_health(self, mode, rewards_all, totals, grouped, completion_ids, eos_ids) -> None:
        """What TRL does not log: pass and format rates, length p90, truncation, trace counts.

        Appended to TRL's own per-step metrics, so they reach the console, W&B and
        trainer_state.json with everything else.
        """
        metrics = self._metrics[mode]
        names = list(self.reward_func_names)
        for name, metric in (("accuracy_reward", "health/pass_rate"), ("code_reward", "health/pass_rate"),
                             ("think_format_reward", "health/format_rate")):
            if name in names:
                column = rewards_all[:, names.index(name)]
                judged = column[~torch.isnan(column)]
                if judged.numel():
                    metrics[metric].append((judged >= 1.0).float().mean().item())
                metrics[f"health/{name}_unjudged"].append(torch.isnan(column).float().mean().item())
        lengths = torch.tensor([len(ids) for ids in completion_ids], dtype=torch.float32)
        lengths = self.accelerator.gather(lengths.to(self.accelerator.device)).float()
        metrics["health/length_p90"].append(torch.quantile(lengths, 0.9).item())
        truncated = torch.tensor([not (len(ids) > 0 and ids[-1] in eos_ids) for ids in completion_ids], dtype=torch.float32)
        metrics["health/truncated_rate"].append(self.accelerator.gather(truncated.to(self.accelerator.device)).mean().item())
        spread = torch.nan_to_num(grouped.max(dim=1).values - grouped.min(dim=1).values, nan=0.0)
        metrics["health/zero_variance_groups"].append((spread == 0).float().mean().item())
        # A counter, not a rate: keep only the latest value so TRL's window average is the count.
        metrics["traces/written"] = [float(self.trace_writer.total)]


def _none_if_nan(x: float):
    return None if x is None or math.isnan(x) else x


def _nanstd_rows(x: torch.Tensor) -> list[float]:
    out = []
    for row in x:
        vals = row[~torch.isnan(row)]
        out.append(vals.std().item() if vals.numel() > 1 else float("nan"))
    return out
