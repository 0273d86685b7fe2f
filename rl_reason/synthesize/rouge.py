"""Self-Instruct's ROUGE-L near-duplicate filter, exact and fast.

Self-Instruct (``bootstrap_instructions.py``) keeps a generated instruction only when its ROUGE-L
F-measure against every instruction already in the pool is low: it scores the candidate against the
whole pool with ``RougeScorer(["rougeL"], use_stemmer=False).score(candidate, item).fmeasure`` (spread
over a multiprocessing pool) and drops the candidate when the maximum is too high.

Contract of this module:

* Scores are rouge_score's own, bit for bit: tokens come from rouge_score's tokenizer
  (:func:`rouge_tokens`), and :func:`rouge_l` evaluates ``_score_lcs``'s float formula on an LCS
  length that rapidfuzz computes (the LCS length is an integer, so only the formula matters).
* The rule: a candidate is a *near-copy* when some pool item scores ``>= threshold`` (default 0.7);
  a score exactly equal to the threshold is a near-copy.  Self-Instruct's code drops only
  ``max > 0.7``; we treat the tie as a copy on purpose (a stricter filter by exactly the tie
  cases).  Ties are decided on rouge_score's float, so "exactly 0.7" means what rouge_score returns.
* :class:`RougePool` makes the same keep/drop decisions as scoring the candidate against every pool
  item, but only scores the few pool items that could reach the threshold (see below).
  :meth:`RougePool.filter` is the sequential reference exactly: a text kept earlier in the same
  call is in the pool for the later ones.
* A text with no tokens (empty, punctuation only, non-ASCII letters only: rouge_score keeps only
  ``[a-z0-9]+`` after lowercasing) scores 0 against anything, so it is never a near-copy, nor does it
  make anything else one.  :meth:`RougePool.offer` therefore keeps it; drop short texts before.
* ``threshold`` must lie in (0, 1].

How the pool avoids brute force.  Each distinct token becomes one unicode character, so a text is a
short ``str`` and rapidfuzz's C++ LCS runs on it.  With ``F = 2·LCS/(la+lb) >= θ``:

* ``lb`` lies in ``[θ/(2-θ)·la, (2-θ)/θ·la]`` (the length filter), and
* the bag (multiset) overlap of the token lists is at least ``LCS >= t(l) = ceil(θ·l/(2-θ))`` for either
  side's length ``l``.  Treating a bag as a set of units (token, occurrence number) under one fixed
  total order, two bags overlapping in ``>= t`` units share at least ``min(ℓ, t)`` units of their first
  ``len - t + ℓ`` units (the ℓ-prefix filter; ℓ = 1 is classic prefix filtering).  So each pool item
  is indexed by its first ``lb - t(lb) + ℓ`` units, a candidate probes the index with its first
  ``la - t(la) + ℓ`` units, and only pool items met at least ``min(ℓ, t(la))`` times (and passing
  the length filter) are scored.  ℓ = 5 measured fastest on GSM8K-like problems.

Those bounds use ``θ' = θ·(1 - 1e-6)``, a margin far above float rounding, so no pool item whose
rouge_score float reaches θ is ever skipped; the surviving pairs are then decided with the exact
float formula.  The unit order only affects speed: rare tokens first keeps prefixes selective.  The
order is rebuilt from the pool's token frequencies (and everything re-indexed under it) each time
the pool doubles; tokens first seen since then sort first (they are rare in the pool so far).
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import chain

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq
from rouge_score import tokenizers

__all__ = ["RougePool", "max_scores", "rouge_l", "rouge_tokens"]

# The tokenizer RougeScorer(["rougeL"], use_stemmer=False) builds for itself.
_TOKENIZER = tokenizers.DefaultTokenizer(use_stemmer=False)

# Token ids become code points; surrogates are skipped so every mapped str is well-formed.
_SURROGATES = 0xD800
_MAX_TOKENS = 0x110000 - 0x800
# A unit (token character c, occurrence k) is the int (df << 43) | ((_INV - ord(c)) << 22) | k: unique, and
# sorting units sorts them by df (pool texts holding >= k copies of c, at the last reorder), rarest first,
# then later-seen tokens first.
_INV = (1 << 21) - 1  # > every code point
_MAX_OCC = (1 << 22) - 1
_DF_CAP = (1 << 20) - 1
# ℓ of the ℓ-prefix filter: a pair must share min(ℓ, t) units of their (len - t + ℓ)-prefixes.
_ELL = 5
# Relative safety margin on θ for the candidate bounds (float error is ~1e-15 relative).
_MARGIN = 1e-6
# Re-derive the unit order when the pool reaches this size, then at every doubling.
_FIRST_REORDER = 64


def rouge_tokens(text: str) -> list[str]:
    """rouge_score's tokens for ``text``, as ``RougeScorer(["rougeL"], use_stemmer=False)`` sees them."""
    return _TOKENIZER.tokenize(text)


