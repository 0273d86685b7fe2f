"""Side-by-side benchmark: RougePool against Self-Instruct's brute-force ROUGE-L near-duplicate filter.

    python benchmarks/rouge_dedup.py [--pool 50000] [--reference-sample 40] [--full-check] [--json OUT]

Candidates: ``--pool`` problems built deterministically (seed 0) from the real GSM8K questions
(``../shared/data/gsm8k/{train,test}.jsonl``): the questions themselves plus perturbed copies (numbers
changed, names swapped, a sentence dropped or added, words reordered, several of those at once, or two
questions spliced together), shuffled.  Many perturbations are near-copies of a question seen
earlier, some are not, so a good share of candidates is dropped.

Ours: ``RougePool(0.7).filter(candidates)`` over the whole sequence, single process, timed.

Reference: Self-Instruct's ``bootstrap_instructions.py`` approach, ``RougeScorer(["rougeL"],
use_stemmer=False).score(candidate, item).fmeasure`` for every pool item, mapped over a
``multiprocessing.Pool(2)`` (one pool reused for all candidates; Self-Instruct opens one per
candidate, which only costs it more).  Pure-Python LCS makes it ~0.6 ms a pair, so it runs on
``--reference-sample`` candidates spread evenly over the sequence, each against the pool as it stood
when that candidate was offered (the default 40 takes a few minutes at 50,000; 300 would take about
half an hour); its full time is extrapolated from the measured cost per pair times the pairs the
full sequential run needs.  Decisions on the sample must equal ours (exit 1 if not);
both use our rule, keep iff max < 0.7.

``--full-check`` also checks every decision of the full run against brute force on rapidfuzz
(``max_scores`` over the pool as it stood: all pairs, exact formula) and reports its time as a third
runner: rapidfuzz brute force, C++ LCS over ``cdist`` with ``--processes`` workers.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import re
import sys
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"

from rl_reason.synthesize.rouge import RougePool, max_scores  # noqa: E402

THRESHOLD = 0.7


# ---------------------------------------------------------------- candidates

def load_questions() -> list[str]:
    questions = []
    for split in ("train", "test"):
        with (SHARED / "data" / "gsm8k" / f"{split}.jsonl").open() as f:
            questions.extend(json.loads(line)["question"] for line in f)
    return questions


_SENTENCE = re.compile(r"(?<=[.?!])\s+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _names(questions: list[str]) -> list[str]:
    """Capitalised words never seen in lower case: in GSM8K, almost all people's names."""
    words = {w for q in questions for w in re.findall(r"[A-Za-z]+", q)}
    return sorted(w for w in words if len(w) >= 3 and w[0].isupper() and w[1:].islower() and w.lower() not in words)


