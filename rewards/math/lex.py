"""Normalisation and tokenizing of answer strings (LaTeX and plain text) for ``parse``.

Only whitelisted tokens come out: numbers, single-letter and Greek identifiers, known function
names, operators, and words (text answers, unit words, separators such as "and"/"or").
Anything else raises ``ParseError``; nothing here evaluates model text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp

MAX_TOKENS = 1_500


class ParseError(ValueError):
    pass


class TooLarge(ValueError):
    pass


# ---------------------------------------------------------------- normalisation

_UNICODE = {
    "−": "-", "–": "-", "×": r"\times ", "·": r"\cdot ", "÷": r"\div ", "π": r"\pi ", "∞": r"\infty ",
    "≤": r"\le ", "≥": r"\ge ", "≠": r"\ne ", "＞": ">", "＜": "<", "∪": r"\cup ", "∩": r"\cap ",
    "∈": r"\in ", "√": r"\sqrt ", "°": r"^\circ ", "±": r"\pm ", "∅": r"\emptyset ", "≈": r"\approx ",
    "，": ",", "：": ":", "（": "(", "）": ")", "θ": r"\theta ", "α": r"\alpha ", "β": r"\beta ",
    "∀": r"\forall ", "⋅": r"\cdot ", "′": "'",
}
_CIRCLED = {chr(0x2460 + i): f"{i + 1}," for i in range(20)}

_DROP_RE = re.compile(
    r"(?<!\\)\\(?:left|right|bigg|Bigg|big|Big)[lr]?(?![a-zA-Z])|\\displaystyle|\\textstyle|(?<!\\)\\[!,;:> ]"
    r"|\\(?:limits|nolimits)(?![a-zA-Z])|\\[()\[\]]|\$|~"
)
_RENAME = [
    (re.compile(r"\\[dtc]frac(?![a-zA-Z])"), r"\\frac"),
    (re.compile(r"\\[dt]binom(?![a-zA-Z])"), r"\\binom"),
    (re.compile(r"\\(?:leqslant|leq|le)(?![a-zA-Z])"), r"\\le "),
    (re.compile(r"\\(?:geqslant|geq|ge)(?![a-zA-Z])"), r"\\ge "),
    (re.compile(r"\\(?:neq|ne)(?![a-zA-Z])"), r"\\ne "),
    (re.compile(r"\\lt(?![a-zA-Z])"), "<"),
    (re.compile(r"\\gt(?![a-zA-Z])"), ">"),
    (re.compile(r"<=|=<"), r"\\le "),
    (re.compile(r">="), r"\\ge "),
    (re.compile(r"!="), r"\\ne "),
    (re.compile(r"\*\*"), "^"),
    (re.compile(r"<sup>(.*?)</sup>"), r"^{\1}"),
    (re.compile(r"\\(?:textdegree|degree|textcirc)(?![a-zA-Z])"), r"\\circ "),
    (re.compile(r",\s*\\!\s*(?=\d{3})"), ""),  # 32,\!349 is one number
    (re.compile(r"(?<=\d)\{,\}(?=\d{3}(?!\d))"), ""),  # 1{,}000{,}000
    (re.compile(r"(?<=\d)\{,\}(?=\d)"), "."),  # 1{,}5: a decimal comma
    (re.compile(r"\\not\s*=|\\not\s*\\eq(?![a-zA-Z])"), r"\\ne "),
    (re.compile(r"\\not\s*\\in(?![a-zA-Z])"), r"\\notin "),
    # "m = 6 \quad n = 10": a quad between two items separates them
    (re.compile(r"\\q?quad(?![a-zA-Z])"), " , "),
]


_SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻", "0123456789+-")
_SUPERSCRIPT_RE = re.compile("[⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻]+")
_SUBSCRIPT = str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789")
_SUBSCRIPT_RE = re.compile("[₀₁₂₃₄₅₆₇₈₉]+")
_VULGAR = {"½": (1, 2), "⅓": (1, 3), "⅔": (2, 3), "¼": (1, 4), "¾": (3, 4), "⅕": (1, 5), "⅖": (2, 5), "⅗": (3, 5),
           "⅘": (4, 5), "⅙": (1, 6), "⅚": (5, 6), "⅐": (1, 7), "⅛": (1, 8), "⅜": (3, 8), "⅝": (5, 8), "⅞": (7, 8),
           "⅑": (1, 9), "⅒": (1, 10)}
# 0.1\overline{6} = 1/6: a repeating decimal is an exact rational
_REPEATING_RE = re.compile(r"(\d*)\.(\d*)\s*\\overline\s*(?:\{\s*(\d+)\s*\}|(\d))")
# FF_{16}: a numeral with letter digits in a base above 10 (204_5 is read by the parser)
_BASE_RE = re.compile(r"(?<![\\A-Za-z0-9])([0-9A-Za-z]+)_\{?(\d+)\}?")


def _repeating(m: re.Match) -> str:
    whole, fixed, rep = m.group(1) or "0", m.group(2), m.group(3) or m.group(4)
    num = int(whole + fixed + rep) - int(whole + fixed)
    return r"\frac{%d}{%d}" % (num, (10 ** len(rep) - 1) * 10 ** len(fixed))


def _base(m: re.Match) -> str:
    digits, base = m.group(1), int(m.group(2))
    if not (10 < base <= 36) or digits.isdigit() or not (len(digits) > 1 or digits.isupper()):
        return m.group(0)
    try:
        return str(int(digits, base))
    except ValueError:
        return m.group(0)


_UNICODE_MORE = [(re.compile(r"√\s*(\d+)"), r"\\sqrt{\1}"), (re.compile("ℝ"), r"\\mathbb{R}"),
                 (re.compile("ℤ"), r"\\mathbb{Z}"), (re.compile("ℕ"), r"\\mathbb{N}"),
                 (re.compile("ℚ"), r"\\mathbb{Q}"), (re.compile("⌊"), r"\\lfloor "), (re.compile("⌋"), r"\\rfloor "),
                 (re.compile("⌈"), r"\\lceil "), (re.compile("⌉"), r"\\rceil "),
                 (re.compile(r"\*\*([^*]+)\*\*"), r"\1"),  # **7**: markdown bold, not a power
                 (re.compile(r"\.{3,}|…"), r" \\ldots ")]


def normalize(s: str) -> str:
    # Strings pasted from JSON sometimes lost a backslash to an escape: "\t" became a TAB.
    s = s.replace("\t", "\\t").replace("\x0c", "\\f").replace("\x08", "\\b").replace("\r", "\\r")
    s = s.replace("\n", " ")
    if "\\$" in s:  # \$5 states its unit: dollars
        s = re.sub(r"\\\$\s*(-?\d[\d,]*(?:\.\d+)?)", r"\1 \\text{ dollars}", s).replace("\\$", " ")
    s = re.sub(r"\\\\(?=[a-zA-Z])", r"\\", s)  # "\\frac" from double escaping (matrix rows keep "\\ ")
    s = _SUPERSCRIPT_RE.sub(lambda m: "^{" + m.group(0).translate(_SUPERSCRIPT) + "}", s)
    s = _SUBSCRIPT_RE.sub(lambda m: "_{" + m.group(0).translate(_SUBSCRIPT) + "}", s)
    for k, (a, b) in _VULGAR.items():
        s = s.replace(k, r"\frac{%d}{%d}" % (a, b))
    if "overline" in s:
        s = _REPEATING_RE.sub(_repeating, s)
    if "_" in s:
        s = _BASE_RE.sub(_base, s)
    s = re.sub(r"\\left\s*\\\{(.*)\\right\s*\.", r"\1", s)  # \left\{ system \right.
    for pat, rep_ in _UNICODE_MORE:
        s = pat.sub(rep_, s)
    for k, v in _UNICODE.items():
        s = s.replace(k, v)
    for k, v in _CIRCLED.items():
        s = s.replace(k, v)
    for pat, rep in _RENAME:
        s = pat.sub(rep, s)
    s = _DROP_RE.sub(" ", s)
    return s.strip().rstrip(".").strip()


# ---------------------------------------------------------------- tokens

GREEK = set(
    "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi rho sigma tau "
    "upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Sigma Phi Psi Omega".split()
)
FUNCS = {
    "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "cot": sp.cot, "sec": sp.sec, "csc": sp.csc,
    "arcsin": sp.asin, "arccos": sp.acos, "arctan": sp.atan, "asin": sp.asin, "acos": sp.acos, "atan": sp.atan,
    "arccot": sp.acot, "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh, "exp": sp.exp, "ln": sp.log,
    "log": sp.log, "lg": None, "sqrt": sp.sqrt, "abs": sp.Abs, "max": sp.Max, "min": sp.Min,
    "gcd": sp.gcd, "lcm": sp.lcm, "det": None, "floor": sp.floor, "ceil": sp.ceiling,
}
# Unit and filler words stripped after a value. Never single letters: "5t" is not "5" (notes §1.9).
UNITS = set(
    """units unit square cubic sq cm mm km m2 cm2 meters meter metres metre kilometers kilometer miles mile feet foot
    ft inches inch yards yard grams gram kg kilograms kilogram mg pounds pound lbs lb ounces ounce oz liters liter
    litres litre ml gallons gallon seconds second sec secs minutes minute min mins hours hour hrs hr days day weeks
    week months month years year yrs degrees degree deg radians radian rad dollars dollar cents cent euros euro yuan
    yen rupees rs people persons students children times ways points cubes eggs apples pages items percent pct
    percentage mph kmh kph km/h m/s mps per each only approximately about roughly exactly total th st nd rd""".split()
)
WORD_SEPS = {"and": "and", "or": "or"}
QUALIFIERS = {"for", "where", "with", "since", "because", "which", "that", "such", "regardless", "whatever", "at"}
# An answer that holds only under a condition offers another value outside it: a hedge.
CONDITIONALS = {"if", "when", "whenever", "unless", "else", "otherwise", "except", "provided", "assuming",
                "depending", "elsewhere", "iff", "maybe", "perhaps", "possibly", "probably", "likely", "guess",
                # a second value offered alongside: "7, which could also be 9", "7 with 9 also possible"
                "also", "alternatively", "alternative", "could", "might", "may", "either", "another", "instead",
                "though", "although", "plausible", "other"}
# A bound is not a value: "at least 7", "7 or more", "up to 7" (replaced by a hedge word before lexing)
_BOUND_RE = re.compile(r"\b(?:at\s+(?:least|most)|or\s+(?:more|less|fewer|greater|higher|lower|so|above|below)|up\s+to"
                       r"|no\s+(?:more|less|fewer)\s+than|more\s+than|less\s+than|fewer\s+than|roughly|around)\b", re.I)
NEGATIONS = {"not", "no", "never", "neither", "nor", "cannot", "isn", "aren", "doesn", "don", "nothing",
             "nowhere", "without", "false", "untrue", "wrong", "incorrect", "impossible"}
NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
NUMBER_WORDS.update(
    {w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
)
SCALE_WORDS = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9}
FILLER = {"is", "are", "the", "a", "an", "all", "both", "answer", "final", "thus", "so", "therefore", "hence",
          "solution", "solutions", "value", "values", "equals", "equal", "be", "must", "will", "it", "of", "only"}
INF_WORDS = {"infinity", "inf", "infinite", "infinitely"}
# \text{...} and its kin, as a pattern: the wrapper only, the group it wraps is kept
TEXT_WRAP = r"\\(?:text|textrm|textbf|textit|mbox|mathrm|emph)(?![a-zA-Z])"
TEXT_CMDS = {"text", "mbox", "textrm", "textit", "textnormal", "mathrm", "mathbf", "textbf", "mathit",
             "operatorname", "boldsymbol", "mathsf", "texttt", "emph", "textsf", "hbox", "bm"}
FUNC_LETTERS = set("fghFGHPQT") | {"p", "q"}


@dataclass
class Tok:
    kind: str  # num id fn cmd op sep word unit qual matrix
    val: str
    space: bool = False  # whitespace before this token


# 1e100 is scientific notation only when nothing alphanumeric follows (2e is 2 times e)
_NUM_AT = re.compile(r"(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+(?![A-Za-z\d]))?")


class Lexer:
    def __init__(self, s: str):
        self.s, self.i, self.toks, self.depth, self.text_depth = s, 0, [], 0, 0
        self.prev_tok: Tok | None = None  # the token before a \text{} group this lexer reads

    def add(self, kind, val, space):
        self.toks.append(Tok(kind, val, space))
        if len(self.toks) > MAX_TOKENS:
            raise TooLarge("too many tokens")

    def group(self) -> str:
        """The raw content of the brace group starting at self.i (which is '{')."""
        s, i, depth = self.s, self.i + 1, 1
        while i < len(s) and depth:
            if s[i] == "\\":
                i += 2
                continue
            depth += (s[i] == "{") - (s[i] == "}")
            i += 1
        if depth:
            raise ParseError("unbalanced braces")
        content = s[self.i + 1: i - 1]
        self.i = i
        return content

    def skip_ws(self) -> bool:
        j = self.i
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1
        return self.i > j

    def run(self) -> list[Tok]:
        s = self.s
        while True:
            space = self.skip_ws()
            if self.i >= len(s):
                return self.toks
            c = s[self.i]
            if c in "0123456789" or (c == "." and self.i + 1 < len(s) and s[self.i + 1] in "0123456789"):
                m = _NUM_AT.match(s, self.i)
                val = m.group(0)
                self.i = m.end()
                # 7,425,000: thousands groups (no spaces, outside brackets) make one number
                while self.depth == 0 and "." not in val:
                    t = re.match(r",(\d{3})(?![\d])(\.\d+)?", s[self.i:])
                    if not t:
                        break
                    val += t.group(1) + (t.group(2) or "")
                    self.i += t.end()
                self.add("num", val, space)
                continue
            if c.isalpha():
                m = re.match(r"[A-Za-z]+", s[self.i:])
                if not m:  # another alphabet: keep the word as text
                    m = re.match(r"\w+", s[self.i:])
                    self.i += m.end()
                    self.add("word", m.group(0), space)
                    continue
                self.i += m.end()
                self.letters(m.group(0), space)
                continue
            if c == "\\":
                self.command(space)
                continue
            if c == "{":
                self.depth += 1
                self.add("op", "{", space)
            elif c == "}":
                self.depth -= 1
                self.add("op", "}", space)
            elif c in "([":
                self.depth += 1
                self.add("op", c, space)
            elif c in ")]":
                self.depth -= 1
                self.add("op", c, space)
            elif c in "+-*/^!=<>,;:|_'&%":
                self.add("op", c, space)
            elif c == "?":
                raise ParseError("a question is not an answer")  # 7?
            elif c in "\"`":
                pass
            else:
                raise ParseError(f"unexpected character {c!r}")
            self.i += 1

    def letters(self, word: str, space: bool) -> None:
        low = word.lower()
        prev = self.toks[-1] if self.toks else self.prev_tok
        if low in NUMBER_WORDS or low in SCALE_WORDS:
            self.add("numword", low, space)
        elif low in CONDITIONALS and (len(word) > 3 or self.text_depth or low in ("if", "iff")):
            self.add("cond", low, space)
        elif low in NEGATIONS and (len(word) > 2 or self.text_depth or low == "no" and prev is None):
            self.add("neg", low, space)
        elif word in FUNCS or low in ("sqrt", "exp", "ln", "log"):
            self.add("fn", low if low in FUNCS else word, space)
        elif low in ("pi",):
            self.add("id", "pi", space)
        elif low in INF_WORDS:
            self.add("id", "oo", space)
            if low == "infinitely":  # "infinitely many"
                m = re.match(r"\s*many", self.s[self.i:])
                if m:
                    self.i += m.end()
        elif low in WORD_SEPS and (len(word) > 1):
            self.add("sep", low, space)
        elif low in QUALIFIERS and (len(word) > 2 or self.text_depth):  # "at" in math is a times t
            self.add("qual", low, space)
        elif low in ("st", "nd", "rd", "th") and prev and prev.kind == "num" and not space:
            pass  # 15th
        elif len(word) > 1 and low in UNITS and prev is not None:
            self.add("unit", word if word not in (low, word.upper()) else low, space)  # Mm is not mm
        elif len(word) > 1 and (low in FILLER or self.text_depth or len(word) > 3):
            self.add("word", word, space)
        else:
            # LaTeX math: adjacent letters are a product of symbols ("xy", "ab")
            for k, ch in enumerate(word):
                self.add("id", ch, space and k == 0)

    def command(self, space: bool) -> None:
        s = self.s
        m = re.match(r"\\([a-zA-Z]+|.)", s[self.i:])
        if not m:
            raise ParseError("dangling backslash")
        name = m.group(1)
        self.i += m.end()
        if name in TEXT_CMDS:
            self.skip_ws()
            if self.i < len(s) and s[self.i] == "{":
                content = self.group()
                prev = self.toks[-1] if self.toks else None
                letter = re.fullmatch(r"\s*[A-Za-z]\s*", content)
                if name in ("text", "mathrm", "textrm", "mbox") and letter and prev is not None \
                        and (prev.kind == "num" or prev.val == "circ"):
                    self.add("unit", content.strip(), space)  # 0^\circ\text{C}, 5\text{ K}: a unit, not a factor
                    return
                rate = re.fullmatch(r"\s*([A-Za-z]+)\s*/\s*([A-Za-z]+)\s*", content)
                if rate and prev is not None and prev.kind in ("num", "op") and all(
                        g in _SHORT_UNITS or g.lower() in UNITS or len(g) <= 3 for g in rate.groups()):
                    for u in (rate.group(1), "per", rate.group(2)):  # 7 \text{ m/s}
                        self.add("unit", u, space)
                    return
                if content.strip() in _SHORT_UNITS and prev is not None and prev.kind in ("num", "op"):
                    self.add("unit", content.strip(), space)  # 2.653\,\mathrm{m}: an explicit unit
                    return
                if name in ("mathrm", "operatorname", "mathit", "mathbf", "bm", "boldsymbol") and letter:
                    self.add("id", content.strip(), space)
                    return
                self.text_depth += 1
                sub = Lexer(normalize(content))
                sub.text_depth = 1
                sub.depth = self.depth
                sub.prev_tok = self.toks[-1] if self.toks else self.prev_tok
                self.toks.extend(sub.run())
                if len(self.toks) > MAX_TOKENS:
                    raise TooLarge("too many tokens")
                self.text_depth -= 1
            return
        if name in ("boxed", "fbox", "overline", "vec", "hat", "bar", "tilde", "widehat", "underline", "mathcal"):
            return  # the following group is parsed as a plain group
        if name == "mathbb":
            self.skip_ws()
            content = self.group() if self.i < len(s) and s[self.i] == "{" else s[self.i: self.i + 1]
            if not content.strip():
                raise ParseError("empty mathbb")
            self.add("id", "mathbb_" + content.strip()[0], space)
            return
        if name in ("begin",):
            self.skip_ws()
            env = self.group().strip() if self.i < len(s) and s[self.i] == "{" else ""
            end = s.find("\\end{" + env + "}", self.i)
            if end < 0:
                raise ParseError("unclosed environment")
            body = s[self.i: end]
            self.i = end + len("\\end{" + env + "}")
            if env in ("pmatrix", "bmatrix", "matrix", "Bmatrix", "vmatrix", "array", "smallmatrix") and not (
                    env == "array" and "=" in body):
                if env == "array":
                    body = re.sub(r"^\s*\{[^}]*\}", "", body)
                self.add("matrix", ("det|" if env == "vmatrix" else "") + body, space)
                return
            if env in ("cases", "aligned", "align", "align*", "gathered", "array", "split"):
                # a system of equations: its rows are the items of a list
                body = re.sub(r"^\s*\{[^}]*\}", "", body) if env == "array" else body  # array's column spec
                rows = [r for r in re.split(r"\\\\", body) if r.strip()]
                if env == "cases" and any("&" in r for r in rows):
                    raise ParseError("a piecewise answer is compared as text")
                sub = Lexer(normalize(" , ".join(r.replace("&", " ") for r in rows)))
                sub.depth = self.depth
                self.toks.extend(sub.run())
                if len(self.toks) > MAX_TOKENS:
                    raise TooLarge("too many tokens")
                return
            raise ParseError(f"environment {env} not supported")
        if name in ("{", "}"):
            self.add("op", "\\" + name, space)
            return
        if name == "%":
            self.add("op", "%", space)
            return
        if name == "\\":
            self.add("op", "\\\\", space)
            return
        if name == "|":
            raise ParseError("norms are not supported")
        if name in ("neg", "lnot", "not"):
            self.add("neg", name, space)
            return
        if name in ("sqrt", "frac", "binom"):
            self.add("cmd", name, space)
            return
        if name in ("ell", "imath"):
            self.add("id", "l" if name == "ell" else "i", space)
            return
        if name in GREEK:
            self.add("id", name, space)
            return
        if name == "pi":
            self.add("id", "pi", space)
            return
        if name in ("infty", "infin"):
            self.add("id", "oo", space)
            return
        if name in FUNCS or name in ("lg",):
            self.add("fn", name, space)
            return
        mapped = {
            "cdot": "*", "times": "*", "ast": "*", "div": "/", "le": "<=", "ge": ">=", "ne": "!=", "approx": "~=",
            "equiv": "=", "cong": "=", "sim": "=", "cup": "cup", "cap": "cap", "setminus": "minus", "in": "in",
            "mid": "|", "vert": "|", "lvert": "|", "rvert": "|", "pm": "pm", "mp": "mp", "circ": "circ",
            "lceil": "lceil", "rceil": "rceil", "lfloor": "lfloor", "rfloor": "rfloor", "colon": ":",
            "emptyset": "empty", "varnothing": "empty", "ldots": "dots", "cdots": "dots", "dots": "dots",
            "dotsb": "dots", "land": "and", "wedge": "and", "lor": "or", "vee": "or", "frac": "frac",
            "sqrt": "sqrt", "binom": "binom", "choose": "choose", "prime": "'", "forall": "forall",
            "exists": "forall", "Rightarrow": "implies", "implies": "implies", "to": "implies", "rightarrow": "implies",
            "notin": "notin", "subset": "subset", "subseteq": "subset", "langle": "(", "rangle": ")",
            "lbrace": "\\{", "rbrace": "\\}", "over": "over",
        }.get(name)
        if mapped is None:
            raise ParseError(f"unknown command \\{name}")
        if mapped in ("and", "or"):
            self.add("sep", mapped, space)
        else:
            self.add("cmd" if mapped.isalpha() else "op", mapped, space)


_SHORT_UNITS = {"m", "g", "s", "h", "l", "L", "km", "cm", "mm", "kg", "mg", "ml", "mL", "min", "hr", "ft", "in", "lb",
                "oz", "yd", "mi", "d", "wk", "sec", "rad"}


def _merge_number_words(toks: list[Tok]) -> list[Tok]:
    """"twenty-one", "one hundred and five": runs of number words become one number token."""
    out, k = [], 0
    while k < len(toks):
        if toks[k].kind != "numword":
            out.append(toks[k])
            k += 1
            continue
        total, cur, j, space = 0, 0, k, toks[k].space
        while j < len(toks):
            t = toks[j]
            if t.kind == "numword":
                if t.val in NUMBER_WORDS and cur % 100 and (cur % 10 or NUMBER_WORDS[t.val] >= 10):
                    raise ParseError("number words that make no number")  # "five six", "twenty thirty"
                if t.val in SCALE_WORDS:
                    cur = max(cur, 1) * SCALE_WORDS[t.val]
                    if t.val != "hundred":
                        total, cur = total + cur, 0
                else:
                    cur += NUMBER_WORDS[t.val]
                j += 1
            elif ((t.val == "-" or t.val == "and" and cur >= 100) and j + 1 < len(toks)
                  and toks[j + 1].kind == "numword"):
                j += 1
            else:
                break
        out.append(Tok("num", str(total + cur), space))
        k = j
    return out


def tokenize(s: str) -> list[Tok]:
    s = normalize(s)
    if _BOUND_RE.search(s):
        s = _BOUND_RE.sub(" maybe ", s)
    toks = Lexer(s).run()
    return _merge_number_words(toks) if any(t.kind == "numword" for t in toks) else toks
