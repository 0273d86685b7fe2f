"""TRL's GRPOTrainer, plus what it does not do: keep every scored completion as a trace, and log
rollout health (``rl_reason.train.health``) after every rollout, traces on or off.

TRL keeps only the last generation batch per logging step (``_logs`` is a bounded deque), so
we hook three overridable steps of its rollout: ``_generate`` (timing), ``_calculate_rewards``
(per-function rewards for the whole group, gathered over ranks) and ``_generate_and_score_completions``
(advantages). They are private, so the coupling is checked, not trusted: ``check_trl_hooks`` and
``check_trl_attributes`` when the trainer is built, and every rollout proves that TRL's advantages
follow from the recorded trace fields (``check_advantages``). A TRL upgrade that changes any of it
fails with the TRL method's name instead of writing wrong traces.
"""

from __future__ import annotations

import inspect
import json
import math
import time
from collections import deque
from pathlib import Path

import torch
import trl
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import GRPOTrainer

from rewards.registry import roles_of
from rl_reason.traces.reader import read_shard
from rl_reason.traces.writer import TraceWriter
from rl_reason.train.health import nanstd, rollout_health, weighted_totals


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
    print(f"rank {rank}: {path} missing; trace counters recovered from {shard.name}: "
          f"{written} written, {batches} batches")
    return {"generation_batches": batches, "written": written, "run_id": run_id}


# --- the TRL coupling ---------------------------------------------------------------------------

# TRL's private hooks this trainer overrides, with the parameters it calls them with.
TRL_HOOKS = {
    "_generate": ("self", "prompts"),
    "_calculate_rewards": ("self", "inputs", "prompts", "completions", "completion_ids_list"),
    "_generate_and_score_completions": ("self", "inputs"),
}
# Attributes of a built GRPOTrainer the hooks read (and, for _metrics, append to).
TRL_ATTRIBUTES = ("_metrics", "reward_weights", "reward_func_names", "num_generations", "num_generations_eval",
                  "eos_token_ids", "multi_objective_aggregation", "scale_rewards")
_FIX = "rl_reason/train/trainer.py's trace hooks need updating"
SCALE_EPS = 1e-4  # what TRL adds to the std it divides advantages by


class TRLCouplingError(RuntimeError):
    """TRL changed something the trace hooks rely on: a private hook, an attribute, the advantage formula."""


def _trl(what: str) -> str:
    return f"trl {trl.__version__}: GRPOTrainer.{what}"


def check_trl_hooks(cls: type = GRPOTrainer) -> None:
    """The hooks we override still exist on ``cls`` and take exactly the parameters we pass them."""
    for name, expected in TRL_HOOKS.items():
        hook = getattr(cls, name, None)
        if not callable(hook):
            raise TRLCouplingError(f"{_trl(name)} no longer exists; {_FIX}")
        params = tuple(inspect.signature(hook).parameters)
        if params != expected:
            missing = [p for p in expected if p not in params]
            change = f"no longer takes {', '.join(missing)}" if missing else f"now takes ({', '.join(params)})"
            raise TRLCouplingError(f"{_trl(name)}(...) {change}; {_FIX}")


def check_trl_attributes(trainer) -> None:
    """A built trainer has the attributes the hooks read, in the shape they expect."""
    for name in TRL_ATTRIBUTES:
        if not hasattr(trainer, name):
            raise TRLCouplingError(f"{_trl(name)} no longer exists; {_FIX}")
    for mode in ("train", "eval"):
        metrics = trainer._metrics.get(mode) if isinstance(trainer._metrics, dict) else None
        if getattr(metrics, "default_factory", None) is not list:
            raise TRLCouplingError(f"{_trl('_metrics')}[{mode!r}] is no longer a defaultdict of lists; {_FIX}")
    if len(trainer.reward_weights) != len(trainer.reward_func_names):
        raise TRLCouplingError(f"{_trl('reward_weights')} no longer has one weight per reward_func_names; {_FIX}")


