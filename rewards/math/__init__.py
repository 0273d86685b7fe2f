"""Math answer checking for rewards and evaluation: extraction, equivalence, the TRL reward.

Public API::

    extract_answer(text, fallbacks=False, hedge="reject") -> str | None
    check(gold, pred, timeout=2.0, **policy) -> Verdict        # equal / not_equal / unknown(reason)
    is_equivalent(gold, pred, timeout=2.0, **policy) -> bool
    check_batch(pairs, timeout=2.0, workers=None, **policy) -> list[Verdict]
    start_workers(workers=None) -> bool                         # optional: pre-start the pool
    accuracy_reward(prompts, completions, answer=None, solution=None, **kwargs) -> list[float | None]

Plain numbers are decided here without sympy (and without starting any process). Everything
else is parsed by our own recursive-descent parser (``parse``, no ``eval``) and compared
with sympy (``compare``) inside worker processes that are killed at a hard deadline
(``pool``). Policies where graders disagree are the keyword arguments of ``Policy`` (``policy``).
"""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from math import gcd

from rewards.text import completion_text
from rewards.math.extract import ALL_FALLBACKS, extract_answer, extract_answers
from rewards.math.num import numbers_equal, parse_number
from rewards.math.policy import Policy, make_policy

__all__ = [
    "Policy",
    "Verdict",
    "accuracy_reward",
    "check",
    "check_batch",
    "extract_answer",
    "extract_answers",
    "gold_answer",
    "is_equivalent",
    "make_accuracy_reward",
    "start_workers",
    "ALL_FALLBACKS",
]

DEFAULT_TIMEOUT = 2.0
MAX_INPUT = 2_000  # characters of an answer; longer answers are not answers (a size cap before parsing)
_WORKER_FN = "rewards.math.compare:check_pair"


@dataclass(frozen=True)
class Verdict:
    """Three-way result: ``status`` is "equal", "not_equal" or "unknown"; ``reason`` says why
    for unknown ("gold unparseable", "timeout", ...) and for some not_equal ("no answer")."""

    status: str
    reason: str | None = None

    @property
    def equal(self) -> bool:
        return self.status == "equal"

    def __bool__(self) -> bool:
        return self.equal


EQUAL = Verdict("equal")
NOT_EQUAL = Verdict("not_equal")


_UNREDUCED_RE = re.compile(r"\\[dtc]?frac\s*\{\s*(-?\d+)\s*\}\s*\{\s*(-?\d+)\s*\}|(?<![\d.])(\d+)\s*/\s*(\d+)(?![\d.])")


def _unreduced(s: str) -> bool:
    for m in _UNREDUCED_RE.finditer(s):
        a, b = (m.group(1), m.group(2)) if m.group(1) is not None else (m.group(3), m.group(4))
        a, b = abs(int(a)), abs(int(b))
        if b == 1 or (b and gcd(a, b) > 1):
            return True
    return False


def _quick(gold, pred, policy: Policy) -> Verdict | None:
    """The verdict when no sympy is needed, else None."""
    if not isinstance(gold, str) or not gold.strip() or len(gold) > MAX_INPUT:
        return Verdict("unknown", "gold unparseable")
    if not isinstance(pred, str) or not pred.strip():
        return Verdict("not_equal", "no answer")
    if len(pred) > MAX_INPUT:
        return Verdict("not_equal", "answer too long")
    if not policy.unreduced_fractions and _unreduced(pred) and not _unreduced(gold):
        return Verdict("not_equal", "unreduced fraction")
    g = parse_number(gold)
    if g is None:
        return None
    p = parse_number(pred)
    if p is not None:
        return EQUAL if numbers_equal(g, p, policy.num_policy()) else NOT_EQUAL
    return None