class Perturber:
    def __init__(self, questions: list[str], rng: random.Random):
        self.questions = questions
        self.rng = rng
        self.names = _names(questions)
        self.name_set = set(self.names)

    def numbers(self, q: str) -> str:
        def change(m: re.Match) -> str:
            v = m.group()
            if "." in v:
                return f"{float(v) * self.rng.choice((0.5, 1.5, 2, 3)):.2f}"
            return str(max(1, int(v) + self.rng.randint(1, 9) * self.rng.choice((-1, 1))))
        return _NUMBER.sub(change, q)

    def names_swap(self, q: str) -> str:
        found = sorted({w for w in re.findall(r"[A-Za-z]+", q) if w in self.name_set})
        if not found:
            return self.numbers(q)
        mapping = {w: self.rng.choice(self.names) for w in found}
        return re.sub(r"[A-Za-z]+", lambda m: mapping.get(m.group(), m.group()), q)

    def drop_sentence(self, q: str) -> str:
        sents = _SENTENCE.split(q)
        if len(sents) < 2:
            return self.reorder(q)
        del sents[self.rng.randrange(len(sents) - 1)]  # keep the question sentence
        return " ".join(sents)

    def add_sentence(self, q: str) -> str:
        other = _SENTENCE.split(self.rng.choice(self.questions))
        sents = _SENTENCE.split(q)
        sents.insert(self.rng.randrange(len(sents)), self.rng.choice(other))
        return " ".join(sents)

    def reorder(self, q: str) -> str:
        words = q.split()
        for _ in range(self.rng.randint(1, 4)):
            if len(words) > 2:
                i = self.rng.randrange(len(words) - 1)
                words[i], words[i + 1] = words[i + 1], words[i]
        return " ".join(words)

    def combo(self, q: str) -> str:
        for op in self.rng.sample((self.numbers, self.names_swap, self.drop_sentence, self.add_sentence,
                                   self.reorder), 3):
            q = op(q)
        return q

    def splice(self, q: str) -> str:
        a, b = _SENTENCE.split(q), _SENTENCE.split(self.rng.choice(self.questions))
        return " ".join(a[: max(1, len(a) // 2)] + b[len(b) // 2:])


def build_candidates(n: int, seed: int = 0) -> list[str]:
    """``n`` candidates: about a fifth original questions, the rest perturbations of random ones, shuffled."""
    rng = random.Random(seed)
    questions = load_questions()
    p = Perturber(questions, rng)
    ops = [(p.numbers, 3), (p.names_swap, 3), (p.drop_sentence, 2), (p.add_sentence, 2), (p.reorder, 2),
           (p.combo, 2), (p.splice, 2)]
    funcs = [f for f, w in ops for _ in range(w)]
    originals = rng.sample(questions, min(len(questions), max(1, n // 5)))
    out = list(originals)
    while len(out) < n:
        out.append(rng.choice(funcs)(rng.choice(questions)))
    rng.shuffle(out)
    return out[:n]


# ---------------------------------------------------------------- runners

def run_ours(candidates: list[str]) -> tuple[list[bool], RougePool, float, float]:
    """Keep flags, the pool, wall seconds and CPU seconds."""
    pool = RougePool(THRESHOLD)
    t0, c0 = time.perf_counter(), time.process_time()
    keep = pool.filter(candidates)
    return keep, pool, time.perf_counter() - t0, time.process_time() - c0


def _fmeasure(scorer, candidate: str, item: str) -> float:
    return scorer.score(candidate, item)["rougeL"].fmeasure


def run_reference(candidates: list[str], sample: list[int], pools: list[list[str]],
                  processes: int) -> tuple[list[bool], int, float]:
    """Self-Instruct's filter for the sampled candidates, each against its own pool snapshot."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    keep, pairs = [], 0
    with multiprocessing.Pool(processes) as workers:
        t0 = time.perf_counter()
        for i, pool in zip(sample, pools):
            scores = workers.map(partial(_fmeasure, scorer, candidates[i]), pool) if pool else []
            keep.append(max(scores, default=0.0) < THRESHOLD)
            pairs += len(pool)
        seconds = time.perf_counter() - t0
    return keep, pairs, seconds


# ---------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pool", type=int, default=50_000, help="candidates to filter (default 50000)")
    ap.add_argument("--reference-sample", type=int, default=40,
                    help="candidates the reference scores against the whole pool (default 40; 0.3-1 ms a pair)")
    ap.add_argument("--processes", type=int, default=2, help="reference multiprocessing pool size (default 2)")
    ap.add_argument("--full-check", action="store_true", help="check every decision by rapidfuzz brute force")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    candidates = build_candidates(args.pool, args.seed)
    load = os.getloadavg()[0]
    keep, pool, ours_s, ours_cpu = run_ours(candidates)
    texts = pool.texts
    # Pool size when candidate i was offered.
    sizes, size = [], 0
    for k in keep:
        sizes.append(size)
        size += k
    total_pairs = sum(sizes)
    dropped = keep.count(False)

    k = max(1, min(args.reference_sample, len(candidates)))
    sample = sorted({round(j * (len(candidates) - 1) / max(1, k - 1)) for j in range(k)})
    ref_keep, ref_pairs, ref_s = run_reference(candidates, sample, [texts[: sizes[i]] for i in sample],
                                               args.processes)
    mismatches = [i for i, r in zip(sample, ref_keep) if r != keep[i]]
    ref_full_s = ref_s / ref_pairs * total_pairs if ref_pairs else float("nan")

    full_mismatches, full_s = None, None
    if args.full_check:
        t0 = time.perf_counter()
        best = max_scores(candidates, texts, workers=args.processes, prefix_lengths=sizes)
        full_s = time.perf_counter() - t0
        full_mismatches = [i for i, (b, kk) in enumerate(zip(best, keep)) if (b < THRESHOLD) != kk]

    rows = [
        ("ours: RougePool.filter (1 process)", len(candidates), pool.pairs_scored, f"{ours_s:.2f} measured"),
        (f"reference: rouge_score, Pool({args.processes}), sample", len(sample), ref_pairs, f"{ref_s:.2f} measured"),
        (f"reference: rouge_score, Pool({args.processes}), full", len(candidates), total_pairs,
         f"{ref_full_s:.0f} extrapolated"),
    ]
    if full_s is not None:
        rows.append((f"full check: rapidfuzz cdist, {args.processes} workers", len(candidates), total_pairs,
                     f"{full_s:.2f} measured"))
    print(f"{len(candidates)} candidates from GSM8K (seed {args.seed}), threshold {THRESHOLD} (keep iff max < it)")
    print(f"kept {len(texts)}, dropped {dropped} ({100 * dropped / len(candidates):.1f}%); "
          f"load average {load:.1f} on {os.cpu_count()} CPUs at the start; ours used {ours_cpu:.2f} s of CPU")
    print(f"{'runner':<44} {'candidates':>10} {'pairs scored':>14} {'seconds':>22}")
    for name, n, pairs, secs in rows:
        print(f"{name:<44} {n:>10} {pairs:>14} {secs:>22}")
    ratio = ref_full_s / ours_s if ours_s > 0 else float("inf")
    print(f"speed ratio (reference extrapolated / ours): {ratio:.0f}x; "
          f"reference {1e6 * ref_s / max(1, ref_pairs):.0f} us/pair on {args.processes} processes")
    print(f"decisions on the reference sample: {'identical' if not mismatches else 'DIFFERENT'} "
          f"({len(sample) - len(mismatches)}/{len(sample)}; {ref_keep.count(False)} of them dropped)")
    if full_mismatches is not None:
        print(f"full check vs rapidfuzz brute force: {'identical' if not full_mismatches else 'DIFFERENT'} "
              f"({len(candidates) - len(full_mismatches)}/{len(candidates)})")

    if args.json:
        args.json.write_text(json.dumps({
            "candidates": len(candidates), "kept": len(texts), "dropped": dropped,
            "drop_rate": dropped / len(candidates), "threshold": THRESHOLD,
            "ours_seconds": ours_s, "ours_cpu_seconds": ours_cpu, "load_average": load,
            "ours_pairs_scored": pool.pairs_scored,
            "reference_sample": len(sample), "reference_pairs": ref_pairs, "reference_seconds": ref_s,
            "reference_processes": args.processes, "full_pairs": total_pairs,
            "reference_full_seconds_extrapolated": ref_full_s, "speed_ratio": ratio,
            "sample_mismatches": mismatches, "identical": not mismatches and not full_mismatches,
            "full_check_mismatches": full_mismatches, "full_check_seconds": full_s,
        }, indent=2))
    return 1 if mismatches or full_mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
