"""rl_reason.synthesize.rouge decides exactly as Self-Instruct's brute force over rouge_score does: the same
floats, the same keep/drop decisions (ties at the threshold included), on randomized pools built to hold many
near-copies and exact ties, and on the benchmark's GSM8K workload."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from rouge_score import rouge_scorer

from rl_reason.synthesize import rouge as rmod
from rl_reason.synthesize.rouge import RougePool, max_scores, rouge_l, rouge_tokens

ROOT = Path(__file__).resolve().parents[1]
GSM8K = ROOT.parent / "shared" / "data" / "gsm8k" / "train.jsonl"
SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

# Small vocabularies make near-copies and exact ties common; the odd entries exercise the tokenizer: case,
# digits, punctuation-only words, non-ASCII letters (dropped, or lowercased into ASCII: İ -> i̇, K (Kelvin) -> k).
VOCAB = ["a", "b", "c", "d", "the", "x1", "22", "Cat", "CAT", "cat", "…", "--", "!!", "é", "naïve", "İ", "\u212a",
         "3.5", "it's", "日本"]
SEPARATORS = [" ", " ", " ", ", ", "\n", "-", ". "]


def _ref_score(candidate: str, item: str) -> float:
    """Self-Instruct's call: the candidate is rouge_score's target, the pool item its prediction."""
    return SCORER.score(candidate, item)["rougeL"].fmeasure


def _reference_filter(texts: list[str], threshold: float) -> tuple[list[bool], list[float]]:
    """The sequential brute force on rouge_score itself: keep iff the max score < threshold."""
    pool: list[str] = []
    keep, best = [], []
    for t in texts:
        b = max((_ref_score(t, p) for p in pool), default=0.0)
        best.append(b)
        keep.append(b < threshold)
        if b < threshold:
            pool.append(t)
    return keep, best


def _random_text(rng: random.Random, vocab: list[str], max_len: int) -> str:
    n = rng.choice([0, 1, 2, rng.randint(0, max_len), rng.randint(0, max_len)])
    words = [rng.choice(vocab) for _ in range(n)]
    return "".join(w + rng.choice(SEPARATORS) for w in words).strip() if rng.random() < 0.9 else "".join(words)


def _mutate(rng: random.Random, text: str, vocab: list[str]) -> str:
    """A near-copy (or not) of ``text``: a few words replaced, dropped, inserted or swapped."""
    words = text.split()
    for _ in range(rng.randint(0, 4)):
        op = rng.randrange(4)
        i = rng.randrange(len(words) + 1)
        if op == 0 and i < len(words):
            words[i] = rng.choice(vocab)
        elif op == 1 and i < len(words):
            del words[i]
        elif op == 2:
            words.insert(i, rng.choice(vocab))
        elif i + 1 < len(words):
            words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def _workload(seed: int, n: int, vocab_size: int, max_len: int) -> list[str]:
    rng = random.Random(seed)
    vocab = VOCAB[:vocab_size] + [f"w{i}" for i in range(max(0, vocab_size - len(VOCAB)))]
    texts: list[str] = []
    for _ in range(n):
        r = rng.random()
        if texts and r < 0.45:
            texts.append(_mutate(rng, rng.choice(texts), vocab))
        elif texts and r < 0.5:
            texts.append(rng.choice(texts).upper())  # same tokens after lowercasing
        elif r < 0.55:
            texts.append(rng.choice(["", "...", " !? ", "—", "日本語", "\n"]))
        else:
            texts.append(_random_text(rng, vocab, max_len))
    return texts


# ---------------------------------------------------------------- tokens and scores

def test_tokens_are_rouge_scores():
    for text in ["Hello, World! 3.5 apples", "İstanbul \u212aelvin naïve café", "", "...", "a\tb\nc", "ÀB-cd_ef 12x"]:
        assert rouge_tokens(text) == SCORER._tokenizer.tokenize(text)


def test_rouge_l_is_bit_identical_to_rouge_score():
    rng = random.Random(1)
    for _ in range(3000):
        vocab = VOCAB[: rng.choice([2, 3, 5, len(VOCAB)])]
        a, b = _random_text(rng, vocab, 40), _random_text(rng, vocab, 40)
        if rng.random() < 0.5:
            b = _mutate(rng, a, vocab)
        want = _ref_score(a, b)
        ta, tb = rouge_tokens(a), rouge_tokens(b)
        assert rouge_l(ta, tb) == want and rouge_l(tb, ta) == want, (a, b)


def _tie_pairs(lengths: range) -> list[tuple[int, int, int]]:
    """(la, lb, lcs) with 2·lcs/(la+lb) exactly 7/10."""
    return [(la, lb, 7 * (la + lb) // 20) for la in lengths for lb in lengths
            if (la + lb) % 20 == 0 and 7 * (la + lb) // 20 <= min(la, lb)]


def _pair(la: int, lb: int, lcs: int) -> tuple[str, str]:
    """Texts of la and lb tokens whose LCS is exactly lcs: a shared run plus tokens of their own."""
    common = [f"c{i}" for i in range(lcs)]
    return " ".join(common + [f"a{i}" for i in range(la - lcs)]), " ".join(common + [f"b{i}" for i in range(lb - lcs)])


def test_ties_at_exactly_the_threshold_and_just_below():
    ties = _tie_pairs(range(1, 61))
    assert len(ties) > 20
    seen_floats = set()
    for la, lb, lcs in ties:
        for lc in (lcs, lcs - 1):  # the rational 0.7 exactly, and just below it
            a, b = _pair(la, lb, lc)
            want = _ref_score(a, b)
            seen_floats.add(want)
            assert rouge_l(rouge_tokens(a), rouge_tokens(b)) == want
            pool = RougePool(0.7)
            pool.add(b)
            hit = pool.near_copy(a)
            assert (hit is not None) == (want >= 0.7), (la, lb, lc, want)
            if hit is not None:
                assert hit == (want, 0)
            assert pool.offer(a) == (want < 0.7)
    # rouge_score's float for a rational 0.7 is sometimes 0.7 and sometimes just below it: both are covered.
    assert 0.7 in seen_floats and any(f < 0.7 and 0.7 - f < 1e-12 for f in seen_floats)


@pytest.mark.parametrize("threshold", [0.3, 0.6, 0.7, 0.8, 0.85])
def test_every_boundary_pair(threshold):
    """For every pair of lengths, the smallest LCS whose float reaches the threshold, and one less.

    At 0.6, 0.8 or 0.85 some such pairs sit exactly on the length and overlap bounds (e.g. 2 and 3 tokens
    with LCS 2 score exactly 0.8), which the filter must not lose to float rounding."""
    from rouge_score.scoring import fmeasure

    checked = 0
    for la in range(1, 31):
        for lb in range(1, 31):
            lcs = next((n for n in range(1, min(la, lb) + 1) if fmeasure(n / lb, n / la) >= threshold), None)
            if lcs is None:
                continue
            for lc in (lcs, lcs - 1):
                a, b = _pair(la, lb, lc)
                pool = RougePool(threshold)
                pool.add(b)
                assert pool.offer(a) == (_ref_score(a, b) < threshold), (la, lb, lc)
                checked += 1
    assert checked > 300


# ---------------------------------------------------------------- the pool against rouge_score

@pytest.mark.parametrize("seed,vocab_size,max_len,ell,first_reorder", [
    (0, 3, 12, 5, 64),
    (1, 5, 25, 5, 4),
    (2, 8, 60, 1, 64),
    (3, 20, 40, 2, 8),
    (4, 4, 60, 9, 16),
    (5, 2, 8, 5, 4),
])
def test_filter_matches_rouge_score_brute_force(monkeypatch, seed, vocab_size, max_len, ell, first_reorder):
    # ℓ and the reorder schedule only change speed: decisions must not move.
    monkeypatch.setattr(rmod, "_ELL", ell)
    monkeypatch.setattr(rmod, "_FIRST_REORDER", first_reorder)
    texts = _workload(seed, 160, vocab_size, max_len)
    want_keep, best = _reference_filter(texts, 0.7)
    assert 10 < want_keep.count(False) < len(texts) - 10  # both labels, plenty of each
    pool = RougePool()
    assert pool.filter(texts) == want_keep
    assert pool.texts == [t for t, k in zip(texts, want_keep) if k] and len(pool) == want_keep.count(True)
    # near_copy on the final pool: a qualifying member, with rouge_score's own score, or None iff none qualifies.
    for t in texts[::3]:
        hit = pool.near_copy(t)
        top = max((_ref_score(t, p) for p in pool.texts), default=0.0)
        assert (hit is None) == (top < 0.7)
        if hit is not None:
            score, j = hit
            assert score == _ref_score(t, pool.texts[j]) >= 0.7


def test_exact_ties_in_a_pool():
    """Many pool members sit at exactly 0.7 (in rational terms) from the candidates."""
    texts = []
    for la, lb, lcs in _tie_pairs(range(1, 41))[:40]:
        a, b = _pair(la, lb, lcs)
        texts += [b, a]
    rng = random.Random(7)
    rng.shuffle(texts)
    assert RougePool().filter(texts) == _reference_filter(texts, 0.7)[0]


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.9, 1.0])
def test_other_thresholds(threshold):
    texts = _workload(11, 120, 6, 30)
    want, _ = _reference_filter(texts, threshold)
    assert RougePool(threshold).filter(texts) == want


def test_seeds_offer_and_bad_threshold():
    pool = RougePool()
    pool.add("How many apples does Tom have?")
    pool.add("How many apples does Tom have?")  # add never filters
    assert len(pool) == 2
    assert not pool.offer("how many APPLES does tom have")
    assert pool.offer("A train leaves at 3 pm; when does it arrive?")
    assert pool.offer("") and pool.offer("...")  # no tokens: scores 0, never a near-copy
    assert pool.near_copy("") is None and len(pool) == 5
    for bad in (0, -0.1, 1.01):
        with pytest.raises(ValueError):
            RougePool(bad)


def test_large_pool_matches_rapidfuzz_brute_force():
    """Thousands of candidates (several reorders, long posting lists) against the exact all-pairs maxima."""
    texts = _workload(21, 3000, 30, 45)
    pool = RougePool()
    keep = pool.filter(texts)
    sizes, size = [], 0
    for k in keep:
        sizes.append(size)
        size += k
    best = max_scores(texts, pool.texts, prefix_lengths=sizes)
    assert keep == [b < 0.7 for b in best]
    assert 300 < keep.count(False) < 2700


# ---------------------------------------------------------------- max_scores

def test_max_scores_against_brute_force():
    texts = _workload(31, 80, 6, 30)
    against = _workload(32, 60, 6, 30)
    got = max_scores(texts, against, workers=2)
    assert got == [max((_ref_score(t, p) for p in against), default=0.0) for t in texts]
    limits = [i % 61 for i in range(len(texts))]
    got = max_scores(texts, against, prefix_lengths=limits)
    assert got == [max((_ref_score(t, p) for p in against[:n]), default=0.0) for t, n in zip(texts, limits)]
    assert max_scores(texts[:3], []) == [0.0, 0.0, 0.0] and max_scores([], against) == []


# ---------------------------------------------------------------- the benchmark

@pytest.mark.skipif(not GSM8K.exists(), reason="needs ../shared/data/gsm8k")
def test_benchmark_small_run(tmp_path):
    out = tmp_path / "bench.json"
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "rouge_dedup.py"), "--pool", "2000",
                        "--reference-sample", "12", "--full-check", "--json", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "decisions on the reference sample: identical" in p.stdout
    assert "full check vs rapidfuzz brute force: identical" in p.stdout
    r = json.loads(out.read_text())
    assert r["identical"] and r["candidates"] == 2000 and r["reference_sample"] == 12
    assert 0 < r["dropped"] < 2000 and r["ours_seconds"] > 0 and r["reference_full_seconds_extrapolated"] > 0