class _LRU:
    def __init__(self, size: int):
        self.size, self.data, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self.lock:
            v = self.data.get(key)
            if v is not None:
                self.data.move_to_end(key)
            return v

    def put(self, key, value) -> None:
        with self.lock:
            self.data[key] = value
            self.data.move_to_end(key)
            while len(self.data) > self.size:
                self.data.popitem(last=False)


_CACHE = _LRU(65_536)
_STATS = {"timeouts": 0, "pool_tasks": 0}


def check_batch(pairs, timeout: float = DEFAULT_TIMEOUT, workers: int | None = None, **policy) -> list[Verdict]:
    """Verdicts for ``[(gold, pred), ...]``; sympy work is spread over a process pool of
    ``workers`` (default min(4, cpus)), each pair under its own hard ``timeout`` in seconds."""
    return _check_batch(pairs, timeout, workers, make_policy(policy))


def _check_batch(pairs, timeout: float, workers: int | None, pol: Policy) -> list[Verdict]:
    pairs = list(pairs)
    out: list[Verdict | None] = [None] * len(pairs)
    todo: dict[tuple, list[int]] = {}
    for i, (gold, pred) in enumerate(pairs):
        gold = str(gold) if isinstance(gold, (int, float)) and not isinstance(gold, bool) else gold
        pred = str(pred) if isinstance(pred, (int, float)) and not isinstance(pred, bool) else pred
        v = _quick(gold, pred, pol)
        if v is None:
            key = (gold.strip(), pred.strip(), pol)
            v = _CACHE.get(key)
            if v is None:
                todo.setdefault(key, []).append(i)
                continue
        out[i] = v
    if todo:
        from rewards.math.pool import get_pool

        keys = list(todo)
        pool = get_pool(_WORKER_FN, workers)
        pol_dict = asdict(pol)
        answers = pool.run([(k[0], k[1], pol_dict) for k in keys], timeout=timeout)
        _STATS["pool_tasks"] += len(keys)
        for key, (tag, value) in zip(keys, answers):
            if tag == "ok":
                v = Verdict(*value)
            elif tag == "timeout":
                v = Verdict("unknown", "timeout")
                _STATS["timeouts"] += 1
            else:
                v = Verdict("unknown", f"error: {value}")
            if v.status != "unknown" or v.reason == "gold unparseable":
                _CACHE.put(key, v)
            for i in todo[key]:
                out[i] = v
    return out  # type: ignore[return-value]


def start_workers(workers: int | None = None, timeout: float = 60.0) -> bool:
    """Start the sympy worker pool now (it is otherwise created lazily on first need), e.g.
    before a timed loop; True once every worker is ready."""
    from rewards.math.pool import get_pool

    return get_pool(_WORKER_FN, workers).warm(timeout)


def check(gold: str, pred: str, timeout: float = DEFAULT_TIMEOUT, **policy) -> Verdict:
    """Three-way comparison of a reference answer and a predicted answer (both already extracted)."""
    return check_batch([(gold, pred)], timeout=timeout, **policy)[0]


def is_equivalent(gold: str, pred: str, timeout: float = DEFAULT_TIMEOUT, **policy) -> bool:
    """True only when ``pred`` is shown equal to ``gold``; unknown (timeout, unparseable) is False."""
    return check(gold, pred, timeout=timeout, **policy).equal


def gold_answer(reference, from_solution: bool = False) -> str | None:
    """The answer inside a dataset's reference: a full solution text gets its final answer
    extracted (all fallbacks allowed: the reference is trusted); a short answer is kept."""
    if reference is None:
        return None
    ref = str(reference).strip()
    if not ref:
        return None
    if from_solution or "\\boxed" in ref or "\\fbox" in ref or "####" in ref or "<answer>" in ref or "\n" in ref:
        found = extract_answer(ref, fallbacks=True, strict=False)
        if found is not None or from_solution:
            return found
    return ref


