"""A small recursive-descent parser for final answers, LaTeX and plain text alike.

It never calls ``eval``/``sympify``/``parse_expr`` on model text: tokens are whitelisted here
and sympy objects are built directly. Size guards run *before* anything is evaluated: an
input-length and token cap, a nesting-depth cap, and a digit estimate for every numeric power,
factorial and binomial (``9^{9^9}`` raises ``TooLarge`` instead of computing 370 million digits).

The result is a small tree of answer nodes (``E`` for one expression, ``Rel`` for (in)equalities,
``Tup``/``SetN``/``Lst`` for tuples, sets and bare lists, ``SetB`` for set-builder notation,
``SetOp`` for unions; matrices are sympy matrices inside ``E``) that ``compare`` compares.
An answer made of words fails to parse and is compared as text (``text_words``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

import sympy as sp

from rewards.math.lex import (
    FILLER, FUNC_LETTERS, FUNCS, TEXT_WRAP, ParseError, Tok, TooLarge, normalize, tokenize,
)
from rewards.math.num import Num, NumPolicy, numbers_equal, parse_decimal

MAX_DEPTH = 60
MAX_DIGITS = 20_000  # a number whose estimated size exceeds this many digits is never built
MAX_SYMBOLIC_EXP = 1_000  # (x+1)^{10^6} would make expand() hang


# ---------------------------------------------------------------- nodes

@dataclass
class E:
    expr: object  # a sympy expression (or ImmutableMatrix)
    num: Num | None = None  # set when the item is one number literal (keeps its written precision)
    pct: bool = False
    deg: bool = False
    unit: tuple = ()  # the unit words after the value ("kg",), ("square", "feet"), ("m", "^3")


_VALUE_WORDS = {"dozen": sp.Integer(12), "dozens": sp.Integer(12), "score": sp.Integer(20), "half": sp.Rational(1, 2),
                "halves": sp.Rational(1, 2), "tenth": sp.Rational(1, 10), "tenths": sp.Rational(1, 10),
                "hundredth": sp.Rational(1, 100), "hundredths": sp.Rational(1, 100),
                "thousandth": sp.Rational(1, 1000), "thousandths": sp.Rational(1, 1000),
                "squared": "^2", "cubed": "^3", "factorial": "!", "basis": None, "bps": None,
                "tens": sp.Integer(10), "hundreds": sp.Integer(100), "thousands": sp.Integer(1000),
                "millions": sp.Integer(10**6), "billions": sp.Integer(10**9), "bn": sp.Integer(10**9),
                "k": sp.Integer(1000), "lakh": sp.Integer(10**5), "lakhs": sp.Integer(10**5),
                "crore": sp.Integer(10**7), "crores": sp.Integer(10**7),
                "ppm": sp.Rational(1, 10**6), "ppb": sp.Rational(1, 10**9)}
_ONLY_RE = re.compile(r"(?:is|are)\s+(?:the\s+)?(?:only|unique)?\s*(?:solution|answer|value|root|result)s?", re.I)
# Words after a value that make a sentence of it ("7 is ruled out", "7 doubled") or a bound or a
# doubt ("7 at minimum", "7 upper bound", "7 presumably"): not an answer.
_SENTENCE_WORDS = {"is", "are", "was", "were", "be", "been", "fails", "fail", "failed", "that", "which", "since",
                   "because", "wrongly", "erroneous", "ruled", "minus", "plus", "doubled", "halved", "tripled",
                   "negated", "most", "least", "minimum", "maximum", "bound", "bounds", "presumably",
                   "tentatively", "unsure", "doubtful", "hmm", "typically", "usually", "generally", "roughly"}
_QUALIFIER_DENY = _SENTENCE_WORDS - {"is", "are", "was", "were", "be", "been", "that", "which", "since", "because"}
for _k, _w in enumerate(("third", "quarter", "fifth", "sixth", "seventh", "eighth", "ninth")):
    _VALUE_WORDS[_w] = _VALUE_WORDS[_w + "s"] = sp.Rational(1, _k + 3)
_VALUE_WORDS["fourth"] = _VALUE_WORDS["fourths"] = sp.Rational(1, 4)


@dataclass
class Rel:
    ops: list  # "=", "<", "<=", ">", ">=", "!=", "in"
    args: list  # nodes, len(ops) + 1


@dataclass
class Tup:
    items: list
    open: str = "("
    close: str = ")"


@dataclass
class SetN:
    items: list


@dataclass
class SetB:  # {x | condition}
    var: object
    cond: object


@dataclass
class SetOp:
    op: str  # "cup", "cap", "minus"
    a: object
    b: object


@dataclass
class Lst:
    items: list
    joins: frozenset = frozenset()  # the words that joined the items: "and", "or"


# ---------------------------------------------------------------- size guards

def _digits(x) -> float:
    """log10 of |x| for a sympy number, cheaply (0 for zero)."""
    if x.is_zero:
        return 0.0
    if x.is_Integer:
        return len(str(abs(int(x)))) if abs(int(x)) < 10**50 else abs(int(x)).bit_length() * 0.30103
    if x.is_Rational:
        return max(_digits(sp.Integer(x.p)), _digits(sp.Integer(x.q)))
    try:
        v = abs(float(x))
        return abs(math.log10(v)) if v > 0 else 0.0
    except (TypeError, ValueError, OverflowError):
        return float("inf")


def _safe_pow(base, exp):
    if exp.is_Number and base.is_Number:
        if exp.is_Rational and exp.q < 1000:
            if base in (0, 1, -1):
                return sp.Pow(base, exp)
            est = abs(float(exp)) * _digits(base)
            if est > MAX_DIGITS or abs(exp.p) > 10**7:
                raise TooLarge("power too large")
        elif exp.is_Rational:
            raise TooLarge("root index too large")
        elif abs(float(exp)) * _digits(base) > MAX_DIGITS:
            raise TooLarge("power too large")
    elif exp.is_Number:
        if abs(exp) > MAX_SYMBOLIC_EXP:
            raise TooLarge("symbolic power too large")
    elif base.is_Number and base not in (0, 1, -1) and exp.free_symbols == set():
        # a numeric but unevaluated exponent (e.g. 9^{9^{9}} with the inner power kept symbolic)
        try:
            if abs(float(exp)) * _digits(base) > MAX_DIGITS:
                raise TooLarge("power too large")
        except (TypeError, ValueError, OverflowError):
            raise TooLarge("power too large")
    return sp.Pow(base, exp)


def _safe_factorial(x):
    if x.is_Number:
        if not x.is_Integer or x < 0:
            raise ParseError("factorial of a non-natural number")
        if x > 5_000:  # 5000! has 16,326 digits: still cheap
            raise TooLarge("factorial too large")
    return sp.factorial(x)


def _safe_binom(n, k):
    if n.is_Number and k.is_Number and (abs(n) > 10_000 or abs(k) > 10_000):
        raise TooLarge("binomial too large")
    return sp.binomial(n, k)


# ---------------------------------------------------------------- parser

_SYMS: dict[str, sp.Symbol] = {}


def sym(name: str) -> sp.Symbol:
    s = _SYMS.get(name)
    if s is None:
        s = _SYMS[name] = sp.Symbol(name, real=True)
    return s


CONSTS = {"pi": sp.pi, "oo": sp.oo, "e": sp.E, "i": sp.I}
PM = "pm"  # marker symbols for \pm, expanded into alternatives by the comparer


def _is_expr(x) -> bool:
    """A scalar expression (not a set, matrix or boolean): what arithmetic may combine."""
    return isinstance(x, sp.Expr)


class Parser:
    def __init__(self, toks: list[Tok], complex_i: bool = True, func_letters=FUNC_LETTERS):
        self.t, self.k, self.depth, self.complex_i, self.pm_count = toks, 0, 0, complex_i, 0
        self.func_letters = func_letters
        # where the answer is defined, recorded as written: sympy folds e^{\ln x} into x and
        # (\sqrt x)^2 into x, which would hide that they are undefined for x < 0
        self.domain: list[tuple[str, object]] = []

    def need(self, kind: str, arg):
        """Record a domain condition ("ge0", "gt0", "abs1") on a symbolic argument."""
        if isinstance(arg, sp.Expr) and arg.free_symbols and len(self.domain) < 32:
            self.domain.append((kind, arg))

    # -- helpers
    def peek(self, off=0) -> Tok | None:
        j = self.k + off
        return self.t[j] if j < len(self.t) else None

    def at(self, kind, val=None, off=0) -> bool:
        t = self.peek(off)
        return t is not None and t.kind == kind and (val is None or t.val == val)

    def at_op(self, *vals) -> bool:
        t = self.peek()
        return t is not None and t.kind in ("op", "cmd") and t.val in vals

    def next(self) -> Tok:
        t = self.peek()
        if t is None:
            raise ParseError("unexpected end")
        self.k += 1
        return t

    def expect(self, val):
        t = self.next()
        if t.val != val or t.kind not in ("op", "cmd"):
            raise ParseError(f"expected {val!r}, got {t.val!r}")

    def enter(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise TooLarge("nesting too deep")

    # -- grammar
    def parse(self):
        for t in self.t:
            if t.kind == "cond":
                raise ParseError("a conditional answer offers another value: a hedge")
            if t.kind == "neg":
                raise ParseError("a negated answer is compared as text")
            if t.kind == "cmd" and t.val == "dots":
                raise ParseError("an ellipsis is compared as text")  # \{2, 4, 6, \ldots\} is not \{2, 4, 6\}
        cases = [k for k, t in enumerate(self.t) if t.kind == "qual" and t.val in ("for", "at") and not (
            k + 1 < len(self.t) and self.t[k + 1].val.lower() in ("all", "every", "each", "any", "forall"))]
        if len(cases) > 1:  # "7 for k >= 2, 1 for k = 1"; "for all x" is no case
            raise ParseError("values for several cases: a hedge")
        self.skip_noise()
        node = self.answer_list(())
        if self.k != len(self.t):
            raise ParseError(f"unexpected {self.peek().val!r}")
        return node

    def skip_noise(self):
        while self.peek() is not None and (self.peek().kind in ("unit",)
                                           or (self.peek().kind == "word" and self.peek().val.lower() in FILLER)):
            self.k += 1

    def at_sep(self) -> bool:
        t = self.peek()
        return t is not None and (t.kind == "sep" or (t.kind == "op" and t.val in (",", ";")))

    def answer_list(self, closers):
        items, joins = [], set()
        while True:
            self.skip_noise()
            if not items and self.at("sep"):
                raise ParseError("a list that starts with 'and'/'or'")  # 7 (or 1)
            while self.at_sep():
                if self.at("sep"):
                    joins.add(self.peek().val)
                self.k += 1
                self.skip_noise()
            if self.peek() is None or (self.peek().kind == "op" and self.peek().val in closers):
                break
            if items and self.at("cmd", "forall"):  # "f(x) = 2x+1, \forall x": a qualifier
                self.skip_qualifier(closers)
                continue
            items.append(self.item(closers))
            self.skip_noise()
            if self.at_sep():
                if self.at("sep"):
                    joins.add(self.peek().val)
                self.k += 1
                continue
            if self.peek() is None or (self.peek().kind == "op" and self.peek().val in closers):
                break
            raise ParseError(f"unexpected {self.peek().val!r}")
        if not items:
            raise ParseError("empty")
        return items[0] if len(items) == 1 else Lst(items, frozenset(joins))

    def skip_qualifier(self, closers):
        depth = 0
        while self.peek() is not None:
            t = self.peek()
            if t.val.lower() in _QUALIFIER_DENY:
                raise ParseError("a qualifier that denies or bounds the value")  # "7 that fails", "7 at minimum"
            if t.kind == "op" and t.val in ("(", "[", "{", "\\{"):
                depth += 1
            elif t.kind == "op" and t.val in (")", "]", "}", "\\}"):
                if depth == 0:
                    return
                depth -= 1
            elif depth == 0 and (t.kind == "sep" or (t.kind == "op" and t.val == ";")):
                return
            elif depth == 0 and t.kind == "op" and t.val == "," and self.at("sep", None, 1):
                return
            elif depth == 0 and t.kind == "op" and t.val == ",":
                # "2 with multiplicity 2, x = 3": where the qualifier ends is unknowable
                raise ParseError("a list inside a qualifier")
            self.k += 1

    def item(self, closers):
        self.enter()
        try:
            if self.at("cmd", "forall"):
                raise ParseError("quantified statements are compared as text")
            words, units, label = [], [], None
            # "Minimum: 1", "Sequence 1: ..." -- a leading label ends with ':' (a ratio has numbers on both sides)
            j = self.k
            while j < len(self.t) and self.t[j].kind in ("word", "num", "id") and j - self.k < 4:
                j += 1
            if (j > self.k and j < len(self.t) and self.t[j].val in (":", "=")
                    and any(t.kind == "word" for t in self.t[self.k: j])):
                named = [t.val.lower() for t in self.t[self.k: j] if t.val.lower() not in FILLER]
                label = " ".join(named) if named else None  # "Maximum: 5" names its value; "Answer: 5" does not
                self.k = j + 1
            args, ops = [self.setexpr(closers)], []
            while True:
                t = self.peek()
                if t is None:
                    break
                if (t.kind == "op" and t.val in ("=", "<", ">", "<=", ">=", "!=", ":", "~=")
                        or (t.kind == "cmd" and t.val in ("in", "notin", "subset"))):
                    self.k += 1
                    op = t.val
                    if op == ":" and self.at("word"):
                        words.append(self.next().val)
                        continue
                    ops.append(op)
                    args.append(self.setexpr(closers))
                    continue
                if t.kind == "qual" or t.kind == "cmd" and t.val == "forall":
                    self.skip_qualifier(closers)
                    continue
                if t.kind == "op" and t.val == "(" and self.at("qual", None, 1):  # "a = 4 (since a > 0)"
                    self.k += 1
                    self.skip_qualifier((")",))
                    self.expect(")")
                    continue
                if t.kind == "unit":
                    self.k += 1
                    units.append(t.val)
                    if self.at_op("^"):  # square units: 864 \mbox{ inches}^2
                        self.k += 1
                        units.append("^" + "".join(x.val for x in self.group_tokens()))
                    continue
                if t.kind == "word":
                    # trailing words after a number ("7 stuffed goats") name what is counted; after
                    # anything else they are a sentence, compared as text
                    if self.t[self.k - 1].kind != "num" and not (
                            self.t[self.k - 1].val == "}" and self.k >= 2 and self.t[self.k - 2].kind == "num"):
                        raise ParseError("words")
                    while self.at("word") or self.at("unit"):
                        units.append(self.next().val)
                    continue
                break
            if units:
                args[-1] = self.with_unit(args[-1], units)
            if not ops:
                return args[0] if label is None else Rel(["="], [E(sym(label)), args[0]])
            if all(o == ":" for o in ops) and len(args) == 2:
                a, b = _unwrap(args[0]), _unwrap(args[1])
                if _is_expr(a) and _is_expr(b):
                    if b == 0:
                        raise ParseError("ratio to zero")
                    return E(a / b)
            if ":" in ops and "=" in ops:
                segs, cur = [], [args[0]]
                for o, a_ in zip(ops, args[1:]):
                    if o == ":":
                        cur.append(a_)
                    else:
                        segs.append(cur)
                        cur = [a_]
                segs.append(cur)
                vals = []
                for seg in segs:
                    v = _unwrap(seg[0])
                    for d_ in seg[1:]:
                        d_ = _unwrap(d_)
                        if not (_is_expr(v) and _is_expr(d_)) or d_ == 0:
                            raise ParseError("bad ratio")
                        v = v / d_
                    vals.append(v)
                return Rel(["="] * (len(vals) - 1), [E(v) if _is_expr(v) else v for v in vals])
            if ops == ["~="]:  # "exact \approx 1.36": the exact value is the answer, if the claim holds
                exact, approx = _unwrap(args[0]), args[1]
                if isinstance(approx, E) and approx.num is not None and _is_expr(exact) and exact.is_number:
                    try:
                        value = Fraction(str(sp.Float(sp.N(exact, 40), 40)))
                    except (TypeError, ValueError, ZeroDivisionError):
                        value = None
                    loose = NumPolicy(rounding=True, min_sig_exact=1, min_sig_rounded=1)
                    if value is None or not numbers_equal(Num(value), approx.num, loose):
                        raise ParseError("a false approximation")  # 7 \approx 9
                return args[0]
            ops = ["=" if o == ":" else o for o in ops]
            return Rel(ops, args)
        finally:
            self.depth -= 1

    def with_unit(self, node, units):
        """The value with its unit attached; degrees become the angle flag, a word that changes
        the value ("7 dozen", "2 thirds", "7 squared") is applied to it."""
        words = list(units)  # case kept: MW is not mW
        v = _unwrap(node)
        if not _is_expr(v):
            return node
        n = node.num if isinstance(node, E) else None
        if _ONLY_RE.fullmatch(" ".join(words)):
            words = []  # "x = 1 is the only solution"
        if any(w.lower() in _SENTENCE_WORDS for w in words):
            raise ParseError("a sentence or a bound after the value")
        if words and (words[0].lower() in _VALUE_WORDS and words[0] != "K"):
            f = _VALUE_WORDS[words.pop(0).lower()]
            if f is None:
                raise ParseError("a value word that cannot be applied")
            v, n = (_safe_factorial(v) if f == "!" else _safe_pow(v, sp.Integer(f[1])) if isinstance(f, str)
                    else v * f), None
        pct = isinstance(node, E) and node.pct
        low = [w.lower() for w in words]
        deg = isinstance(node, E) and node.deg or any(w in ("degrees", "degree", "deg") for w in low)
        if any(w in ("percent", "pct", "percentage") for w in low):
            pct, n = True, None if n is None else Num(n.value, n.decimals, True)
        words = ["rad" if w.lower() in ("radians", "radian") else w for w in words
                 if w.lower() not in ("degrees", "degree", "deg", "percent", "pct", "percentage")]
        return E(v, n, pct, deg, tuple(words))

    def setexpr(self, closers):
        left = self.expr(closers)
        while self.at("cmd", "cup") or self.at("cmd", "cap") or self.at("cmd", "minus"):
            op = self.next().val
            right = self.expr(closers)
            left = SetOp(op, left, right)
        return left

    def expr(self, closers):
        self.enter()
        try:
            terms = []
            sign = None
            if self.at_op("+", "-") or self.at("cmd", "pm") or self.at("cmd", "mp"):
                sign = self.next().val
            first = self.term(closers)
            if sign is not None:
                first = self.apply_sign(sign, first)
            terms.append(first)
            while self.at_op("+", "-") or self.at("cmd", "pm") or self.at("cmd", "mp"):
                op = self.next().val
                if self.peek() is None or self.at_sep() or (self.peek().kind == "op" and self.peek().val in closers):
                    raise ParseError("dangling operator")  # "7+" is "7 or more", not 7
                rhs = self.term(closers)
                if op == "-" and not _is_expr(_unwrap(terms[-1])) and not _is_expr(_unwrap(rhs)):
                    terms = [SetOp("minus", _combine(terms), rhs)]
                    continue
                terms.append(self.apply_sign(op, rhs))
            return _combine(terms)
        finally:
            self.depth -= 1

    def apply_sign(self, op, x):
        v = _unwrap(x)
        if isinstance(v, sp.MatrixBase) and op in ("+", "-"):
            return v if op == "+" else -v
        if not _is_expr(v):
            if op == "+":
                return x
            raise ParseError("sign on a non-expression")
        if op == "+":
            return x if isinstance(x, E) and op == "+" else v
        if op == "-":
            if isinstance(x, E) and x.num is not None:
                return E(-v, Num(-x.num.value, x.num.decimals, x.num.percent), x.pct, x.deg)
            return -v
        self.pm_count += 1
        marker = sp.Symbol(f"{PM}{self.pm_count}")
        return (marker if op == "pm" else -marker) * v

    def term(self, closers):
        left = self.unary(closers)
        while True:
            if self.at_op("*", "/") or self.at("cmd", "over"):
                op = self.next().val
                right = self.unary(closers)
                left = self.mul(left, right, op)
                continue
            if self.starts_primary(closers):
                right = self.unary(closers, implicit=True)
                left = self.mul(left, right, "*")
                continue
            return left

    def mul(self, a, b, op):
        if isinstance(a, E) and a.deg or isinstance(b, E) and b.deg:  # 2\pi^\circ: the product is in degrees
            return E(self.mul(_unwrap(a), _unwrap(b), op), deg=True)
        if isinstance(a, E):
            a = a.expr
        if isinstance(b, E):
            b = b.expr
        if not (_is_expr(a) or isinstance(a, sp.MatrixBase)) or not (_is_expr(b) or isinstance(b, sp.MatrixBase)):
            raise ParseError("arithmetic on a tuple or set")
        if op in ("/", "over"):
            if isinstance(b, sp.MatrixBase):
                raise ParseError("division by a matrix")
            if b == 0:
                raise ParseError("division by zero")
            self.need("ne0", b)
            return a * _safe_pow(b, sp.Integer(-1)) if not b.is_Number else a / b
        return a * b

    def starts_primary(self, closers) -> bool:
        t = self.peek()
        if t is None:
            return False
        if t.kind in ("num", "id", "fn", "matrix"):
            return True
        if t.kind == "cmd" and t.val in ("frac", "sqrt", "binom", "lceil", "lfloor", "empty"):
            return True
        if t.kind == "op" and t.val in ("(", "{", "\\{") and t.val not in closers:
            return not (t.val == "(" and self.at("qual", None, 1))
        if t.kind == "op" and t.val == "[" and not t.space:
            return False
        return False

    def unary(self, closers, implicit=False):
        if self.at_op("-"):
            self.next()
            return self.apply_sign("-", self.unary(closers))
        if self.at_op("+") and not implicit:
            self.next()
            return self.unary(closers)
        return self.power(closers)

    def power(self, closers):
        self.enter()
        try:
            base = self.postfix(closers)
            while self.at_op("^"):
                self.next()
                if self.at("cmd", "circ"):
                    self.next()
                    base = self.mark_deg(base)
                    continue
                if self.at_op("{") and self.at("cmd", "circ", 1) and self.at_op_at(2, "}"):
                    self.k += 3
                    base = self.mark_deg(base)
                    continue
                if self.at_op("{") and self.at("id", None, 1) and self.peek(1).val in ("o",) and self.at_op_at(2, "}"):
                    self.k += 3
                    base = self.mark_deg(base)
                    continue
                ordinal = self.peek(1)
                if (self.at_op("{") and ordinal is not None and ordinal.kind in ("word", "unit")
                        and ordinal.val.lower() in ("th", "st", "nd", "rd") and self.at_op_at(2, "}")):
                    self.k += 3  # 12^{\mathrm{th}}
                    continue
                if self.at("id") and self.peek().val == "o":
                    self.next()
                    base = self.mark_deg(base)
                    continue
                exp = self.exponent(closers)
                b = _unwrap(base)
                if isinstance(b, sp.MatrixBase):
                    if not (exp.is_Integer and 0 <= exp <= 20):
                        raise ParseError("matrix power")
                    base = b**int(exp)
                    continue
                if not _is_expr(b):
                    raise ParseError("power of a tuple")
                if exp.is_Rational and not exp.is_integer and exp.q % 2 == 0:
                    self.need("ge0", b)
                base = _safe_pow(b, exp)
            while self.at_op("%"):
                self.next()
                base = self.mark_pct(base)
            return base
        finally:
            self.depth -= 1

    def at_op_at(self, off, val) -> bool:
        t = self.peek(off)
        return t is not None and t.kind == "op" and t.val == val

    def mark_deg(self, base):
        b = _unwrap(base)
        if not _is_expr(b):
            raise ParseError("degrees of a tuple")
        n = base.num if isinstance(base, E) else None
        return E(b, n, deg=True)

    def mark_pct(self, base):
        b = _unwrap(base)
        if not _is_expr(b):
            raise ParseError("percent of a tuple")
        n = base.num if isinstance(base, E) else None
        if n is not None:
            n = Num(n.value, n.decimals, True)
        return E(b, n, pct=True)

    def exponent(self, closers):
        if self.at_op("{"):
            self.next()
            e = self.expr(("}",))
            self.expect("}")
        elif self.at_op("("):
            e = self.postfix(closers)
        elif self.at_op("-"):
            self.next()
            return -self.exponent(closers)
        elif self.at("num"):
            e = self.number(self.next())
        else:
            e = self.postfix(closers)
        e = _unwrap(e)
        if not _is_expr(e):
            raise ParseError("bad exponent")
        return e

    def postfix(self, closers):
        x = self.primary(closers)
        while True:
            if self.at_op("!") and not self.at_op_at(1, "="):
                self.next()
                v = _unwrap(x)
                if not _is_expr(v):
                    raise ParseError("factorial of a tuple")
                x = _safe_factorial(v)
                continue
            if self.at_op("_") and isinstance(x, E) and x.num is not None and x.num.decimals is None:
                # 204_5: a number written in base 5
                self.next()
                basetok = self.group_tokens()
                try:
                    base = int("".join(t.val for t in basetok))
                    digits = self.last_num_text
                    x = E(sp.Integer(int(digits, base)))
                except (ValueError, AttributeError, TypeError):
                    raise ParseError("bad base subscript")
                continue
            if self.at_op("'"):
                raise ParseError("primes/minutes are compared as text")
            return x

    def group_tokens(self) -> list[Tok]:
        if self.at_op("{"):
            self.next()
            out = []
            depth = 0
            while True:
                t = self.next()
                if t.kind == "op" and t.val == "{":
                    depth += 1
                elif t.kind == "op" and t.val == "}":
                    if depth == 0:
                        return out
                    depth -= 1
                out.append(t)
        return [self.next()]

    def number(self, tok: Tok) -> E:
        n = parse_decimal(tok.val)
        if n is None:
            raise ParseError("bad number")
        self.last_num_text = tok.val
        return E(sp.Rational(n.value.numerator, n.value.denominator), n)

    def group_expr(self):
        """A LaTeX argument: a brace group, or a single token as in \\frac12."""
        if self.at_op("{"):
            self.next()
            node = self.answer_list(("}",))
            self.expect("}")
            return node
        t = self.peek()
        if t is not None and t.kind == "num":
            self.next()
            if len(t.val) > 1 and t.val.isdigit():  # \frac12: one digit per argument
                self.t.insert(self.k, Tok("num", t.val[1:]))
                return self.number(Tok("num", t.val[0]))
            return self.number(t)
        return self.postfix(())

    def primary(self, closers):
        self.enter()
        try:
            return self._primary(closers)
        finally:
            self.depth -= 1

    def _primary(self, closers):
        t = self.next()
        if t.kind == "num":
            node = self.number(t)
            # mixed number: 21\frac{13}{14} means 21 + 13/14
            if node.num.decimals is None and self.at("cmd", "frac"):
                save = self.k
                self.next()
                try:
                    a, b = _unwrap(self.group_expr()), _unwrap(self.group_expr())
                except ParseError:
                    a = b = None
                if a is not None and _is_expr(a) and _is_expr(b) and a.is_Integer and b.is_Integer and 0 < a < b:
                    return E(node.expr + a / b)
                self.k = save
            return node
        if t.kind == "id":
            return self.identifier(t, closers)
        if t.kind == "fn":
            return self.function(t.val, closers)
        if t.kind == "matrix":
            return self.matrix(t.val)
        if t.kind == "cmd":
            if t.val == "frac":
                a, b = self.group_expr(), self.group_expr()
                return self.mul(a, b, "/")
            if t.val == "sqrt":
                index = None
                if self.at_op("["):
                    self.next()
                    index = _unwrap(self.expr(("]",)))
                    self.expect("]")
                arg = _unwrap(self.group_expr() if not self.at_op("(") else self.postfix(closers))
                if not _is_expr(arg):
                    raise ParseError("sqrt of a tuple")
                if index is None:
                    self.need("ge0", arg)
                    return sp.sqrt(arg)
                if not (_is_expr(index) and index.is_Integer and 1 < index < 100):
                    raise ParseError("bad root index")
                if index % 2 == 0:
                    self.need("ge0", arg)
                if index % 2 and not arg.is_Number:
                    return sp.real_root(arg, index)  # \sqrt[3]{x^3} is x for every real x
                return sp.root(arg, index) if not (arg.is_Number and arg < 0 and index % 2) else -sp.root(-arg, index)
            if t.val in ("binom", "choose"):
                a, b = _unwrap(self.group_expr()), _unwrap(self.group_expr())
                return _safe_binom(a, b)
            if t.val in ("lceil", "lfloor"):
                inner = _unwrap(self.expr(("rceil", "rfloor")))
                close = self.next()
                if close.val not in ("rceil", "rfloor"):
                    raise ParseError("unclosed ceiling")
                return sp.ceiling(inner) if t.val == "lceil" else sp.floor(inner)
            if t.val == "empty":
                return SetN([])
            if t.val in ("pm", "mp"):
                return self.apply_sign(t.val, self.unary(closers))
        if t.kind == "op":
            if t.val == "{":
                node = self.answer_list(("}",))
                self.expect("}")
                return node
            if t.val in ("(", "["):
                return self.bracket(t.val)
            if t.val == "\\{":
                return self.set_literal()
            if t.val == "|":
                inner = _unwrap(self.expr(("|",)))
                self.expect("|")
                if not _is_expr(inner):
                    raise ParseError("abs of a tuple")
                return sp.Abs(inner)
        if t.kind == "word":
            raise ParseError("words")
        raise ParseError(f"unexpected {t.val!r}")

    def identifier(self, t: Tok, closers):
        name = t.val
        if self.at_op("_"):
            self.next()
            sub = "".join(x.val for x in self.group_tokens())
            name = f"{name}_{sub}"
        if name.startswith("mathbb_"):
            sets = {"R": sp.S.Reals, "Z": sp.S.Integers, "N": sp.S.Naturals, "Q": sp.S.Rationals, "C": sp.S.Complexes}
            return sets.get(name[7:], sym(name))
        if name == "e":
            return sp.E
        if name == "i" and self.complex_i:
            return sp.I
        if name in ("pi", "oo"):
            return CONSTS[name]
        if name in self.func_letters and self.at_op("("):
            # f(x): an applied function (only for the letters answers use as function names)
            save = self.k
            self.next()
            try:
                args = self.answer_list((")",))
                self.expect(")")
            except ParseError:
                self.k = save
                return sym(name)
            items = args.items if isinstance(args, Lst) else [args]
            vals = [_unwrap(a) for a in items]
            if all(_is_expr(v) for v in vals):
                return sp.Function(name)(*vals)
            self.k = save
        return sym(name)

    def function(self, name: str, closers):
        if name in ("sqrt",) and self.at_op("{"):
            arg = _unwrap(self.group_expr())
            self.need("ge0", arg)
            return sp.sqrt(arg)
        if name in ("max", "min") and not self.at_op("(") and not self.at_op("{"):
            # "\max = 7", "\max f = 4": the name of a value, not a call
            if self.at_op("="):
                return sym(name)
            if self.at("id") and self.at_op_at(1, "="):
                return sym(f"{name} {self.next().val}")
        power = None
        base = None
        if name in ("log", "lg") and self.at_op("_"):
            self.next()
            base = _unwrap(self.group_expr() if self.at_op("{") else self.primary(()))
        if self.at_op("^"):
            self.next()
            power = self.exponent(closers)
        if self.at_op("("):
            self.next()
            arg = self.answer_list((")",))
            self.expect(")")
        elif self.at_op("{"):
            arg = self.group_expr()
        else:
            # \sin 2x, \ln x: the argument runs over implicit products of simple factors
            arg = self.unary(closers)
            while self.at("num") or self.at("id") or (self.at_op("(") and not self.at("fn")):
                arg = self.mul(arg, self.postfix(closers), "*")
        args = arg.items if isinstance(arg, Lst) else [arg]
        vals = [_unwrap(a) for a in args]
        if not all(_is_expr(v) for v in vals):
            raise ParseError("function of a tuple")
        if (name in ("sin", "cos", "tan", "cot", "sec", "csc") and len(args) == 1 and isinstance(args[0], E)
                and args[0].deg):
            vals = [vals[0] * sp.pi / 180]  # \sin 30^\circ is 1/2
        if name == "lg":
            f = lambda x: sp.log(x, 10)  # noqa: E731
        elif name == "det":
            raise ParseError("det")
        else:
            f = FUNCS[name]
        if name in ("max", "min", "gcd", "lcm"):
            val = f(*vals)
        elif len(vals) != 1:
            raise ParseError(f"{name} takes one argument")
        elif base is not None:
            self.need("gt0", vals[0])
            val = sp.log(vals[0], base)
        else:
            kind = {"ln": "gt0", "log": "gt0", "sqrt": "ge0", "arcsin": "abs1", "asin": "abs1", "arccos": "abs1",
                    "acos": "abs1"}.get(name)
            if kind:
                self.need(kind, vals[0])
            val = f(vals[0])
        if power is not None:
            if power == -1 and name in ("sin", "cos", "tan"):
                val = {"sin": sp.asin, "cos": sp.acos, "tan": sp.atan}[name](vals[0])
            else:
                val = _safe_pow(val, power)
        return val

    def matrix(self, body: str):
        det = body.startswith("det|")
        if det:
            body = body[4:]
        rows = [r for r in re.split(r"\\\\", body) if r.strip()]
        if not rows or len(rows) > 20:
            raise ParseError("bad matrix")
        cells = []
        for r in rows:
            row = []
            for c in r.split("&"):
                node = Parser(tokenize(c), self.complex_i, self.func_letters).parse()
                v = _unwrap(node)
                if not _is_expr(v):
                    raise ParseError("bad matrix cell")
                row.append(v)
            cells.append(row)
        if len({len(r) for r in cells}) != 1:
            raise ParseError("ragged matrix")
        m = sp.ImmutableMatrix(cells)
        return m.det() if det else m

    def bracket(self, open_):
        closers = (")", "]")
        node = self.answer_list(closers)
        close = self.next().val
        if close not in closers:
            raise ParseError("unclosed bracket")
        items = node.items if isinstance(node, Lst) else [node]
        if len(items) == 1 and not (open_ == "(" and close == "]") and not (open_ == "[" and close == ")"):
            return node  # a grouping bracket
        return Tup(items, open_, close)

    def set_literal(self):
        # set-builder: \{x | cond\} or \{x : cond\} or \{x \in R | cond\}
        save = self.k
        if self.at("id"):
            j = 1
            if self.at("cmd", "in", 1):
                j = 3
            t = self.peek(j)
            if t is not None and t.kind == "op" and t.val in ("|", ":"):
                var = sym(self.peek().val)
                self.k += j + 1
                cond = self.answer_list(("\\}",))
                self.expect("\\}")
                return SetB(var, cond)
        self.k = save
        if self.at_op("\\}"):
            self.next()
            return SetN([])
        node = self.answer_list(("\\}",))
        self.expect("\\}")
        return SetN(node.items if isinstance(node, Lst) else [node])


def _unwrap(x):
    return x.expr if isinstance(x, E) else x


def _combine(terms):
    if len(terms) == 1:
        return terms[0]
    vals = [_unwrap(t) for t in terms]
    if not all(_is_expr(v) or isinstance(v, sp.MatrixBase) for v in vals):
        raise ParseError("sum of tuples")
    total = vals[0]
    for v in vals[1:]:
        total = total + v
    return total


def parse_answer(s: str, func_letters=FUNC_LETTERS):
    """The answer tree of ``s``; raises ParseError, or TooLarge for inputs over the size guards."""
    return parse_with_domain(s, func_letters)[0]


def parse_with_domain(s: str, func_letters=FUNC_LETTERS) -> tuple[object, list]:
    """The answer tree of ``s`` and its domain conditions as written ((kind, argument) pairs:
    "ge0" under a square root, "gt0" under a log, "abs1" under arcsin/arccos)."""
    try:
        toks = tokenize(s)
    except RecursionError:  # \text{\text{...}} nested hundreds deep
        raise TooLarge("nesting too deep") from None
    if not toks:
        raise ParseError("empty")
    # "i" is the imaginary unit unless it is clearly an index (x_i, a sum over i)
    complex_i = not re.search(r"_\{?i\b|\\sum", s)
    try:
        parser = Parser(toks, complex_i, func_letters)
        node = parser.parse()
    except (ParseError, TooLarge):
        raise
    except RecursionError:
        raise TooLarge("nesting too deep")
    except (TypeError, ValueError, AttributeError, ArithmeticError, IndexError, KeyError, NotImplementedError) as exc:
        # sympy refusing a combination (a scalar plus a matrix, ...) is an unreadable answer
        raise ParseError(f"{type(exc).__name__}: {exc}") from None
    return _finish(node), parser.domain


def _finish(node):
    if _is_expr(node) or isinstance(node, (sp.MatrixBase, sp.Set)):
        return E(node)
    if isinstance(node, Lst):
        return Lst([_finish(x) for x in node.items], node.joins)
    if isinstance(node, Tup):
        return Tup([_finish(x) for x in node.items], node.open, node.close)
    if isinstance(node, SetN):
        return SetN([_finish(x) for x in node.items])
    if isinstance(node, Rel):
        return Rel(node.ops, [_finish(x) for x in node.args])
    if isinstance(node, SetOp):
        return SetOp(node.op, _finish(node.a), _finish(node.b))
    if isinstance(node, SetB):
        return SetB(node.var, _finish(node.cond))
    if isinstance(node, sp.Set):
        return node
    return node


# operators are tokens too: "ax+b" and "ax-b" must not read as the same text
_WORD_RE = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?|[-+*/=<>^]")
# Only words that never change what a text answer says: "and"/"or", "by"/"to", "in"/"on" do.
_STOP = {"the", "a", "an", "is", "are", "of", "it", "be", "will"}


_PHRASES = [(re.compile(p), r) for p, r in (
    (r"\bnot possible\b", "impossible"), (r"\b(?:does not|doesn'?t|do not|don'?t) exist\b", "dne"),
    (r"\bcan ?not\b|\bcan'?t\b", "cannot"), (r"\bis not\b|\bisn'?t\b", "not"),
)]


def text_words(s: str) -> list[str]:
    """Lower-cased content words (and operator signs) of a text answer, LaTeX wrappers removed;
    a few fixed phrases read as one word ("does not exist" is "DNE")."""
    s = re.sub(TEXT_WRAP + r"\s*", " ", normalize(s))
    s = re.sub(r"\\(?:ldots|cdots|dots)(?![a-zA-Z])", " dots ", s)
    s = re.sub(r"\\(le|ge|ne|in|notin|subset|cup|cap|pm|mp|forall|exists)(?![a-zA-Z])", r" \1 ", s)  # words too
    s = re.sub(r"\\[a-zA-Z]+", " ", s).lower()
    for pat, rep_ in _PHRASES:
        s = pat.sub(rep_, s)
    return [w for w in _WORD_RE.findall(s) if w not in _STOP]