def _fmeasure(lcs: int, n_target: int, n_prediction: int) -> float:
    """rouge_score's ``_score_lcs`` + ``scoring.fmeasure``, operation for operation (so bit-identical)."""
    if not n_target or not n_prediction:
        return 0.0
    precision = lcs / n_prediction
    recall = lcs / n_target
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def _char(token_id: int) -> str:
    if token_id >= _MAX_TOKENS:
        raise ValueError(f"more than {_MAX_TOKENS} distinct tokens: cannot map them to characters")
    return chr(token_id if token_id < _SURROGATES else token_id + 0x800)


def _encode(token_lists: Iterable[Sequence[str]]) -> list[str]:
    """Token lists as strs with one character per distinct token (a fresh, exact mapping)."""
    codes: dict[str, str] = {}
    out = []
    for tokens in token_lists:
        chars = []
        for tok in tokens:
            c = codes.get(tok)
            if c is None:
                c = codes[tok] = _char(len(codes))
            chars.append(c)
        out.append("".join(chars))
    return out


def rouge_l(a: list[str], b: list[str]) -> float:
    """ROUGE-L F-measure of token lists ``a`` (rouge_score's target) and ``b`` (its prediction).

    Bit-identical to ``RougeScorer(["rougeL"]).score(target, prediction)["rougeL"].fmeasure`` on the
    texts these tokens came from; the value is symmetric in ``a`` and ``b``.
    """
    if not a or not b:
        return 0.0
    sa, sb = _encode((a, b))
    return _fmeasure(LCSseq.similarity(sa, sb), len(a), len(b))


