"""``rl-reason report RUN_DIR``: one self-contained HTML page on a GRPO run's health.

Built from the trainer's log history (``RUN_DIR/trainer_state.json``) and the traces (wherever the
run recorded them, ``rl_reason.traces.schema.traces_location``): reward curves, pass and format rates,
completion lengths, the fraction of groups with zero reward variance (no learning signal), truncation,
dynamic sampling's rounds and kept groups, the curriculum's skips, the prompt pool's pass rates, the step-time
split, throughput, verifier timeouts, and the completions the verifiers could not judge.
Plots are PNGs embedded as base64, so the file opens anywhere.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from pathlib import Path

from rl_reason.traces.schema import reward_roles, traces_location

REWARD_PLOT = "Reward"  # the total and each reward function's mean, whatever the run's functions are
PLOTS = [
    (REWARD_PLOT, ["reward"]),
    ("Pass and format rate", ["health/pass_rate", "health/format_rate"]),
    ("Completion length (tokens)", ["completions/mean_length", "health/length_p90"]),
    ("No learning signal", ["health/zero_variance_groups", "frac_reward_zero_std", "health/truncated_rate"]),
    ("Dynamic sampling and curriculum (groups per step)", [
        "dynamic_sampling/generated_groups", "dynamic_sampling/kept_groups", "dynamic_sampling/short_groups",
        "dynamic_sampling/extra_rounds", "curriculum/skipped"]),
    ("Generated tokens per trained token", ["efficiency/generated_tokens_per_trained_token"]),
    ("Tokens per step", ["efficiency/generated_tokens", "efficiency/trained_tokens"]),
    ("Prompt pool by pass rate (share of the pool)", ["pool/unseen", "pool/always_solved", "pool/never_solved",
                                                      "pool/in_between", "pool/mean_pass_rate"]),
    ("Step time split (s)", ["time/step", "time/generation", "time/reward", "time/scoring", "time/update"]),
    ("Throughput (per s)", ["throughput/tokens_per_s", "reward_pool/checks_per_s"]),
    ("Verifier trouble (count per step)", ["math/timeouts", "math/unparseable_gold", "math/no_answer", "code/TLE",
                                           "code/sandbox_error", "code/invalid_tests"]),
]
_ROLE_ORDER = {"verifier": 0, "format": 1, "shaping": 2}


def reward_curves(history: list[dict], recorded: dict[str, str]) -> dict[str, str]:
    """``{history key: legend label}`` of the per-function reward means TRL logged, verifiers first,
    each labelled with its role (the run's recorded roles, else the registry's)."""
    from rewards.registry import roles_of

    names = sorted({k[len("rewards/"):-len("/mean")] for h in history for k in h
                    if k.startswith("rewards/") and k.endswith("/mean")})
    roles = roles_of(names, recorded)
    names.sort(key=lambda n: (_ROLE_ORDER.get(roles[n], 3), n))
    return {f"rewards/{n}/mean": f"{n} ({roles[n]})" for n in names}


def _png(title: str, history: list[dict], keys: list[str], labels: dict[str, str] | None = None) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {k: [(h["step"], h[k]) for h in history if isinstance(h.get(k), (int, float))] for k in keys}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for key, points in series.items():
        ax.plot(*zip(*points), marker=".", label=(labels or {}).get(key, key))
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _trace_summary(traces_dir: Path) -> tuple[dict, list[dict]]:
    from rl_reason.traces.reader import read_traces

    counts: Counter = Counter()
    unjudged: list[dict] = []
    if not traces_dir.exists():
        return dict(counts), unjudged
    for r in read_traces(traces_dir):
        counts["traces"] += 1
        counts[f"mode={r.get('mode')}"] += 1
        if r.get("truncated"):
            counts["truncated"] += 1
        if r.get("dropped"):
            counts[f"dropped by dynamic sampling ({r['dropped']})"] += 1
        for name, value in (r.get("rewards") or {}).items():
            if value is None:
                counts[f"{name} could not judge"] += 1
                if len(unjudged) < 20:
                    unjudged.append({"step": r.get("step"), "reward": name, "answer": r.get("answer"),
                                     "completion": r.get("completion", "")[:300]})
    return dict(counts), unjudged


def write_report(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write the report (default ``RUN_DIR/report.html``) and return its path."""
    run_dir = Path(run_dir)
    state_file = run_dir / "trainer_state.json"
    if not state_file.exists():
        raise FileNotFoundError(f"{state_file} not found: is {run_dir} the output_dir of an `rl-reason train` run?")
    history = [h for h in json.loads(state_file.read_text())["log_history"] if "step" in h]
    output = Path(output) if output else run_dir / "report.html"
    traces_dir = traces_location(run_dir)
    counts, unjudged = _trace_summary(traces_dir)
    curves = reward_curves(history, reward_roles(traces_dir) if traces_dir.is_dir() else {})
    figures = []
    for title, keys in PLOTS:
        labels = curves if title == REWARD_PLOT else None
        png = _png(title, history, keys + list(labels or ()), labels)
        if png:
            name = html.escape(title)
            figures.append(f'<figure><img alt="{name}" src="data:image/png;base64,{png}">'
                           f'<figcaption>{name}</figcaption></figure>')
    # TRL's end-of-training summary entry has a step but no metrics: report the last logged step.
    steps = [h for h in history if "reward" in h]
    last = steps[-1] if steps else {}
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in sorted(counts.items()))
    failed = "".join(
        f"<tr><td>{u['step']}</td><td>{html.escape(str(u['reward']))}</td><td>{html.escape(str(u['answer']))}</td>"
        f"<td><pre>{html.escape(u['completion'])}</pre></td></tr>"
        for u in unjudged
    ) or "<tr><td colspan=4>none: every completion was judged</td></tr>"
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>rl-reason report: {html.escape(run_dir.name)}</title>
<style>body{{font-family:sans-serif;max-width:1300px;margin:2em auto}} figure{{display:inline-block;margin:.5em}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:.2em .5em;vertical-align:top}}
pre{{margin:0;white-space:pre-wrap}}</style>
</head><body>
<h1>GRPO run: {html.escape(str(run_dir))}</h1>
<p>{len(steps)} logged steps; last step {last.get('step', '-')}; last reward {last.get('reward', '-')}.</p>
<h2>Curves</h2>
{''.join(figures) or '<p>No metrics logged yet.</p>'}
<h2>Traces</h2>
<p>{html.escape(str(traces_dir))}</p>
<table><tr><th>count</th><th>value</th></tr>{rows}</table>
<h2>Completions a verifier could not judge (first 20)</h2>
<table><tr><th>step</th><th>reward</th><th>reference</th><th>completion</th></tr>{failed}</table>
</body></html>
"""
    tmp = output.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(output)
    return output
