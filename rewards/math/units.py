"""Units stated after a value: when both sides state one, they must agree or convert exactly.

``7 kg`` is not ``7 g`` and ``4 days`` is not ``4 weeks``, but ``2 kg`` is ``2000 g``. A unit
on one side only is decoration (``7`` = ``7 kg``). Units without an exact conversion (months,
years, gallons, currencies) only match themselves; words that are not units ("7 stuffed goats")
name what is counted and must not contradict the other side's words.
"""

from __future__ import annotations

from fractions import Fraction

# canonical name: (dimension, factor to the dimension's base unit, or None when not exact)
_BASE = {
    "mm": ("L", Fraction(1, 1000)), "cm": ("L", Fraction(1, 100)), "m": ("L", Fraction(1)), "km": ("L", Fraction(1000)),
    "in": ("L", Fraction(254, 10000)), "ft": ("L", Fraction(3048, 10000)), "yd": ("L", Fraction(9144, 10000)),
    "mi": ("L", Fraction(1609344, 1000)),
    "mg": ("M", Fraction(1, 10**6)), "g": ("M", Fraction(1, 1000)), "kg": ("M", Fraction(1)),
    "lb": ("M", Fraction(45359237, 10**8)), "oz": ("M", Fraction(45359237, 16 * 10**8)),
    "s": ("T", Fraction(1)), "min": ("T", Fraction(60)), "h": ("T", Fraction(3600)), "day": ("T", Fraction(86400)),
    "week": ("T", Fraction(604800)), "month": ("month", Fraction(1)), "year": ("month", Fraction(12)),
    "ml": ({"L": 3}, Fraction(1, 10**6)), "l": ({"L": 3}, Fraction(1, 1000)), "gallon": ("gallon", None),
    "dollar": ("USD", Fraction(1)), "cent": ("USD", Fraction(1, 100)), "euro": ("EUR", Fraction(1)),
    "yuan": ("CNY", Fraction(1)), "yen": ("JPY", Fraction(1)), "rupee": ("INR", Fraction(1)),
}
# SI units by symbol (exact case), as {dimension: power} and a factor to SI base units; any of
# them takes a prefix (kN, mA, MHz, ms, µm). "g" is 1/1000 of the base kilogram.
_SI = {
    "m": ({"L": 1}, Fraction(1)), "g": ({"M": 1}, Fraction(1, 1000)), "s": ({"T": 1}, Fraction(1)),
    "A": ({"I": 1}, Fraction(1)), "Hz": ({"T": -1}, Fraction(1)), "N": ({"M": 1, "L": 1, "T": -2}, Fraction(1)),
    "Pa": ({"M": 1, "L": -1, "T": -2}, Fraction(1)), "J": ({"M": 1, "L": 2, "T": -2}, Fraction(1)),
    "W": ({"M": 1, "L": 2, "T": -3}, Fraction(1)), "Wh": ({"M": 1, "L": 2, "T": -2}, Fraction(3600)),
    "V": ({"M": 1, "L": 2, "T": -3, "I": -1}, Fraction(1)), "L": ({"L": 3}, Fraction(1, 1000)),
    "atm": ({"M": 1, "L": -1, "T": -2}, Fraction(101325)),
}
_PREFIX = {"p": -12, "n": -9, "µ": -6, "μ": -6, "u": -6, "m": -3, "c": -2, "d": -1, "k": 3, "M": 6, "G": 9, "T": 12}
# rates written as one word: mph is miles per hour
_COMPOUND = {"mph": {"mi": 1, "h": -1}, "kmh": {"km": 1, "h": -1}, "mps": {"m": 1, "s": -1}}
_SYNONYMS = {
    "millimeter": "mm", "millimetre": "mm", "centimeter": "cm", "centimetre": "cm", "meter": "m", "metre": "m",
    "kilometer": "km", "kilometre": "km", "inch": "in", "inches": "in", "foot": "ft", "feet": "ft", "yard": "yd",
    "mile": "mi", "milligram": "mg", "gram": "g", "gm": "g", "kilogram": "kg", "kilo": "kg", "pound": "lb",
    "lbs": "lb", "ounce": "oz", "second": "s", "sec": "s", "secs": "s", "minute": "min", "mins": "min",
    "hour": "h", "hr": "h", "hrs": "h", "d": "day", "wk": "week", "yr": "year", "yrs": "year",
    "milliliter": "ml", "millilitre": "ml", "liter": "l", "litre": "l", "dollars": "dollar", "usd": "dollar",
    "cents": "cent", "euros": "euro", "rupees": "rupee", "rs": "rupee", "kph": "kmh", "m2": "m^2", "cm2": "cm^2",
}
_FILLER = {"only", "approximately", "about", "roughly", "exactly", "total", "each", "th", "st", "nd", "rd", "in total",
           "units", "unit", "of", "the", "a", "an", "altogether", "overall"}
