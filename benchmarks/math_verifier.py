"""Side-by-side benchmark: rewards.math against Math-Verify on the same labelled pairs.

    python benchmarks/math_verifier.py [--sets hardverify,cases,adversarial,gsm8k] [--limit N] [--workers 2]

Math-Verify (bench-only dependency ``math-verify``) is called the way TRL's ``accuracy_reward``
calls it: the gold through ``parse(gold, extraction_mode="first_match")``, the completion through
``parse`` with a boxed-first ``LatexExtractionConfig`` (nits and malformed operators off, units
on, no unanchored extraction), then ``verify(gold, answer)``, single process, main thread (its
signal timeouts work only there). Every prediction reaches both checkers as the same completion
``\\boxed{pred}``; golds without ``$``/``\\boxed`` are wrapped in ``$…$`` for Math-Verify (an
undelimited gold is silently mis-parsed: huggingface/Math-Verify issue #56).

Prints recall (accepted correct answers) and specificity (rejected wrong ones) overall and per
answer type, ours under the reward's exact precision (the default) and under the opt-in
``precision="rounded"``, throughput (checks/s: Math-Verify single process; ours with 1 worker and batched
over ``--workers``), p50/p99 latency per check, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"

from rewards import math as rm  # noqa: E402


# ---------------------------------------------------------------- data

def load_sets(names: list[str], limit: int | None) -> list[dict]:
    """Labelled (gold, pred, label, set, type) rows."""
    rows: list[dict] = []
    if "hardverify" in names:
        for d in json.loads((SHARED / "hardverify_math" / "HardVerify-Math.json").read_text()):
            rows.append(dict(gold=d["ground_truth"], pred=d["fn_output"], label=1, set="hardverify"))
            rows.append(dict(gold=d["ground_truth"], pred=d["tn_output"], label=0, set="hardverify"))
    if "cases" in names:
        for line in (ROOT / "tests" / "data" / "math" / "equivalence_cases.jsonl").read_text().splitlines():
            c = json.loads(line)
            if not c.get("policy"):  # only cases under the default policy
                rows.append(dict(gold=c["gold"], pred=c["pred"], label=c["expected"], set="cases", type=c["type"]))
    if "adversarial" in names:  # issue 11's false-positive classes, both labels (type = class)
        for line in (ROOT / "tests" / "data" / "math" / "adversarial_cases.jsonl").read_text().splitlines():
            c = json.loads(line)
            if not c.get("policy"):
                rows.append(dict(gold=c["gold"], pred=c["pred"], label=c["expected"], set="adversarial",
                                 type="adv:" + c["class"]))
    if "gsm8k" in names:
        for line in (SHARED / "gsm8k" / "example_model_solutions.jsonl").open():
            r = json.loads(line)
            gold = rm.gold_answer(r["ground_truth"], from_solution=True)
            for k in ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification"):
                pred = rm.extract_answer(r[k]["solution"], fallbacks=True) or ""
                rows.append(dict(gold=gold, pred=pred, label=int(r[k]["is_correct"]), set="gsm8k"))
    for r in rows:
        r.setdefault("type", answer_type(r["gold"]))
    if limit:
        rows = rows[:limit]
    return rows


def answer_type(gold: str) -> str:
    """A coarse answer type from the gold's surface form (for per-type tables)."""
    g = gold.replace("$", "").strip()
    if re.search(r"pmatrix|bmatrix|\\begin\{matrix", g):
        return "matrix"
    words = re.findall(r"(?<!\\)\b[A-Za-z]{4,}\b", re.sub(r"\\[a-zA-Z]+", " ", g))
    if len(words) >= 2:
        return "text"
    if re.search(r"\\%|%|\\circ|°", g):
        return "percent/degree"
    if re.search(r"<|>|\\le|\\ge|\\infty|∞|\\cup|\\in\b|\[|\]", g):
        return "inequality/interval"
    if "," in g or "\\pm" in g:
        return "tuple/set/list"
    if "=" in g:
        return "equation"
    if re.fullmatch(r"-?[\d,]*\.?\d+", g):
        return "number"
    if re.search(r"[a-zA-Z]", re.sub(r"\\(frac|dfrac|sqrt|pi|cdot|times|left|right|log|ln|sin|cos|tan)", "", g)):
        return "expression"
    return "closed form"


def completion(pred: str) -> str:
    return "\\boxed{" + pred + "}"


# ---------------------------------------------------------------- checkers

def math_verify_checker():
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import LatexExtractionConfig, parse, verify

    answer_cfg = [
        LatexExtractionConfig(
            normalization_config=NormalizationConfig(
                nits=False, malformed_operators=False, basic_latex=True, equations=True, boxed="all", units=True
            ),
            boxed_match_priority=0,
            try_extract_without_anchor=False,
        )
    ]

    def check(gold: str, pred: str) -> bool:
        g = gold if ("$" in gold or "\\boxed" in gold) else f"${gold}$"
        try:
            gold_parsed = parse(g, extraction_mode="first_match")
            if not gold_parsed:
                return False
            answer = parse(completion(pred), extraction_config=answer_cfg, extraction_mode="first_match")
            return bool(verify(gold_parsed, answer))
        except BaseException:  # its TimeoutException is a BaseException
            return False

    return check


