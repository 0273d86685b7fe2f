"""``rl-reason distill``: train a student on an exported trace dataset with TRL's SFTTrainer.

The recipe is ``SFTConfig`` fields plus ``model`` (the student: a path, or ``tiny`` with
``size: student`` to build the embedded small model) and ``data.source`` (an export directory,
its ``dataset/`` or a JSONL of ``messages``). Loss is on the assistant tokens only.
"""

from __future__ import annotations

from pathlib import Path

from rl_reason.config import ConfigError, Recipe, load_recipe
from rl_reason.preflight import check_model_path, check_output_dir, cpu_defaults

SFT_DEFAULTS = {"assistant_only_loss": True, "activation_checkpointing": False}


def load_distill_recipe(path, overrides=(), defaults: dict | None = None) -> Recipe:
    from trl import SFTConfig

    base = {**cpu_defaults(), **SFT_DEFAULTS, "rewards": [], **(defaults or {})}
    return load_recipe(path, overrides, args_class=SFTConfig, defaults=base)


def load_messages(source: str | Path, where: str = "config"):
    from datasets import load_dataset, load_from_disk

    path = Path(source)
    if path.is_dir() and (path / "dataset").is_dir():
        path = path / "dataset"
    elif path.is_dir():
        for name in ("messages.parquet", "messages.jsonl"):  # an export made with --no-save-to-disk
            if (path / "data" / name).is_file():
                path = path / "data" / name
                break
    if path.is_dir():
        try:
            ds = load_from_disk(str(path))
        except FileNotFoundError:
            raise ConfigError(f"{where}: data.source: {source} is not a saved dataset or an export directory") from None
    elif path.is_file() and path.suffix in {".jsonl", ".json"}:
        ds = load_dataset("json", data_files=str(path), split="train")
    elif path.is_file() and path.suffix == ".parquet":
        ds = load_dataset("parquet", data_files=str(path), split="train")
    else:
        raise ConfigError(f"{where}: data.source: {source} not found (give an export directory or a .jsonl of messages)")
    if "messages" not in ds.column_names:
        raise ConfigError(f"{where}: data.source: {source} has no 'messages' column (columns: {sorted(ds.column_names)})")
    if len(ds) == 0:
        raise ConfigError(f"{where}: data.source: {source} is empty")
    return ds.select_columns(["messages"])


def distill(recipe: Recipe) -> Path:
    from rl_reason.sft import run_sft
    from rl_reason.data.tiny import build_tiny

    dataset = load_messages(recipe.data.source, recipe.source)
    if recipe.model.name_or_path != "tiny":
        check_model_path(recipe.model.name_or_path, recipe.source)
    output_dir = check_output_dir(recipe.args.output_dir, recipe.source)
    model_path = recipe.model.name_or_path
    if model_path == "tiny":
        model_path = str(output_dir / "base_model")
        if not (Path(model_path) / "config.json").exists():
            build_tiny(model_path, size=recipe.model.size, seed=recipe.model.seed)
    return run_sft(model_path, dataset, recipe.args)
