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

# Each round's fine-tune (``sft``: SFTConfig fields) on top of these and ``rl_reason.distill.sft_config``'s.
DEFAULT_SFT = {
    "max_steps": 100,
    "learning_rate": 1e-3,
    "per_device_train_batch_size": 16,
    "lr_scheduler_type": "cosine",
    "max_length": 512,
}


def star_problems(data: str, eval_data: str | None, *, num_problems: int, num_eval: int, seed: int = 0,
                  where: str = "star") -> tuple[list[dict], list[dict]]:
    """(training, held-out) problems; with both procedural (the default), no held-out question is trained on."""
    from rl_reason.data.load import load_problems

    train = load_problems(data, split="train", num_problems=num_problems, seed=seed, where=where)
    heldout = load_problems(eval_data or "addition", split="heldout", num_problems=num_eval, seed=seed, where=where)
    if data == "addition" and eval_data is None:
        seen = {p["question"] for p in heldout}
        train = [p for p in train if p["question"] not in seen]
    return train, heldout


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
    from rl_reason.distill import load_messages, run_sft, sft_config
    from rl_reason.export.pipeline import ExportOptions, export
    from rl_reason.sampling.evaluate import evaluate
    from rl_reason.sampling.sample import sample_traces

    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = Path(base_model or model_path)
    opts = export_options or ExportOptions(min_reward=None, correct_only=True, select="all")
    current = Path(model_path)
    start = time.time()

    def accuracy(model: Path) -> float:
        return evaluate(model, heldout, max_new_tokens=max_new_tokens, backend=backend).accuracy

    report = [{"round": 0, "model": str(current), "accuracy": accuracy(current)}]
    log(f"[star] round 0: held-out accuracy {report[0]['accuracy']:.3f} ({current})")
    for r in range(1, rounds + 1):
        rdir = out / f"round-{r}"
        sampled = sample_traces(
            current, train_problems, rdir / "traces", reward_specs=list(reward_specs), num_samples=num_samples,
            temperature=temperature, max_new_tokens=max_new_tokens, seed=seed + r, run_id=f"star-round-{r}",
            backend=backend,
        )
        stats = export(rdir / "traces", rdir / "export", options=opts)
        entry = {"round": r, "sampled": sampled["samples"], "correct": sampled["correct"], "solved": sampled["solved"],
                 "exported": stats.kept}
        if stats.kept == 0:
            entry.update(model=str(current), accuracy=report[-1]["accuracy"],
                         note="nothing to train on; model unchanged")
        else:
            args = sft_config(rdir / "model", {**DEFAULT_SFT, **(sft or {})}, seed)
            current = run_sft(base, load_messages(rdir / "export"), args)
            entry.update(model=str(current), accuracy=accuracy(current))
        entry["seconds"] = round(time.time() - start, 1)
        report.append(entry)
        log(f"[star] round {r}: {entry['correct']}/{entry['sampled']} samples correct, exported {entry['exported']}, "
            f"held-out accuracy {entry['accuracy']:.3f}")
        (out / "star_report.json").write_text(json.dumps(report, indent=2))
    return report
