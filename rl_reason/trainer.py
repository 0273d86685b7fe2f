"""TRL's GRPOTrainer, plus the one thing it does not do: keep every scored completion as a trace.

TRL keeps only the last generation batch per logging step (``_logs`` is a bounded deque), so
we hook the two overridable steps of its rollout: ``_calculate_rewards`` (per-function rewards
for the whole group, gathered over ranks) and ``_generate_and_score_completions`` (advantages).
"""

from __future__ import annotations

import math

import torch
from transformers import TrainerCallback
from trl import GRPOTrainer

from rl_reason.traces import TraceWriter


class _FlushTraces(TrainerCallback):
    def __init__(self, writer: TraceWriter):
        self.writer = writer

    def on_step_end(self, args, state, control, **kwargs):
        self.writer.flush()

    def on_train_end(self, args, state, control, **kwargs):
        self.writer.flush()


class TracingGRPOTrainer(GRPOTrainer):
    def __init__(self, *args, trace_writer: TraceWriter | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.trace_writer = trace_writer
        self._pending = None
        self._generation_batches = 0
        if trace_writer is not None:
            self.add_callback(_FlushTraces(trace_writer))

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self.trace_writer is not None:
            self._pending = (inputs, prompts, completions, completion_ids_list, rewards_per_func)
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
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
        for i in range(n_local):
            g = offset + i
            group = g // group_size
            row = inputs[i]
            completion = completions[i]
            text = completion if isinstance(completion, str) else "".join(m.get("content") or "" for m in completion)
            ids = completion_ids[i]
            per_func = {
                name: (None if math.isnan(v) else v)
                for name, v in zip(self.reward_func_names, rewards_all[g].tolist(), strict=True)
            }
            total = totals[g].item()
            self.trace_writer.add(
                {
                    "step": step,
                    "mode": mode,
                    "group": f"{step}-{batch}-{group}",
                    "prompt": prompts[i],
                    "completion": text,
                    "answer": row.get("answer"),
                    "rewards": per_func,
                    "reward": None if math.isnan(total) else total,
                    "advantage": float(advantages[i].item()),
                    "group_mean": _none_if_nan(group_mean[group]),
                    "group_std": _none_if_nan(group_std[group]),
                    "completion_tokens": len(ids),
                    "completion_ids": list(ids),
                    "truncated": not (len(ids) > 0 and ids[-1] in eos_ids),
                    "finish_reason": "stop" if (len(ids) > 0 and ids[-1] in eos_ids) else "length",
                    "id": row.get("id"),
                    "source": row.get("source"),
                }
            )
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