_POWER_WORDS = {"square": 2, "sq": 2, "squared": 2, "cubic": 3, "cubed": 3}


def _si(w: str) -> tuple[dict, Fraction] | None:
    """An SI symbol, with or without a prefix, in its exact case (MW is not mW)."""
    if w in _SI:
        return _SI[w]
    if len(w) > 1 and w[0] in _PREFIX and w[1:] in _SI:
        dims, f = _SI[w[1:]]
        return dims, f * Fraction(10) ** _PREFIX[w[0]]
    return None


def _singular(w: str) -> str:
    if w in _SYNONYMS or w in _BASE or w in _COMPOUND:
        return _SYNONYMS.get(w, w)
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", "")):
        if w.endswith(suffix) and len(w) > len(suffix) + 2:
            stem = w[: -len(suffix)] + repl
            if stem in _SYNONYMS or stem in _BASE:
                return _SYNONYMS.get(stem, stem)
            if suffix == "s":
                return stem
    return w


def parse_unit(words: tuple) -> tuple[dict, tuple] | None:
    """Known units as {canonical: power} (negative after "per") and the other words in order;
    None when nothing but filler was stated."""
    known: dict[str, int] = {}
    nouns: list[str] = []
    sign, pending = 1, 1
    last = None
    for raw in words:
        raw = raw.strip()
        # "mW" is not "MW": an SI symbol keeps its case, and so does a short word in mixed case
        if raw not in _BASE and raw not in _SYNONYMS and _si(raw) is not None:
            w = raw
        else:
            w = raw if len(raw) <= 3 and raw not in (raw.lower(), raw.upper(), "mL", "Kg") else raw.lower()
        if not w or w in _FILLER:
            continue
        if w in ("per", "/"):
            sign = -1
            continue
        if w in _POWER_WORDS and w not in ("squared", "cubed"):
            pending = _POWER_WORDS[w]
            continue
        if w.startswith("^") or w in ("squared", "cubed"):
            p = _POWER_WORDS.get(w) or _int(w.lstrip("^{").rstrip("}"))
            if last is not None and p:
                known[last] += sign * (p - 1) * (1 if known[last] * sign > 0 else -1)
            elif p:
                known["unit"] = known.get("unit", 0) + sign * p  # "square units" with no base unit
            continue
        w = _singular(w)
        if w.endswith("^2") or w.endswith("^3"):
            w, pending = w[:-2], int(w[-1])
        if _si(w) is not None and w not in _BASE:
            known[w] = known.get(w, 0) + sign * pending
            last = w
        elif w in _COMPOUND:
            for base, power in _COMPOUND[w].items():
                known[base] = known.get(base, 0) + sign * pending * power
            last = None
        elif w in _BASE:
            known[w] = known.get(w, 0) + sign * pending
            last = w
        else:
            nouns.append(w)
            last = None
        pending = 1
    if pending != 1:
        known["unit"] = known.get("unit", 0) + sign * pending
    if not known and not nouns:
        return None
    return {k: v for k, v in known.items() if v}, tuple(nouns)


def _int(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        return 0


def conversion(gold_words: tuple, pred_words: tuple) -> Fraction | None | bool:
    """How a pred value converts to the gold's unit: ``True`` when the units are the same or
    one side states none, a ``Fraction`` f when pred * f is in the gold's unit, ``False`` when
    the units differ (or cannot be converted exactly)."""
    g, p = parse_unit(gold_words), parse_unit(pred_words)
    if g is None or p is None:
        return True
    (gk, gn), (pk, pn) = g, p
    if gn and pn and gn[-1] != pn[-1]:
        return False  # "7 apples" is not "7 oranges"; "60 lollipop candies" are "60 hard candies"
    if not gk and not pk:
        return True
    if not gk or not pk:
        return False  # "7 kg" against "7 apples"
    if gk == pk:
        return True
    gd, gf = _dims(gk)
    pd, pf = _dims(pk)
    if gd != pd or gf is None or pf is None:
        return False
    return pf / gf


def _dims(known: dict) -> tuple[tuple, Fraction | None]:
    dims: dict[str, int] = {}
    factor: Fraction | None = Fraction(1)
    for name, power in known.items():
        dim, f = _si(name) if name not in _BASE and _si(name) is not None else _BASE.get(name, (name, Fraction(1)))
        for d, k in (dim.items() if isinstance(dim, dict) else [(dim, 1)]):
            dims[d] = dims.get(d, 0) + k * power
        factor = None if factor is None or f is None else factor * f ** power
    return tuple(sorted((d, k) for d, k in dims.items() if k)), factor
