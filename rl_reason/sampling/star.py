"""``rl-reason star``: STaR (Zelikman et al., 2022) as a loop of the other commands.

Each round: rejection-sample the current model on the training problems (``sample``), keep
the rationales that reach the right answer (``export`` with ``correct_only``), fine-tune the
*base* model on them (``distill``; STaR restarts from the base each round to avoid drift), and
evaluate the result on held-out problems (``eval``). The next round samples the new model.
Accuracy per round goes to ``OUTPUT/star_report.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

DEFAULT_SFT = {
    "max_steps": 100,
    "learning_rate": 1e-3,
    "per_device_train_batch_size": 16,
    "lr_scheduler_type": "cosine",
    "max_length": 512,
}


def sft_config(output_dir: Path, overrides: dict, seed: int = 0):
    from trl import SFTConfig

    from rl_reason.preflight import cpu_defaults

    kwargs = {
        "output_dir": str(output_dir), "assistant_only_loss": True, "activation_checkpointing": False,
        "save_strategy": "no", "report_to": "none", "logging_steps": 25, "seed": seed, "disable_tqdm": True,
        **cpu_defaults(), **DEFAULT_SFT, **overrides,
    }
    return SFTConfig(**kwargs)


def star(
    model_path: str | Path,
    train_problems: list[dict],
    heldout: list[dict],
    output_dir: str | Path,
    *,
    rounds: int = 2,
    base_model: str | Path | None = None,
    num_samples: int = 4,
    temperature: float = 1.0,
    max_new_tokens: int = 64,
    sft: dict | None = None,
    export_options=None,
    reward_specs=(("math", 1.0, {}), ("format", 0.1, {})),
    backend: str = "transformers",
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Run ``rounds`` of sample → export → distill → eval; returns one dict per round (round 0: the start)."""
    from rl_reason.distill import load_messages
    from rl_reason.sampling.evaluate import evaluate
    from rl_reason.export.pipeline import ExportOptions, export
    from rl_reason.sampling.sample import sample_traces
    from rl_reason.sft import run_sft

    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = Path(base_model or model_path)
    opts = export_options or ExportOptions(min_reward=None, correct_only=True, select="all")
    current = Path(model_path)
    start = time.time()
    report = [{"round": 0, "model": str(current), "accuracy": evaluate(current, heldout, max_new_tokens=max_new_tokens, backend=backend).accuracy}]
    log(f"[star] round 0: held-out accuracy {report[0]['accuracy']:.3f} ({current})")
    for r in range(1, rounds + 1):
        rdir = out / f"round-{r}"
        sampled = sample_traces(
            current, train_problems, rdir / "traces", reward_specs=list(reward_specs), num_samples=num_samples,
            temperature=temperature, max_new_tokens=max_new_tokens, seed=seed + r, run_id=f"star-round-{r}", backend=backend,
        )
        stats = export(rdir / "traces", rdir / "export", options=opts)
        entry = {"round": r, "sampled": sampled["samples"], "correct": sampled["correct"], "solved": sampled["solved"],
                 "exported": stats.kept}
        if stats.kept == 0:
            entry.update(model=str(current), accuracy=report[-1]["accuracy"], note="nothing to train on; model unchanged")
        else:
            current = run_sft(base, load_messages(rdir / "export"), sft_config(rdir / "model", sft or {}, seed))
            entry.update(model=str(current), accuracy=evaluate(current, heldout, max_new_tokens=max_new_tokens, backend=backend).accuracy)
        entry["seconds"] = round(time.time() - start, 1)
        report.append(entry)
        log(f"[star] round {r}: {entry['correct']}/{entry['sampled']} samples correct, exported {entry['exported']}, "
            f"held-out accuracy {entry['accuracy']:.3f}")
        (out / "star_report.json").write_text(json.dumps(report, indent=2))
    return report
