"""Supervised fine-tuning with TRL's SFTTrainer, loss on assistant tokens only: the one SFT set-up.

``rl-reason distill`` trains a student on an exported trace dataset from a recipe: ``SFTConfig``
fields plus ``model`` (the student: a path, or ``tiny`` with ``size: student`` to build the
embedded small model) and ``data.source`` (an export directory, its ``dataset/`` or a JSONL of
``messages``). The pipeline's own fine-tunes (the demo's warm start and student, each STaR round)
call ``run_sft`` with ``sft_config``, which starts from the same defaults as a recipe.
"""

from __future__ import annotations

from pathlib import Path

from rl_reason.config import ConfigError, Recipe, load_recipe
from rl_reason.preflight import check_model_path, check_output_dir, cpu_defaults

SFT_DEFAULTS = {"assistant_only_loss": True, "activation_checkpointing": False}
# A fine-tune inside a pipeline stage: no checkpoints, and its log lines between the stage's own.
PIPELINE_DEFAULTS = {"save_strategy": "no", "report_to": "none", "logging_steps": 25, "disable_tqdm": True}


def sft_defaults() -> dict:
    """What every SFT run here starts from, a recipe's keys and a stage's overrides on top."""
    return {**cpu_defaults(), **SFT_DEFAULTS}


def load_distill_recipe(path, overrides=(), defaults: dict | None = None) -> Recipe:
    from trl import SFTConfig

    base = {**sft_defaults(), "rewards": [], **(defaults or {})}
    return load_recipe(path, overrides, args_class=SFTConfig, defaults=base)


def sft_config(output_dir: str | Path, overrides: dict | None = None, seed: int = 0):
    """The ``SFTConfig`` of a fine-tune a pipeline stage runs itself (``overrides``: SFTConfig fields)."""
    from trl import SFTConfig

    return SFTConfig(**{**sft_defaults(), **PIPELINE_DEFAULTS, "output_dir": str(output_dir), "seed": seed,
                        **(overrides or {})})


def load_messages(source: str | Path, where: str = "config"):
    """The ``messages`` column of an export directory (its ``dataset/``, else ``data/messages.*``), a saved
    dataset or a JSONL/JSON/Parquet file."""
    from rl_reason.data.load import UnknownFileType, load_file

    path = Path(source)
    if path.is_dir() and (path / "dataset").is_dir():
        path = path / "dataset"
    elif path.is_dir():
        for name in ("messages.parquet", "messages.jsonl"):  # an export made with --no-save-to-disk
            if (path / "data" / name).is_file():
                path = path / "data" / name
                break
    not_found = f"{where}: data.source: {source} not found (give an export directory or a .jsonl of messages)"
    try:
        ds = load_file(path)
    except FileNotFoundError:
        if path.is_dir():
            raise ConfigError(f"{where}: data.source: {source} is not a saved dataset or an export directory") from None
        raise ConfigError(not_found) from None
    except UnknownFileType:
        raise ConfigError(not_found) from None
    if "messages" not in ds.column_names:
        raise ConfigError(f"{where}: data.source: {source} has no 'messages' column "
                          f"(columns: {sorted(ds.column_names)})")
    if len(ds) == 0:
        raise ConfigError(f"{where}: data.source: {source} is empty")
    return ds.select_columns(["messages"])


def run_sft(model_path: str | Path, train_dataset, args, callbacks=None) -> Path:
    """Train ``model_path`` on ``train_dataset`` (a ``messages`` column) and save to ``args.output_dir``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_dataset, processing_class=tokenizer,
                         callbacks=callbacks)
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    trainer.save_model(args.output_dir)
    tokenizer.save_pretrained(args.output_dir)
    return Path(args.output_dir)


def distill(recipe: Recipe) -> Path:
    from rl_reason.data.tiny import recipe_model_path

    dataset = load_messages(recipe.data.source, recipe.source)
    if recipe.model.name_or_path != "tiny":
        check_model_path(recipe.model.name_or_path, recipe.source)
    output_dir = check_output_dir(recipe.args.output_dir, recipe.source)
    model = recipe.model
    model_path = recipe_model_path(model.name_or_path, output_dir, size=model.size, seed=model.seed)
    return run_sft(model_path, dataset, recipe.args)
