"""TRL's GRPOTrainer, plus what it does not do: keep every scored completion as a trace, log
rollout health (``rl_reason.train.health``) after every rollout, traces on or off, and, when the
recipe asks, DAPO dynamic sampling and a difficulty curriculum (docs/dynamic_sampling.md).

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
from dataclasses import dataclass
from pathlib import Path

import torch
import trl
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import GRPOTrainer
from trl.trainer.utils import RepeatSampler

from rewards.registry import roles_of
from rl_reason.traces.reader import read_shard
from rl_reason.traces.writer import TraceWriter
from rl_reason.train.curriculum import PassRateMemory, PromptStream, prompt_key
from rl_reason.train.dynamic_sampling import assemble, gather_round, plan, unsupported_keys
from rl_reason.train.health import all_passed, flat_groups, nanstd, rollout_health, weighted_totals


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


SAMPLING_STATE = "sampling_state.json"


class _SaveSamplingState(TrainerCallback):
    """The prompt pass-rate memory and the prompt stream's position into every checkpoint (every rank
    holds the same copy, built from gathered data; rank 0 writes it), so a resumed run skips, draws and
    logs exactly what an uninterrupted one would."""

    def __init__(self, trainer: "TracingGRPOTrainer"):
        self.trainer = trainer

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        t = self.trainer
        path = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}" / SAMPLING_STATE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"pass_rates": t.pass_rates.state_dict(),
                                   "stream": t._stream.state_dict() if t._stream else None}))
        tmp.replace(path)


def load_sampling_state(checkpoint: str | Path) -> dict | None:
    """A checkpoint's pass-rate memory and prompt stream (None for checkpoints made before they were saved)."""
    path = Path(checkpoint) / SAMPLING_STATE
    return json.loads(path.read_text()) if path.exists() else None


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
                  "eos_token_ids", "multi_objective_aggregation", "scale_rewards", "_tokenizer")
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


class EpochRepeatSampler(RepeatSampler):
    """TRL's ``RepeatSampler``, whose order a resumed run continues.

    TRL draws each epoch's permutation from one generator seeded once, so a run resumed in epoch k
    starts over at epoch 0's order. ``set_epoch``, which the Trainer calls before every epoch, replays
    the generator to epoch k: the order an uninterrupted run has, which is TRL's own."""

    def set_epoch(self, epoch: int) -> None:
        if self.shuffle and self.seed is not None:
            self.generator.manual_seed(self.seed)
            for _ in range(epoch):
                torch.randperm(self.num_samples, generator=self.generator)


@dataclass
class _Rollout:
    output: dict  # TRL's, this rank's rows
    records: list[dict]  # this rank's traces, not yet kept
    flat: torch.Tensor  # per global group: no reward spread (the same on every rank)
    tokens: float  # completion tokens generated on all ranks


