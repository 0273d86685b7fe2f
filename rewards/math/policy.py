"""The grading policy: the choices where graders disagree, and how they map onto the number rules.

Its own module because both sides need it: the caller validates it and the sympy workers
(``rewards.math.compare``) rebuild it from a plain dict.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from rewards.math.num import NumPolicy


@dataclass(frozen=True)
class Policy:
    """Choices where graders disagree; the defaults are what a GRPO reward should use."""

    percent: str = "either"  # "either": 50\% matches 50 and 0.5; "strict": only 0.5; "ignore": only 50
    precision: str = "exact"  # "exact": values must be equal; "rounded": a rounded decimal also matches
    min_sig_exact: int = 4  # "rounded": sig. digits a rounded pred needs against an exact gold (600/7 ~ 85.71)
    min_sig_rounded: int = 2  # "rounded": sig. digits the coarser side needs when both are decimals
    unreduced_fractions: bool = True  # False: \frac{2}{4} is not accepted for 1/2 (PRM800K policy)
    ordered_lists: bool = False  # True: a bare list "1, 2" must keep the gold's order (Hendrycks)
    set_relation: bool = True  # an interval/set and an inequality describing it match, both ways
    degrees: bool = True  # 30^\circ also matches \pi/6 (angle in radians)
    text_containment: bool = False  # a short word answer starting like a sentence gold matches it
    numeric_check: bool = True  # expressions with free variables: random-point check after simplify

    def num_policy(self) -> NumPolicy:
        return NumPolicy(self.percent, self.precision == "rounded", self.min_sig_exact, self.min_sig_rounded)


POLICY_FIELDS = frozenset(f.name for f in fields(Policy))


def make_policy(kw: dict) -> Policy:
    """The policy for user keyword arguments, refusing unknown options and values."""
    unknown = set(kw) - POLICY_FIELDS
    if unknown:
        raise TypeError(f"unknown math policy option(s) {sorted(unknown)}; choose from {sorted(POLICY_FIELDS)}")
    p = Policy(**kw)
    if p.percent not in ("either", "strict", "ignore"):
        raise ValueError(f"percent must be 'either', 'strict' or 'ignore', got {p.percent!r}")
    if p.precision not in ("exact", "rounded"):
        raise ValueError(f"precision must be 'exact' or 'rounded', got {p.precision!r}")
    return p