def ours_pairs(rows):
    return [(r["gold"], rm.extract_answer(completion(r["pred"]))) for r in rows]


# ---------------------------------------------------------------- metrics

def scores(rows, verdicts) -> dict:
    out: dict[str, dict] = {}
    for r, ok in zip(rows, verdicts):
        for key in ("ALL", f"set:{r['set']}", f"type:{r['type']}"):
            s = out.setdefault(key, {"pos": 0, "tp": 0, "neg": 0, "tn": 0})
            if r["label"]:
                s["pos"] += 1
                s["tp"] += bool(ok)
            else:
                s["neg"] += 1
                s["tn"] += not ok
    return out


def pct(a: int, b: int) -> str:
    return f"{100 * a / b:5.1f}%" if b else "   - "


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default="hardverify,cases,adversarial,gsm8k")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--latency-sample", type=int, default=300, help="pairs timed one by one for p50/p99")
    args = ap.parse_args()
    rows = load_sets(args.sets.split(","), args.limit)
    print(f"{len(rows)} labelled pairs from {args.sets}")

    mv = math_verify_checker()
    mv("1", "1")  # imports and first-call setup outside the timing
    t = time.perf_counter()
    mv_lat = []
    mv_verdicts = []
    for r in rows:
        t1 = time.perf_counter()
        mv_verdicts.append(mv(r["gold"], r["pred"]))
        mv_lat.append(time.perf_counter() - t1)
    mv_time = time.perf_counter() - t

    pairs = ours_pairs(rows)
    assert rm.start_workers(1) and rm.start_workers(args.workers)  # pools start outside the timing
    rm._CACHE.data.clear()
    t = time.perf_counter()
    one = rm.check_batch(pairs, workers=1)
    one_time = time.perf_counter() - t
    rm._CACHE.data.clear()
    t = time.perf_counter()
    ours = rm.check_batch(pairs, workers=args.workers)
    batch_time = time.perf_counter() - t
    assert [v.equal for v in one] == [v.equal for v in ours], "verdicts must not depend on the pool size"
    rounded = rm.check_batch(pairs, workers=args.workers, precision="rounded")
    rm._CACHE.data.clear()
    step = max(1, len(pairs) // args.latency_sample)
    our_lat = []
    for g, p in pairs[::step]:
        t1 = time.perf_counter()
        rm.check(g, p, workers=1)
        our_lat.append(time.perf_counter() - t1)
    mv_lat_sample = mv_lat[::step]

    s_mv, s_us = scores(rows, mv_verdicts), scores(rows, [v.equal for v in ours])
    s_r = scores(rows, [v.equal for v in rounded])
    keys = ["ALL"] + sorted(k for k in s_us if k.startswith("set:")) + sorted(k for k in s_us if k.startswith("type:"))
    print()
    print(f"{'':44} | {'recall':^24} | {'specificity':^24}")
    print(f"{'slice':32} {'n+':>5} {'n-':>5} | {'MV':>6} {'exact':>8} {'rounded':>8} "
          f"| {'MV':>6} {'exact':>8} {'rounded':>8}")
    print("-" * 100)
    for k in keys:
        a, b, c = s_mv[k], s_us[k], s_r[k]
        print(f"{k:32} {a['pos']:5d} {a['neg']:5d} | {pct(a['tp'], a['pos']):>6} {pct(b['tp'], b['pos']):>8} "
              f"{pct(c['tp'], c['pos']):>8} | {pct(a['tn'], a['neg']):>6} {pct(b['tn'], b['neg']):>8} "
              f"{pct(c['tn'], c['neg']):>8}")
    n = len(rows)
    unknown = sum(v.status == "unknown" for v in ours)
    print()
    print(f"{'throughput (checks/s)':32} {'Math-Verify':>12} {'ours 1 worker':>14} "
          f"{f'ours {args.workers} workers':>14}")
    print(f"{'':32} {n / mv_time:12.1f} {n / one_time:14.1f} {n / batch_time:14.1f}")
    print(f"ratio to Math-Verify single-process: 1 worker {mv_time / one_time:.1f}x, "
          f"batched {mv_time / batch_time:.1f}x")
    q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))] * 1000  # noqa: E731
    print(f"latency per check (ms, {len(our_lat)} pairs one at a time): "
          f"Math-Verify p50 {q(mv_lat_sample, .5):.2f} p99 {q(mv_lat_sample, .99):.2f} | "
          f"ours p50 {q(our_lat, .5):.2f} p99 {q(our_lat, .99):.2f}")
    print(f"ours: {unknown} unknown verdicts (timeouts/errors), "
          f"median MV latency over all {statistics.median(mv_lat) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
