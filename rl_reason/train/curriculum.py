"""What the trainer remembers about its prompts, and where extra prompts come from.

``PassRateMemory``: each prompt's verifier pass rate in its last ``window`` appearances, across epochs.
The difficulty curriculum skips a prompt whose window is full and all 1.0 (solved every time) or all 0.0
(never solved): its group would have no spread, so generating it buys nothing. A skipped prompt is still
taken with probability ``floor``, decided by a hash of (seed, prompt, how often it was considered), so
the decision is the same on every rank, needs no shared random state, and replays exactly on resume.

``PromptStream``: an endless sequence of shuffled passes over the training set, the same on every rank.
Dynamic sampling's extra rounds and the curriculum's replacements draw from it; its position is saved.

Both are updated only from gathered (global) data, so every rank holds the same copy, and both go into
every checkpoint (``state_dict``), so a resumed run continues them exactly.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import torch


def prompt_key(prompt) -> str:
    """A prompt's identity: its text or messages, hashed (dataset ids are optional and not always unique)."""
    text = prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, ensure_ascii=False)
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def _uniform(*parts) -> float:
    """A number in [0, 1) fixed by ``parts``."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class PassRateMemory:
    def __init__(self, window: int, floor: float = 0.1, seed: int = 0):
        self.window, self.floor, self.seed = window, floor, seed
        self.rates: dict[str, list[float]] = {}  # the last ``window`` group pass rates, oldest first
        self.considered: Counter[str] = Counter()  # times the curriculum looked at the prompt
        # Kept as the rates change, so the pool's distribution costs nothing per step on a large pool.
        self._kind: dict[str, str] = {}
        self._kinds: Counter[str] = Counter()
        self._latest_sum = 0.0

    def record(self, key: str, pass_rate: float | None) -> None:
        """One appearance's pass rate (None: no verifier judged any completion; not recorded)."""
        if pass_rate is None:
            return
        rates = self.rates.setdefault(key, [])
        self._latest_sum += float(pass_rate) - (rates[-1] if rates else 0.0)
        rates.append(float(pass_rate))
        del rates[:-self.window]
        self._classify(key)

    def _classify(self, key: str) -> None:
        kind = "in_between"
        if self.saturated(key):
            kind = "always_solved" if self.rates[key][-1] == 1.0 else "never_solved"
        old = self._kind.get(key)
        if old != kind:
            if old:
                self._kinds[old] -= 1
            self._kinds[kind] += 1
            self._kind[key] = kind

    def saturated(self, key: str) -> bool:
        """Solved every time, or never, in a full window."""
        rates = self.rates.get(key, [])
        return len(rates) == self.window and (all(r == 1.0 for r in rates) or all(r == 0.0 for r in rates))

    def take(self, key: str) -> bool:
        """Whether the curriculum takes the prompt now; counts the look, so a second look can differ."""
        n = self.considered[key]
        self.considered[key] += 1
        return not self.saturated(key) or _uniform(self.seed, key, n) < self.floor

    def pool_stats(self, pool_size: int) -> dict[str, float]:
        """The pass-rate distribution of the prompt pool: shares of ``pool_size`` prompts never seen, solved
        every time / never in a full window, in between, and the mean latest pass rate of those seen."""
        seen = len(self.rates)
        pool = max(pool_size, seen, 1)
        return {
            "pool/unseen": (pool - seen) / pool,
            **{f"pool/{kind}": self._kinds[kind] / pool for kind in ("always_solved", "never_solved", "in_between")},
            "pool/mean_pass_rate": self._latest_sum / seen if seen else 0.0,
        }

    def state_dict(self) -> dict:
        return {"window": self.window, "floor": self.floor, "seed": self.seed, "rates": self.rates,
                "considered": dict(self.considered), "latest_sum": self._latest_sum}

    def load_state_dict(self, state: dict) -> None:
        # The recipe's window and floor win: a resumed run may change them; the history stays.
        self.rates = {k: list(v)[-self.window:] for k, v in state["rates"].items()}
        self.considered = Counter(state["considered"])
        self._kind, self._kinds = {}, Counter()
        # Restored, not re-added: a float sum in another order could differ in its last bit.
        self._latest_sum = state.get("latest_sum", sum(r[-1] for r in self.rates.values()))
        for key in self.rates:
            self._classify(key)


class PromptStream:
    """Dataset indices: pass p is ``randperm(n)`` seeded by (seed, p); ``drawn`` counts indices handed out."""

    def __init__(self, size: int, seed: int = 0):
        if size < 1:
            raise ValueError("the training set is empty")
        self.size, self.seed, self.drawn = size, seed, 0
        self._pass, self._order = -1, None

    def _permutation(self, p: int) -> list[int]:
        if p != self._pass:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + p)
            self._pass, self._order = p, torch.randperm(self.size, generator=generator).tolist()
        return self._order

    def take(self, k: int) -> list[int]:
        out = []
        for _ in range(k):
            p, i = divmod(self.drawn, self.size)
            out.append(self._permutation(p)[i])
            self.drawn += 1
        return out

    def state_dict(self) -> dict:
        return {"size": self.size, "seed": self.seed, "drawn": self.drawn}

    def load_state_dict(self, state: dict) -> None:
        self.drawn = int(state["drawn"])
