"""``rl-reason train``: GRPO on TRL's GRPOTrainer, with rewards from ``rewards/`` and full traces.

The whole recipe reads top to bottom: check everything, build data, rewards and model, train,
save. All checks run before the model loads, so a typo costs a second, not a job.
"""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from accelerate import PartialState
from transformers import AutoTokenizer

from rewards.registry import func_name, get_reward, required_columns, role_of
from rl_reason.config import ConfigError, Recipe, load_recipe
from rl_reason.data.load import train_dataset
from rl_reason.data.tiny import recipe_model_path
from rl_reason.preflight import check_mixed_precision, check_model_path, check_output_dir, check_vllm, cpu_defaults
from rl_reason.traces.schema import shard_path, write_run_info, write_traces_location
from rl_reason.traces.writer import TraceWriter, rewind_shard
from rl_reason.train.monitor import monitoring_callbacks
from rl_reason.train.run_lock import RunLock, RunLocked, describe
from rl_reason.train.trainer import (
    TracingGRPOTrainer,
    advantage_mode_error,
    load_sampling_state,
    load_trace_counters,
)
from rl_reason.wandb_env import default_mode


@dataclass
class TrainResult:
    output_dir: Path
    traces_dir: Path | None
    global_step: int
    log_history: list[dict]


def load_train_recipe(path, overrides=(), defaults: dict | None = None) -> Recipe:
    from trl import GRPOConfig

    recipe = load_recipe(path, overrides, args_class=GRPOConfig, defaults={**cpu_defaults(), **(defaults or {})})
    check_mixed_precision(recipe.args, recipe.source)
    # Traces record the advantage TRL optimises; a mode whose advantage they cannot record is refused.
    error = advantage_mode_error(recipe.args.multi_objective_aggregation, recipe.args.scale_rewards)
    if error:
        raise ConfigError(f"{recipe.source}: {error}")
    return recipe


def preflight(recipe: Recipe):
    """Everything a user can get wrong, before anything heavy:
    ``(dataset, reward functions, their roles, output_dir)``.

    ``rl-reason launch`` runs it too, so a mistake ends before any worker starts."""
    check_vllm(recipe.args, recipe.source)
    required = {c for r in recipe.rewards for c in required_columns(r.name)}
    dataset = train_dataset(recipe.data, required, where=recipe.source)
    reward_funcs = [get_reward(r.name, **r.kwargs) for r in recipe.rewards]
    try:
        roles = reward_roles(recipe, reward_funcs)
    except ValueError as exc:  # a user function's own ``role`` attribute outside the registry's roles
        raise ConfigError(f"{recipe.source}: rewards: {exc}") from None
    if recipe.curriculum.enabled and "verifier" not in roles.values():
        raise ConfigError(f"{recipe.source}: curriculum: needs a reward with role 'verifier' to tell solved "
                          f"prompts from unsolved ones; the rewards' roles are {roles}")
    if recipe.model.name_or_path != "tiny":
        check_model_path(recipe.model.name_or_path, recipe.source)
    return dataset, reward_funcs, roles, check_output_dir(recipe.args.output_dir, recipe.source)


def setup_wandb(recipe: Recipe) -> None:
    """W&B through transformers' WandbCallback; offline when no account is configured."""
    report_to = recipe.args.report_to or []
    if "wandb" not in report_to and report_to != "all":
        return
    os.environ.setdefault("WANDB_PROJECT", recipe.wandb.project)
    if recipe.wandb.entity:
        os.environ.setdefault("WANDB_ENTITY", recipe.wandb.entity)
    if recipe.wandb.group:
        os.environ.setdefault("WANDB_RUN_GROUP", recipe.wandb.group)
    if recipe.wandb.tags:
        os.environ.setdefault("WANDB_TAGS", ",".join(recipe.wandb.tags))
    if default_mode() == "offline":
        os.environ["WANDB_MODE"] = "offline"
        print("W&B: no account configured, logging offline; upload later with `wandb sync`")
    os.environ.setdefault("WANDB_DIR", str(recipe.args.output_dir))
    if "wandb" in sys.modules:
        import wandb

        # wandb reads its environment once per process; a second run in the same process
        # (a notebook, a sweep loop) would otherwise log into the first run's directory.
        if wandb.run is None:
            wandb.teardown()


def train(recipe: Recipe, resume: bool = False) -> TrainResult:
    # 1. Everything a user can get wrong, before anything heavy; then OUTPUT_DIR is this run's alone.
    dataset, reward_funcs, roles, output_dir = preflight(recipe)
    lock = hold_output_dir(output_dir, recipe.source)
    try:
        return _train(recipe, resume, dataset, reward_funcs, roles, output_dir)
    finally:
        if lock is not None:
            lock.release()