def advantage_mode_error(aggregation: str, scale_rewards: str) -> str | None:
    """Why the trace fields could not record the advantage TRL computes in this mode; None when they can.

    Under sum_then_normalize TRL's advantage is ``(reward - group_mean) / advantage_scale``, all recorded.
    Under normalize_then_sum it is built from every reward function's own group mean and std, then the
    whole batch's: ``reward``, ``group_mean`` and ``group_std`` would describe a number TRL does not use.
    """
    if aggregation != "sum_then_normalize":
        return (f"multi_objective_aggregation: {aggregation!r} is not supported (its advantage comes from each "
                "reward function's group statistics, which traces do not record); use 'sum_then_normalize'")
    if scale_rewards not in ("group", "batch", "none"):
        return f"scale_rewards: {scale_rewards!r} is not supported; use 'group', 'batch' or 'none'"
    return None


def trl_group_statistics(totals: torch.Tensor, group_size: int, scale_rewards: str):
    """Per completion: its group's mean and std of ``totals``, and what TRL divides ``total - mean`` by
    (``GRPOTrainer._generate_and_score_completions`` under sum_then_normalize), in TRL's dtype."""
    grouped = totals.view(-1, group_size)
    mean = torch.nanmean(grouped, dim=1).repeat_interleave(group_size)
    std = nanstd(grouped, dim=1).repeat_interleave(group_size)
    if scale_rewards == "group":
        scale = (std if group_size > 1 else torch.zeros_like(totals)) + SCALE_EPS
    elif scale_rewards == "batch":
        batch_std = nanstd(totals) if totals.numel() > 1 else torch.zeros((), device=totals.device)
        scale = batch_std.expand_as(totals) + SCALE_EPS
    else:  # "none": TRL does not divide
        scale = torch.ones_like(totals)
    return mean, std, scale


def advantages_from_fields(records: list[dict]) -> torch.Tensor:
    """``advantage`` recomputed from the other trace fields (``rl_reason.traces.schema``), in float32 as TRL."""
    def column(name):
        return torch.tensor([math.nan if r[name] is None else r[name] for r in records], dtype=torch.float32)

    return torch.nan_to_num((column("reward") - column("group_mean")) / column("advantage_scale"), nan=0.0)


def check_advantages(records: list[dict], advantages: torch.Tensor) -> None:
    """TRL's advantages equal the trace fields' formula, so a formula TRL changes fails here, loudly."""
    expected = advantages_from_fields(records)
    actual = advantages.detach().float().cpu()
    if expected.shape != actual.shape or not torch.allclose(expected, actual, rtol=1e-5, atol=1e-6):
        gap = (expected - actual).abs().max().item() if expected.shape == actual.shape else math.inf
        raise TRLCouplingError(
            f"{_trl('_generate_and_score_completions')} computed advantages that differ from the trace fields' "
            f"(reward - group_mean) / advantage_scale by up to {gap:.3g}; {_FIX}")


# --- the trainer --------------------------------------------------------------------------------