@dataclass(frozen=True)
class _Options:
    """What ``make_accuracy_reward`` binds: a plain value, so the reward pickles as a partial."""

    timeout: float = DEFAULT_TIMEOUT
    fallbacks: object = False
    hedge: str = "reject"
    timeout_reward: float | None = 0.0
    workers: int | None = None
    policy: Policy = Policy()


def make_accuracy_reward(
    timeout: float = DEFAULT_TIMEOUT,
    fallbacks=False,
    hedge: str = "reject",
    timeout_reward: float | None = 0.0,
    workers: int | None = None,
    **policy,
):
    """A TRL reward: 1.0 when the completion's final answer equals the reference, 0.0 when not,
    None when the reference cannot be parsed. A timeout scores ``timeout_reward`` (0.0: a
    pathological answer is not rewarded; None drops the sample from the advantage).
    ``fallbacks`` (off: only \\boxed{} and <answer> count), ``hedge`` and ``workers`` (sympy
    processes, default min(4, cpus)) as in ``extract_answer``/``check_batch``; ``policy`` as in
    ``Policy``."""
    pol = make_policy(policy)
    extract_answer("", hedge=hedge)  # validates the option now, not on the first training step
    options = _Options(timeout, fallbacks, hedge, timeout_reward, workers, pol)
    return functools.partial(accuracy_reward, _options=options)


# The options travel as one underscored keyword: TRL passes every dataset column as a keyword too,
# and a column named like an option ("precision", "timeout") must not reach it.
def accuracy_reward(prompts=None, completions=None, answer=None, solution=None, *, _options: _Options = _Options(),
                    **kwargs) -> list[float | None]:
    """The TRL reward with the default options (see ``make_accuracy_reward``)."""
    opt = _options
    if completions is None:
        raise TypeError("accuracy_reward needs completions")
    if answer is None and solution is None:
        raise ValueError("accuracy_reward needs an 'answer' (or 'solution') column in the dataset")
    refs = answer if answer is not None else solution
    if len(refs) != len(completions):
        raise ValueError(f"{len(completions)} completions but {len(refs)} references")
    golds = [gold_answer(r, from_solution=answer is None) for r in refs]
    # every distinct final answer a completion boxes must equal the gold: \boxed{2\sqrt2} ...
    # \boxed{\sqrt8} is one answer, \boxed{3} ... \boxed{5} a hedge
    cands = [extract_answers(completion_text(c), fallbacks=opt.fallbacks, hedge=opt.hedge) or [None]
             for c in completions]
    # ... and equal to each other: \boxed{7 m} ... \boxed{7 cm} both "equal" a bare 7
    pairs = [[(g, p) for p in ps] + [(ps[-1], p) for p in ps[:-1]] for g, ps in zip(golds, cands)]
    flat = _check_batch([pair for ps in pairs for pair in ps], opt.timeout, opt.workers, opt.policy)
    verdicts, k = [], 0
    for ps in pairs:
        vs, k = flat[k: k + len(ps)], k + len(ps)
        worst = [v for v in vs if v.status == "not_equal"] or [v for v in vs if v.status == "unknown"] or vs
        verdicts.append(worst[0])
    preds = [ps[-1] for ps in cands]
    rewards: list[float | None] = []
    counts = {"unparseable_gold": 0, "no_answer": 0, "timeouts": 0, "errors": 0}
    for g, p, v in zip(golds, preds, verdicts):
        if g is None or v.reason == "gold unparseable":
            counts["unparseable_gold"] += 1
            rewards.append(None)
            continue
        if p is None:
            counts["no_answer"] += 1
        if v.status == "unknown":
            counts["timeouts" if v.reason == "timeout" else "errors"] += 1
            rewards.append(opt.timeout_reward if v.reason == "timeout" else 0.0)
            continue
        rewards.append(1.0 if v.equal else 0.0)
    log_metric = kwargs.get("log_metric")
    if callable(log_metric):
        for name, value in counts.items():
            log_metric(f"math/{name}", float(value))
    return rewards
