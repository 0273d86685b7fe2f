"""Checks that run before anything heavy: paths, output directories, device defaults."""

from __future__ import annotations

import os
import re
from pathlib import Path

from rl_reason.config import ConfigError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def cpu_defaults() -> dict:
    """On a machine without CUDA, train in fp32 on the CPU unless the recipe says otherwise."""
    import torch

    if torch.cuda.is_available():
        return {}
    return {"use_cpu": True, "bf16": False, "activation_checkpointing": False}


def check_model_path(name_or_path: str, where: str) -> None:
    """A local path must exist and hold a model; a Hub id (org/name) is left to transformers."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        if path.is_dir() and not (path / "config.json").exists():
            raise ConfigError(f"{where}: model.name_or_path: {name_or_path} has no config.json (not a saved model)")
        return
    if _HUB_ID.match(name_or_path) and not name_or_path.startswith((".", "/", "~")):
        return
    raise ConfigError(f"{where}: model.name_or_path: {name_or_path} does not exist")


def check_output_dir(output_dir: str | Path, where: str) -> Path:
    """Create ``output_dir`` if needed and prove it is writable; undo what we created on failure."""
    path = Path(output_dir).expanduser()
    created = []
    probe_parent = path
    while not probe_parent.exists():
        created.append(probe_parent)
        probe_parent = probe_parent.parent
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        for p in created:
            try:
                p.rmdir()
            except OSError:
                pass
        raise ConfigError(f"{where}: output_dir: {path} is not writable ({exc.strerror or exc})") from None
    return path


def check_vllm(args, where: str) -> None:
    """``use_vllm`` needs the vllm package (the ``vllm`` extra) and a CUDA GPU: say so before loading anything."""
    if not getattr(args, "use_vllm", False):
        return
    import importlib.util

    import torch

    if importlib.util.find_spec("vllm") is None:
        raise ConfigError(f"{where}: use_vllm: vLLM is not installed (pip install -e '.[vllm]', on a CUDA machine)")
    if not torch.cuda.is_available():
        raise ConfigError(f"{where}: use_vllm: vLLM needs a CUDA GPU and none is visible; "
                          "set use_vllm=false to generate with transformers")
    if args.vllm_mode not in ("colocate", "server"):
        raise ConfigError(f"{where}: vllm_mode: expected 'colocate' or 'server', got {args.vllm_mode!r}")


def mixed_precision(args) -> str:
    """The recipe's mixed precision in accelerate's words: ``bf16``, ``fp16`` or ``no``."""
    return "bf16" if args.bf16 else "fp16" if args.fp16 else "no"


def check_mixed_precision(args, where: str) -> None:
    """The recipe's bf16/fp16 decide mixed precision; a launcher that asks for another one is refused.

    ``accelerate launch --mixed_precision`` (or an accelerate config's ``mixed_precision``) reaches
    DeepSpeed through ``ACCELERATE_MIXED_PRECISION``; left to disagree with the Trainer's flags it
    ends in a DeepSpeed traceback (``ds bf16.enabled=True vs hf bf16|bf16_full_eval=False``).
    ``rl-reason launch`` passes the recipe's own value, so only a hand-written launch can differ.
    """
    launcher = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    recipe = mixed_precision(args)
    if launcher in ("bf16", "fp16") and launcher != recipe:
        raise ConfigError(
            f"{where}: bf16/fp16: the launcher asks for {launcher} mixed precision (accelerate --mixed_precision "
            f"or its config) but the recipe trains in {'fp32' if recipe == 'no' else recipe}; the recipe decides: "
            f"set {launcher}=true in it, or launch with --mixed_precision {recipe}"
        )