def max_scores(texts: Sequence[str], against: Sequence[str], workers: int = 1,
               prefix_lengths: Sequence[int] | None = None) -> list[float]:
    """The exact maximum ROUGE-L F of each text against all of ``against`` (0.0 against nothing).

    Brute force (rapidfuzz ``cdist``), meant for samples, e.g. a diversity metric, or for auditing a
    filter run: with ``prefix_lengths``, text ``i`` is scored only against ``against[:prefix_lengths[i]]``
    (the pool as it stood when text ``i`` was offered).  ``workers`` goes to ``cdist`` (-1: all cores).
    """
    if prefix_lengths is None:
        prefix_lengths = [len(against)] * len(texts)
    elif len(prefix_lengths) != len(texts):
        raise ValueError("prefix_lengths must have one entry per text")
    out = [0.0] * len(texts)
    if not against or not texts:
        return out
    encoded = _encode([rouge_tokens(t) for t in texts] + [rouge_tokens(t) for t in against])
    rows, cols = encoded[: len(texts)], encoded[len(texts):]
    n_target = np.array([len(s) for s in rows], dtype=np.float64)
    n_pred = np.array([len(s) for s in cols], dtype=np.float64)
    limits = np.minimum(np.asarray(prefix_lengths, dtype=np.int64), len(cols))
    # Bounded memory: blocks of rows of about 4M matrix cells.
    step = max(1, (1 << 22) // len(cols))
    for start in range(0, len(rows), step):
        stop = min(start + step, len(rows))
        width = int(limits[start:stop].max())
        if width <= 0:
            continue
        lcs = process.cdist(rows[start:stop], cols[:width], scorer=LCSseq.similarity, dtype=np.int32,
                            workers=workers).astype(np.float64)
        nt, npred = n_target[start:stop, None], n_pred[None, :width]
        # The same IEEE operations in the same order as _fmeasure, so the same floats.
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = lcs / npred
            recall = lcs / nt
            f = 2 * precision * recall / (precision + recall)
        valid = (nt > 0) & (npred > 0) & (precision + recall > 0)
        valid &= np.arange(width)[None, :] < limits[start:stop, None]
        best = np.where(valid, f, 0.0).max(axis=1)
        out[start:stop] = [float(x) for x in best]
    return out


class RougePool:
    """A pool of texts that admits a candidate only if no member is a ROUGE-L near-copy of it.

    ``near_copy``/``offer``/``filter`` decide exactly as scoring the candidate with rouge_score
    against every member and comparing the maximum with ``threshold`` (``>=`` is a near-copy).
    ``pairs_scored`` counts the LCS computations made so far (a diagnostic).
    """

    def __init__(self, threshold: float = 0.7):
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
        self._threshold = float(threshold)
        self._theta = self._threshold * (1 - _MARGIN)  # θ' for the (conservative) candidate bounds
        self._texts: list[str] = []
        self._strs: list[str] = []  # encoded texts
        self._lens = np.zeros(1024, dtype=np.int32)  # their token counts (first len(self) entries)
        self._chars: dict[str, str] = {}  # token -> its character
        # Order statistics from the last reorder: pool texts holding a character, and holding >= k copies.
        self._df1: Counter[str] = Counter()
        self._dfk: Counter[tuple[str, int]] = Counter()
        self._unit_keys: dict[str, list[int]] = {}  # character -> its units for k = 1, 2, ... (a cache)
        self._index: dict[int, array] = {}  # unit -> pool indices (C ints) with that unit in their prefix
        self._exact: dict[str, int] = {}  # encoded text -> a pool index holding it
        self._reorder_at = _FIRST_REORDER
        self.pairs_scored = 0

    @property
    def threshold(self) -> float:
        return self._threshold

    @property
    def texts(self) -> list[str]:
        """The pool's texts in the order they joined (a copy)."""
        return list(self._texts)

    def __len__(self) -> int:
        return len(self._texts)

    # ------------------------------------------------------------------ public operations

    def add(self, text: str) -> None:
        """Add ``text`` unconditionally (e.g. seed problems)."""
        s = self._encode_text(text)
        self._add(text, s, self._sorted_units(s))

    def near_copy(self, text: str) -> tuple[float, int] | None:
        """``(score, index)`` of some pool member scoring ``>= threshold`` against ``text``, else None.

        Which member is reported when several qualify is unspecified (not necessarily the best).
        """
        s = self._encode_text(text)
        return self._near(s, self._sorted_units(s))

    def offer(self, text: str) -> bool:
        """Keep ``text`` (and add it to the pool) iff it is not a near-copy of any member."""
        s = self._encode_text(text)
        units = self._sorted_units(s)
        if self._near(s, units) is not None:
            return False
        self._add(text, s, units)
        return True

    def filter(self, texts: Iterable[str]) -> list[bool]:
        """``offer`` each text in order; returns the keep flags."""
        return [self.offer(t) for t in texts]

    # ------------------------------------------------------------------ internals

    def _encode_text(self, text: str) -> str:
        chars = self._chars
        tokens = rouge_tokens(text)
        try:
            return "".join([chars[tok] for tok in tokens])
        except KeyError:
            for tok in tokens:
                if tok not in chars:
                    chars[tok] = _char(len(chars))
            return "".join([chars[tok] for tok in tokens])

    def _min_overlap(self, n: int) -> int:
        """The fewest common units (and tokens in a partner) a text of ``n`` tokens needs to reach θ'."""
        theta = self._theta
        return math.ceil(theta * n / (2 - theta))  # >= 1: θ' > 0 and n >= 1

    def _keys(self, c: str, m: int) -> list[int]:
        """The units (c, 1..m), extending the cache; a key depends only on the last reorder's counts."""
        keys = self._unit_keys.setdefault(c, [])
        inv = (_INV - ord(c)) << 22
        for k in range(len(keys) + 1, m + 1):
            df = self._df1[c] if k == 1 else self._dfk[c, k]
            keys.append((min(df, _DF_CAP) << 43) | inv | k)
        return keys

    def _sorted_units(self, s: str) -> list[int]:
        if len(s) > _MAX_OCC:
            raise ValueError(f"text too long for the index ({len(s)} tokens)")
        cache = self._unit_keys
        units: list[int] = []
        for c, m in Counter(s).items():
            keys = cache.get(c)
            if keys is None or len(keys) < m:
                keys = self._keys(c, m)
            units += keys[:m]
        units.sort()
        return units

    def _index_text(self, j: int, s: str, units: list[int]) -> None:
        n = len(s)
        if n == 0:
            return  # scores 0 against everything: never a near-copy of anything
        index = self._index
        for u in units[: n - self._min_overlap(n) + _ELL]:
            bucket = index.get(u)
            if bucket is None:
                index[u] = array("i", (j,))
            else:
                bucket.append(j)
        self._exact.setdefault(s, j)

    def _add(self, text: str, s: str, units: list[int]) -> None:
        j = len(self._texts)
        self._texts.append(text)
        self._strs.append(s)
        if j == len(self._lens):
            self._lens = np.concatenate([self._lens, np.zeros_like(self._lens)])
        self._lens[j] = len(s)
        if j + 1 >= self._reorder_at:
            self._reorder()
        else:
            self._index_text(j, s, units)

    def _reorder(self) -> None:
        """Re-derive the unit order from the pool's token counts and re-index every member under it."""
        strs = self._strs
        self._df1 = Counter(chain.from_iterable(map(set, strs)))
        dfk: Counter[tuple[str, int]] = Counter()
        for s in strs:
            for c, m in Counter(s).items():
                for k in range(2, m + 1):
                    dfk[c, k] += 1
        self._dfk = dfk
        self._unit_keys = {}
        self._index = {}
        self._exact = {}
        for j, s in enumerate(strs):
            self._index_text(j, s, self._sorted_units(s))
        self._reorder_at = 2 * len(strs)

    def _near(self, s: str, units: list[int]) -> tuple[float, int] | None:
        la = len(s)
        if la == 0:
            return None
        j = self._exact.get(s)
        if j is not None:
            return _fmeasure(la, la, la), j
        theta = self._theta
        t = self._min_overlap(la)
        lo, hi = t, math.floor((2 - theta) * la / theta)  # partner lengths that can reach θ'
        # A partner reaching θ' shares >= min(ℓ, max(t_x, t_y)) >= min(ℓ, t_x) units of the two prefixes.
        need = min(_ELL, t)
        index = self._index
        buckets = [b for b in map(index.get, units[: la - t + _ELL]) if b is not None]
        if not buckets:
            return None
        shared = np.bincount(np.frombuffer(b"".join(buckets), dtype=np.intc))
        cand = np.flatnonzero(shared >= need)
        lens = self._lens[cand]
        fits = (lens >= lo) & (lens <= hi)
        cand, lb = cand[fits], lens[fits].astype(np.int64)
        if not cand.size:
            return None
        self.pairs_scored += int(cand.size)
        js = cand.tolist()
        # One C++ call for all surviving pairs; keep those whose LCS could reach θ', then decide with
        # rouge_score's float formula (the candidate is its target, the pool item its prediction: Self-Instruct's
        # order; the value is symmetric anyway).
        strs = self._strs
        lcs = process.cdist([s], [strs[j] for j in js], scorer=LCSseq.similarity, dtype=np.int32)[0]
        for h in np.flatnonzero(2 * lcs >= theta * (la + lb)).tolist():
            f = _fmeasure(int(lcs[h]), la, int(lb[h]))
            if f >= self._threshold:
                return f, js[h]
        return None