class TracingGRPOTrainer(GRPOTrainer):
    def __init__(self, *args, trace_writer: TraceWriter | None = None, trace_counters: dict | None = None,
                 reward_roles: dict[str, str] | None = None, recent_traces: int = 64, dynamic_sampling=None,
                 curriculum=None, sampling_state: dict | None = None, **kwargs):
        """``trace_counters``: a checkpoint's (``load_trace_counters``), continued on resume.
        ``reward_roles``: ``{reward function name: role}`` (``rewards.registry``); by default the registry's.
        ``dynamic_sampling``, ``curriculum``: the recipe's sections (``rl_reason.config``); off when None or
        not enabled. ``sampling_state``: a checkpoint's memory and stream (``load_sampling_state``)."""
        check_trl_hooks()  # before the model loads: a mismatch costs a second
        self.dynamic_sampling = dynamic_sampling if dynamic_sampling and dynamic_sampling.enabled else None
        self.curriculum = curriculum if curriculum and curriculum.enabled else None
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
        self._init_sampling(sampling_state)
        # The latest records of this rank, traces on or off, for the W&B traces table (rl_reason.train.monitor).
        self.recent_traces: deque[dict] = deque(maxlen=recent_traces)
        # Flush before the timer closes the step, so time/step includes the cost of capture.
        if trace_writer is not None:
            self.add_callback(_FlushTraces(trace_writer))
            self.add_callback(_SaveTraceCounters(self))
        self.add_callback(_StepTimer(self))
        self.add_callback(_SaveSamplingState(self))

    def _init_sampling(self, state: dict | None) -> None:
        """The pass-rate memory (kept in every run: the pool's pass-rate distribution is logged) and, when
        dynamic sampling or the curriculum needs prompts of its own, the prompt stream."""
        window = self.curriculum.window if self.curriculum else 2
        floor = self.curriculum.floor if self.curriculum else 0.0
        self.pass_rates = PassRateMemory(window, floor, seed=self.args.seed)
        self._pool_size = len(self.train_dataset) if hasattr(self.train_dataset, "__len__") else 0
        self._stream, self._index_keys, self._warned_short = None, {}, False
        # Token-level tensors TRL makes one value per sequence in these modes.
        self._sequence_level = set()
        if self.use_vllm and getattr(self.args, "vllm_importance_sampling_mode", "").startswith("sequence"):
            self._sequence_level.add("importance_sampling_ratio")
        if self.dynamic_sampling or self.curriculum:
            if not hasattr(self.train_dataset, "__getitem__") or not self._pool_size:
                raise ValueError("dynamic_sampling and curriculum need a map-style (indexable) training set")
            self._stream = PromptStream(self._pool_size, seed=self.args.seed)
        if state:
            self.pass_rates.load_state_dict(state["pass_rates"])
            if self._stream is not None and state.get("stream"):
                self._stream.load_state_dict(state["stream"])

    def _get_train_sampler(self, dataset=None):
        sampler = super()._get_train_sampler(dataset)
        if type(sampler) is RepeatSampler:
            sampler.__class__ = EpochRepeatSampler
        return sampler

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
        if not self.model.training:
            rollout = self._rollout(inputs)
            self._keep(rollout.records)
            self._timers["rollout"] += time.perf_counter() - start
            return rollout.output
        keys = self._global_keys(inputs)
        if self.curriculum is not None:
            inputs, keys = self._apply_curriculum(inputs, keys)
        rollout = self._rollout(inputs, keys)
        if self.dynamic_sampling is None:
            self._keep(rollout.records)
            output = rollout.output
            generated, rounds = rollout.tokens, [rollout]
        else:
            output, rounds = self._dynamic_rollout(inputs, rollout)
            generated = sum(r.tokens for r in rounds)
        metrics = self._metrics["train"]
        trained = float(output["num_items_in_batch"])
        metrics["efficiency/generated_tokens"].append(generated)
        metrics["efficiency/trained_tokens"].append(trained)
        if trained:  # a step whose groups were all flat trains nothing: the ratio is undefined, not infinite
            metrics["efficiency/generated_tokens_per_trained_token"].append(generated / trained)
        for key, value in self.pass_rates.pool_stats(self._pool_size).items():
            metrics[key].append(value)
        self._timers["rollout"] += time.perf_counter() - start
        return output

    # -- one generation round --------------------------------------------------------------------

    def _rollout(self, inputs, keys: list[str] | None = None) -> "_Rollout":
        """TRL's rollout of ``inputs``, its records (not yet written), and which of its groups are flat;
        in training, each group's pass rate goes into the memory under ``keys`` (one per global row)."""
        self._pending = None
        output = super()._generate_and_score_completions(inputs)
        if self._pending is None:
            raise TRLCouplingError(f"{_trl('_generate_and_score_completions')} no longer calls "
                                   f"_calculate_rewards; {_FIX}")
        mode = "train" if self.model.training else "eval"
        group_size = self.num_generations if mode == "train" else self.num_generations_eval
        _, _, _, completion_ids, rewards_all = self._pending
        # Over the whole gathered batch, so group statistics cover groups split across ranks.
        totals = weighted_totals(rewards_all, self.reward_weights)
        stats = trl_group_statistics(totals, group_size, self.scale_rewards)
        records = self._build_records(mode, group_size, totals, stats, output["advantages"])
        check_advantages(records, output["advantages"])
        lengths = self._log_health(mode, rewards_all, totals, group_size, completion_ids)
        self._pending = None
        # Every rank decides from rank 0's copy, so no rank can take a different number of rounds.
        flat = self._broadcast(flat_groups(totals, group_size))
        tokens = float(lengths.sum())
        if mode == "train":
            self._timers["tokens"] += tokens  # every round's, so tokens/s is the job's generation throughput
            for g, rate in enumerate(self._group_pass_rates(rewards_all, group_size)):
                self.pass_rates.record(keys[g * group_size], rate)
        return _Rollout(output, records, flat, tokens)

    def _keep(self, records: list[dict], dropped: dict | None = None) -> None:
        """Records into the W&B table's window and, traces on, the shard; ``dropped``: {local index: why}."""
        for i, record in enumerate(records):
            record["dropped"] = (dropped or {}).get(i)
        self.recent_traces.extend(records)
        if self.trace_writer is not None:
            mode = records[0]["mode"] if records else "train"
            for record in records:
                self.trace_writer.add(record)
            # A counter, not a rate: keep only the latest value so TRL's window average is the count.
            self._metrics[mode]["traces/written"] = [float(self.trace_writer.total)]
            if mode == "eval":
                self.trace_writer.flush()

    def _group_pass_rates(self, rewards_all: torch.Tensor, group_size: int) -> list[float | None]:
        """Per global group: the share of its judged completions every verifier passed (None: none judged)."""
        columns = [i for i, name in enumerate(self.reward_func_names) if self.reward_roles.get(name) == "verifier"]
        if not columns:
            return [None] * (rewards_all.size(0) // group_size)
        passed = all_passed(rewards_all.float().cpu(), columns).view(-1, group_size)
        rates = torch.nanmean(passed, dim=1)
        return [None if math.isnan(r) else r for r in rates.tolist()]

    def _broadcast(self, flags: torch.Tensor) -> torch.Tensor:
        if self.accelerator.num_processes == 1:
            return flags
        from accelerate.utils import broadcast

        return broadcast(flags.to(self.accelerator.device, torch.uint8), from_process=0).bool().cpu()

    # -- the prompts of a step: curriculum and dynamic sampling ----------------------------------

    def _global_keys(self, inputs) -> list[str]:
        """Every global row's prompt key, rank 0's rows first, as TRL lays out the gathered batch."""
        local = [prompt_key(x["prompt"]) for x in inputs]
        if self.accelerator.num_processes == 1:
            return local
        from accelerate.utils import gather_object

        return gather_object(local)

    def _key_of(self, index: int) -> str:
        key = self._index_keys.get(index)
        if key is None:
            key = self._index_keys[index] = prompt_key(self.train_dataset[index]["prompt"])
        return key

    def _draw(self) -> int:
        """The next prompt of the stream the curriculum takes (after 100 refusals, the next one)."""
        for _ in range(100):
            index = self._stream.take(1)[0]
            if self.curriculum is None or self.pass_rates.take(self._key_of(index)):
                return index
        return index

    def _local_rows(self, n_local: int, row_of_group) -> list[dict]:
        """This rank's rows of a global batch whose group ``g`` is ``row_of_group(g)``."""
        first = self.accelerator.process_index * n_local
        return [row_of_group(r // self.num_generations, r - first) for r in range(first, first + n_local)]

    def _apply_curriculum(self, inputs, keys: list[str]):
        """Skip the generation batch's saturated prompts (``PassRateMemory.take``), replacing each with one
        the curriculum takes from the prompt stream. Every rank decides the same, from the global keys."""
        group = self.num_generations
        replaced = {}
        for g in range(len(keys) // group):
            if not self.pass_rates.take(keys[g * group]):
                replaced[g] = self._draw()
        self._metrics["train"]["curriculum/skipped"].append(float(len(replaced)))
        if not replaced:
            return inputs, keys
        rows = self._local_rows(len(inputs), lambda g, i: self.train_dataset[replaced[g]] if g in replaced
                                else inputs[i])
        keys = [self._key_of(replaced[r // group]) if r // group in replaced else k for r, k in enumerate(keys)]
        return rows, keys

    def _dynamic_rollout(self, inputs, first: "_Rollout"):
        """More rounds of fresh prompts until ``target`` groups have signal or ``max_rounds`` extra rounds
        ran, then this rank's share of the planned batch (``rl_reason.train.dynamic_sampling``)."""
        extra = unsupported_keys(first.output)
        if extra:  # before any extra round is generated
            raise ValueError(f"dynamic_sampling: TRL's rollout returned {extra}, which it cannot regroup "
                             "(multimodal or new inputs); turn dynamic_sampling off")
        group, n_local = self.num_generations, len(inputs)
        target = len(first.flat)
        rounds = [first]
        while sum(int((~r.flat).sum()) for r in rounds) < target and len(rounds) <= self.dynamic_sampling.max_rounds:
            indices = [self._draw() for _ in range(target)]
            rows = self._local_rows(n_local, lambda g, i: self.train_dataset[indices[g]])
            keys = [self._key_of(indices[r // group]) for r in range(target * group)]
            rounds.append(self._rollout(rows, keys))
        the_plan = plan([r.flat for r in rounds], target)
        pad = self._tokenizer.pad_token_id
        gathered = [gather_round(r.output, self.accelerator, pad, self._sequence_level) for r in rounds]
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        output = assemble(gathered, the_plan, group, rank, world, pad, self._sequence_level)
        loss_mask = output["completion_mask"] * output.get("tool_mask", 1)
        output["num_items_in_batch"] = self.accelerator.gather(loss_mask.sum().reshape(1)).sum()
        first_row = rank * n_local
        for i, r in enumerate(rounds):
            self._keep(r.records, {j: the_plan.dropped.get((i, (first_row + j) // group))
                                   for j in range(len(r.records))})
        kept = len(the_plan.picks) - len(the_plan.masked)
        metrics = self._metrics["train"]
        metrics["dynamic_sampling/extra_rounds"].append(float(len(rounds) - 1))
        metrics["dynamic_sampling/generated_groups"].append(float(len(rounds) * target))
        metrics["dynamic_sampling/kept_groups"].append(float(kept))
        metrics["dynamic_sampling/kept_fraction"].append(kept / (len(rounds) * target))
        metrics["dynamic_sampling/short_groups"].append(float(target - kept))
        if kept < target and not self._warned_short and self.accelerator.is_main_process:
            self._warned_short = True
            print(f"dynamic_sampling: step {self.state.global_step} found {kept} of {target} groups with signal in "
                  f"{len(rounds)} rounds (max_rounds={self.dynamic_sampling.max_rounds}); training on those. "
                  "dynamic_sampling/short_groups counts it every step")
        return output, rounds

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
        return gathered[:, 0]


def _none_if_nan(x: float):
    return None if x is None or math.isnan(x) else x
