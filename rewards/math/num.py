"""Plain numbers without sympy: the fast path for the common case (integer golds in RL) and the
precision-aware comparison that the sympy path also uses for its numeric leaves.

Values are exact ``Fraction``s. A decimal literal remembers how many decimals it was written
with, because "21.93" is a rounded number while "21" and "\\frac{307}{14}" are exact: tolerance
comes only from the precision a side states, never from a global epsilon (a fixed absolute
tolerance is what makes Math-Verify accept 0.0000001 = 0.0000002, notes §1.9).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

MAX_DIGITS = 400  # longer digit strings are left to the guarded sympy path


@dataclass(frozen=True)
class Num:
    value: Fraction
    decimals: int | None = None  # digits after the point as written; None = exact
    percent: bool = False

    @property
    def sig_digits(self) -> int:
        """Significant digits a rounded decimal states (for "85.71": 4)."""
        scaled = abs(self.value) * 10 ** (self.decimals or 0)
        return len(str(int(scaled)).lstrip("0"))


_NUM_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_THOUSANDS_RE = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_FRAC_RE = re.compile(r"([+-]?)\\[dtc]?frac\{([+-]?\d+)\}\{([+-]?\d+)\}")
_SLASH_RE = re.compile(r"([+-]?\d+)/(\d+)")
_SCI_RE = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(?:\\times|\\cdot|\*|x|×)\s*10\^\{?([+-]?\d+)\}?")
# Decorations that never change a number's value.
_STRIP_RE = re.compile(r"\\\$|\\[,;:!]|\\quad|\\ |\$|\\left|\\right|\\displaystyle|\{,\}(?=\d{3}(?!\d))")
_CIRC_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°")


def parse_decimal(s: str) -> Num | None:
    """A plain decimal literal ("-12", "3.50", ".5", "1e-3") as an exact Num."""
    if len(s) > MAX_DIGITS or not _NUM_RE.fullmatch(s):
        return None
    mant, _, exp = s.lower().partition("e")
    sign = -1 if mant.startswith("-") else 1
    mant = mant.lstrip("+-")
    whole, _, frac = mant.partition(".")
    value = Fraction(int(whole or "0") * 10 ** len(frac) + int(frac or "0"), 10 ** len(frac)) * sign
    decimals = len(frac) if frac else None
    if exp:
        e = int(exp)
        if abs(e) > 300:
            return None
        value *= Fraction(10) ** e
        decimals = None if decimals is None and e >= 0 else max(0, (decimals or 0) - e)
    return Num(value, decimals)


def parse_number(s: str) -> Num | None:
    """A number in the forms a fast path can trust: integers, decimals, thousands separators,
    ``\\frac{a}{b}``/``a/b`` of integers, scientific notation, a trailing ``\\%``. Anything
    else (units, letters, lists) gives None and goes to the full parser."""
    s = _STRIP_RE.sub("", s).strip()
    s = re.sub(r"\\text\{\s*\}", "", s)
    s = s.rstrip(".").strip() if not s.endswith("..") else s
    percent = False
    for suffix in ("\\%", "%"):
        if s.endswith(suffix):
            s, percent = s[: -len(suffix)].strip(), True
    if "," not in s:  # "1 000" is a number, "32, 349" is a pair
        s = s.replace(" ", "")
    if not s or len(s) > MAX_DIGITS:
        return None
    num = parse_decimal(s)
    if num is None and _THOUSANDS_RE.fullmatch(s):
        num = parse_decimal(s.replace(",", ""))
    if num is None:
        m = _FRAC_RE.fullmatch(s) or _SLASH_RE.fullmatch(s)
        if m:
            groups = m.groups()
            sign = -1 if len(groups) == 3 and groups[0] == "-" else 1
            a, b = int(groups[-2]), int(groups[-1])
            if b == 0:
                return None
            num = Num(Fraction(a, b) * sign)
    if num is None:
        m = _SCI_RE.fullmatch(s)
        if m and abs(int(m.group(2))) <= 300:
            base = parse_decimal(m.group(1))
            if base is not None:
                e = int(m.group(2))
                dec = None if base.decimals is None and e >= 0 else max(0, (base.decimals or 0) - e)
                num = Num(base.value * Fraction(10) ** e, dec)
    if num is None:
        return None
    return Num(num.value, num.decimals, percent) if percent else num


def _round(x: Fraction, places: int, mode: str) -> Fraction:
    q = Fraction(10) ** places
    y = abs(x) * q
    n = int(y) if mode == "trunc" else int(y + Fraction(1, 2))
    return Fraction(n, 1) / q * (1 if x >= 0 else -1)


@dataclass(frozen=True)
class NumPolicy:
    percent: str = "either"  # "either": x% may mean x or x/100; "strict": only x/100; "ignore": only x
    rounding: bool = False  # a side written with fewer decimals matches the other rounded/truncated to them
    min_sig_exact: int = 4  # significant digits a rounded pred needs against an exact gold
    min_sig_rounded: int = 2  # ... and the coarser side needs when both are rounded decimals


def _candidates(n: Num, policy: NumPolicy) -> list[Num]:
    if not n.percent or policy.percent == "ignore":
        return [Num(n.value, n.decimals)]
    scaled = Num(n.value / 100, None if n.decimals is None else n.decimals + 2)
    if policy.percent == "strict" or abs(n.value) < 1:
        # "either" reads 25% as 25 too, but a bare number under 1 is a fraction: 0.25% is not 0.25
        return [scaled]
    return [Num(n.value, n.decimals), scaled]


def _close(gold: Num, pred: Num, policy: NumPolicy) -> bool:
    if gold.value == pred.value:
        return True
    gd, pd = gold.decimals, pred.decimals
    if not policy.rounding:
        # the reference's own rounding: an exact answer (20/3, sqrt(2)-1) that a decimal gold with
        # >= 3 significant digits rounds to (6.67, 41.4%) is right; a decimal answer is never
        # rounded to fit, so 0.13 is not 0.125 and 0.6667 is not 2/3; truncation is not rounding
        # (17/12 = 1.4166... is not 1.41)
        if gd and pd is None and gold.sig_digits >= 3:
            return _round(pred.value, gd, "round") == gold.value
        return False
    if gd is None and gold.value.denominator == 1:
        return False  # an integer gold is exact: 9.999999999999999 is not 10
    if pd is None and gd is not None and gd >= 2 and pred.value.denominator == 1:
        coarse, fine, need = pred, gold, 3
    elif pd is not None and (gd is None or pd < gd):
        coarse, fine, need = pred, gold, policy.min_sig_exact if gd is None else policy.min_sig_rounded
    elif gd is not None and (pd is None or gd < pd):
        coarse, fine, need = gold, pred, policy.min_sig_rounded
    else:
        return False  # same stated precision, or both exact: the values must be equal
    if coarse.decimals is None:
        # an integer written against a value with >= 2 decimals (118 for 117.95): a rounding
        # only when it states >= 3 digits, so 13 never passes for 12.5
        if fine.decimals is None or fine.decimals < 2 or len(str(abs(coarse.value.numerator))) < 3:
            return False
        return _round(fine.value, 0, "round") == coarse.value
    if coarse.decimals == 0 or coarse.sig_digits < need:
        return False
    return any(_round(fine.value, coarse.decimals, m) == coarse.value for m in ("round", "trunc"))


def numbers_equal(gold: Num, pred: Num, policy: NumPolicy = NumPolicy()) -> bool:
    if gold.percent and pred.percent:
        # both in percent: 25% is not 0.25% ("either" reads one side's sign, never both differently)
        return _close(Num(gold.value, gold.decimals), Num(pred.value, pred.decimals), policy)
    return any(_close(g, p, policy) for g in _candidates(gold, policy) for p in _candidates(pred, policy))