class TracingGRPOTrainer(GRPOTrainer):
    def __init__(self, *args, trace_writer: TraceWriter | None = None, trace_counters: dict | None = None,
                 reward_roles: dict[str, str] | None = None, recent_traces: int = 64, **kwargs):
        """``trace_counters``: a checkpoint's (``load_trace_counters``), continued on resume.
        ``reward_roles``: ``{reward function name: role}`` (``rewards.registry``); by default the registry's."""
        check_trl_hooks()  # before the model loads: a mismatch costs a second
        super().__init__(*args, **kwargs)
        check_trl_attributes(self)
        error = advantage_mode_error(self.multi_objective_aggregation, self.scale_rewards)
        if error:
            raise ValueError(error)
        self.reward_roles = roles_of(self.reward_func_names, reward_roles)
        self.trace_writer = trace_writer
        self._pending = None
        self._generation_batches = 0
        if trace_counters:
            self._generation_batches = int(trace_counters["generation_batches"])
            trace_writer.written = int(trace_counters["written"])
        self._timers = dict.fromkeys(("generation", "reward", "rollout", "tokens", "checks"), 0.0)
        # The latest records of this rank, traces on or off, for the W&B traces table (rl_reason.train.monitor).
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
        self._pending = (inputs, prompts, completions, completion_ids_list, rewards_per_func)
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        start = time.perf_counter()
        self._pending = None
        output = super()._generate_and_score_completions(inputs)
        self._timers["rollout"] += time.perf_counter() - start
        if "completion_mask" in output and self.model.training:
            # Completion tokens generated on all ranks, so tokens/s is the job's throughput.
            local = output["completion_mask"].sum().float().reshape(1)
            self._timers["tokens"] += self.accelerator.gather(local).sum().item()
        if self._pending is None:
            raise TRLCouplingError(f"{_trl('_generate_and_score_completions')} no longer calls "
                                   f"_calculate_rewards; {_FIX}")
        self._after_rollout(output["advantages"])
        self._pending = None
        return output

    def _after_rollout(self, advantages: torch.Tensor) -> None:
        """Records of this rank's completions (kept for the W&B table, written when traces are on),
        checked against TRL's advantages, and the rollout's health metrics."""
        _, _, _, completion_ids, rewards_all = self._pending
        mode = "train" if self.model.training else "eval"
        group_size = self.num_generations if mode == "train" else self.num_generations_eval
        # Over the whole gathered batch, so group statistics cover groups split across ranks.
        totals = weighted_totals(rewards_all, self.reward_weights)
        stats = trl_group_statistics(totals, group_size, self.scale_rewards)
        records = self._build_records(mode, group_size, totals, stats, advantages)
        check_advantages(records, advantages)
        self.recent_traces.extend(records)
        self._log_health(mode, rewards_all, totals, group_size, completion_ids)
        if self.trace_writer is not None:
            for record in records:
                self.trace_writer.add(record)
            # A counter, not a rate: keep only the latest value so TRL's window average is the count.
            self._metrics[mode]["traces/written"] = [float(self.trace_writer.total)]
            if mode == "eval":
                self.trace_writer.flush()

    def _build_records(self, mode: str, group_size: int, totals: torch.Tensor, stats, advantages) -> list[dict]:
        inputs, prompts, completions, completion_ids, rewards_all = self._pending
        n_local = len(prompts)
        offset = self.accelerator.process_index * n_local
        step = self.state.global_step
        batch = self._generation_batches
        self._generation_batches += 1
        eos_ids = set(self.eos_token_ids)
        # One device->host copy each, not an .item() (a GPU sync) per completion.
        local = slice(offset, offset + n_local)
        totals_list = totals[local].tolist()
        mean, std, scale = (s[local].tolist() for s in stats)
        advantages_list = advantages.tolist()
        rewards_rows = rewards_all[local].tolist()
        records = []
        for i in range(n_local):
            row = inputs[i]
            completion = completions[i]
            text = completion if isinstance(completion, str) else "".join(m.get("content") or "" for m in completion)
            ids = completion_ids[i]
            stopped = len(ids) > 0 and ids[-1] in eos_ids
            records.append({
                "step": step,
                "mode": mode,
                "group": f"{step}-{batch}-{(offset + i) // group_size}",
                "prompt": prompts[i],
                "completion": text,
                "answer": row.get("answer"),
                "rewards": {name: _none_if_nan(v) for name, v in zip(self.reward_func_names, rewards_rows[i],
                                                                      strict=True)},
                "reward": _none_if_nan(totals_list[i]),
                "advantage": float(advantages_list[i]),
                "group_mean": _none_if_nan(mean[i]),
                "group_std": _none_if_nan(std[i]),
                "advantage_scale": _none_if_nan(scale[i]),
                "completion_tokens": len(ids),
                "completion_ids": list(ids),
                "truncated": not stopped,
                "finish_reason": "stop" if stopped else "length",
                "id": row.get("id"),
                "source": row.get("source"),
            })
        return records

    def _log_health(self, mode, rewards_all, totals, group_size, completion_ids) -> None:
        """``rl_reason.train.health`` on the gathered batch, appended to TRL's per-step metrics."""
        eos_ids = set(self.eos_token_ids)
        local = torch.tensor([[len(ids), not (len(ids) > 0 and ids[-1] in eos_ids)] for ids in completion_ids],
                             dtype=torch.float32, device=self.accelerator.device)
        gathered = self.accelerator.gather(local)
        health = rollout_health(rewards_all, totals, group_size, list(self.reward_func_names), self.reward_roles,
                                lengths=gathered[:, 0], truncated=gathered[:, 1])
        for key, value in health.items():
            self._metrics[mode][key].append(value)


def _none_if_nan(x: float):
    return None if x is None or math.isnan(x) else x