def _train(recipe: Recipe, resume: bool, dataset, reward_funcs, roles: dict[str, str],
           output_dir: Path) -> TrainResult:
    args = recipe.args
    # 2. The model: the embedded tiny one is built once and then loaded by path like any other.
    # One writer per node; the other ranks wait, then load the same files.
    with PartialState().local_main_process_first():
        model = recipe.model
        model_path = recipe_model_path(model.name_or_path, output_dir, size=model.size, seed=model.seed)

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    setup_wandb(recipe)

    # 3. Traces: one shard per rank, appended across resumes.
    checkpoint = _last_checkpoint(output_dir) if resume else None
    writer = None
    traces_dir = None
    counters = None
    if recipe.traces.enabled:
        rank = PartialState().process_index
        traces_dir = Path(recipe.traces.dir) if recipe.traces.dir else output_dir / "traces"
        if checkpoint:
            step = int(Path(checkpoint).name.rsplit("-", 1)[-1])
            dropped = rewind_shard(shard_path(traces_dir, rank), step)
            if dropped:
                print(f"rank {rank}: resuming at step {step}, dropped {dropped} traces of the steps that will re-run")
        writer = TraceWriter(traces_dir, rank=rank, run_id=_run_id(args, output_dir, resumed=bool(checkpoint)))
        if checkpoint:
            counters = load_trace_counters(checkpoint, rank, writer.path, writer.run_id)
        if PartialState().is_main_process:
            _write_run_metadata(traces_dir, writer.run_id, recipe, tokenizer, model_path, roles)
            write_traces_location(output_dir, traces_dir)  # for `rl-reason report`, wherever traces.dir put them

    trainer = TracingGRPOTrainer(
        model=model_path,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        trace_writer=writer,
        trace_counters=counters,
        reward_roles=roles,
        dynamic_sampling=recipe.dynamic_sampling,
        curriculum=recipe.curriculum,
        sampling_state=load_sampling_state(checkpoint) if checkpoint else None,
    )
    for callback in monitoring_callbacks(recipe, trainer):
        trainer.add_callback(callback)
    try:
        trainer.train(resume_from_checkpoint=checkpoint)
    finally:
        if writer is not None:
            writer.close()
    trainer.save_model(str(output_dir))
    trainer.save_state()  # OUTPUT_DIR/trainer_state.json: the log history, for reports and benchmarks
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(output_dir))
    return TrainResult(output_dir, traces_dir, trainer.state.global_step, trainer.state.log_history)


def hold_output_dir(output_dir: Path, where: str) -> RunLock | None:
    """Rank 0 takes OUTPUT_DIR's lock (see rl_reason.train.run_lock); every rank learns the verdict, so a
    refused run ends on all of them, before any of them writes."""
    state = PartialState()
    lock, error = None, None
    if state.is_main_process:
        try:
            lock = RunLock(output_dir).acquire()
        except RunLocked as exc:
            error = str(exc)
        else:
            if lock.took_over:
                print(f"{output_dir}: took over the lock of a run that is gone ({describe(lock.took_over)})")
    if state.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        error = broadcast_object_list([error])[0]
    if error:
        raise ConfigError(f"{where}: {error}")
    return lock


def reward_roles(recipe: Recipe, reward_funcs) -> dict[str, str]:
    """``{name TRL logs the function under: role}``: the recipe's ``role:``, else the registry's, else the
    function's own, else verifier (``rewards.registry.role_of``), so a user's ``module:function`` counts."""
    pairs = zip(recipe.rewards, reward_funcs, strict=True)
    return {func_name(f): role_of(spec.name, spec.role, f) for spec, f in pairs}


def _write_run_metadata(traces_dir: Path, run_id: str, recipe: Recipe, tokenizer, model_path: str,
                        roles: dict[str, str]) -> None:
    """traces/run.json: what every record of the run shares, written once."""
    import hashlib
    import subprocess

    args = recipe.args
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        sha = ""
    init_kwargs = args.model_init_kwargs if isinstance(args.model_init_kwargs, dict) else {}
    meta = {
        "schema": 1,
        "run_id": run_id,
        "git_sha": sha or None,
        "model": model_path,
        "model_revision": init_kwargs.get("revision"),
        "chat_template_sha256": hashlib.sha256((tokenizer.chat_template or "").encode()).hexdigest(),
        "sampling": {
            "temperature": args.temperature, "top_p": args.top_p, "top_k": args.top_k,
            "max_completion_length": args.max_completion_length, "num_generations": args.num_generations,
            "use_vllm": args.use_vllm,
        },
        "rewards": [r.model_dump() for r in recipe.rewards],
        "reward_roles": roles,
        "data": recipe.data.model_dump(),
        "output_dir": str(Path(args.output_dir).resolve()),  # its wandb_run.json, when traces.dir is elsewhere
    }
    write_run_info(traces_dir, meta)


def _run_id(args, output_dir: Path, resumed: bool) -> str:
    """The run name, or an id kept in OUTPUT_DIR/run_id so a resumed run keeps its id."""
    if args.run_name:
        return args.run_name
    path = output_dir / "run_id"
    if resumed and path.exists():
        return path.read_text().strip()
    state = PartialState()
    run_id = os.environ.get("RL_REASON_RUN_ID") or f"run-{uuid.uuid4().hex[:8]}"
    if state.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        run_id = broadcast_object_list([run_id])[0]  # one id for every rank
    if state.is_main_process:
        path.write_text(run_id)
    return run_id


def _last_checkpoint(output_dir: Path) -> str | None:
    """The newest complete checkpoint. A crash mid-save leaves a directory without
    trainer_state.json (the Trainer writes it last); that one is skipped, not loaded."""
    candidates = sorted(
        (p for p in output_dir.glob("checkpoint-*") if p.name.rsplit("-", 1)[-1].isdigit()),
        key=lambda p: int(p.name.rsplit("-", 1)[-1]),
        reverse=True,
    )
    for path in candidates:
        if (path / "trainer_state.json").exists():
            return str(path)
        print(f"--resume: skipping {path.name}, an incomplete checkpoint (the run died while saving it)")
    print(f"--resume: no checkpoint in {output_dir}, starting from scratch")
    return None


__all__ = ["ConfigError", "TrainResult", "load_train_recipe", "train"]
