"""Compare two parsed answers with sympy. Runs inside the worker processes of ``rewards.math.pool``.

Order of checks, cheapest first: normalised-string equality, structure (lists, tuples, sets,
intervals, matrices, relations), then for two expressions: the number rules of ``num``
(exact rationals, stated precision), exact sympy arithmetic, a high-precision *relative*
numeric test (never an absolute ``chop``: 1/2^99 and 1/2^98 differ), ``simplify``, and last a
seeded random-point test for expressions with free variables.
"""

from __future__ import annotations

import itertools
import random
import re
from fractions import Fraction

import sympy as sp

from rewards.math.policy import Policy
from rewards.math.num import Num, numbers_equal
from rewards.math.parse import (
    FUNC_LETTERS, PM, E, Lst, ParseError, Rel, SetB, SetN, SetOp, TooLarge, Tup, normalize, parse_with_domain,
    text_words,
)
from rewards.math.lex import TEXT_WRAP
from rewards.math.units import conversion

MAX_ALTERNATIVES = 64  # \pm expansions
MAX_ITEMS = 64  # list/set elements matched pairwise
_RNG_SEED = 20240601


# ---------------------------------------------------------------- entry point

def _canon(s: str) -> str:
    """The answer as a string that only differs from another's when the text does: wrappers and
    spacing go, braces stay (2^{n+1} is not 2^n+1), and so does one space between two
    alphanumerics (1 2 is not 12); case matters (x is not X)."""
    s = normalize(s)
    s = re.sub(TEXT_WRAP + r"\s*\{([^{}]*)\}", r"\1", s)
    s = re.sub(r"([\^_])\{\s*([A-Za-z0-9])\s*\}", r"\1\2", s)  # 3^{x} is 3^x
    s = re.sub(r"(?<=[A-Za-z0-9])\s+(?=[A-Za-z0-9])", " ", s)
    return re.sub(r"(?<![A-Za-z0-9])\s+|\s+(?![A-Za-z0-9])", "", s)


# "no solution", "there are no real roots", "none": the empty set
_NO_SOLUTION_RE = re.compile(
    r"(?:there\s+(?:is|are|exists?)\s+)?(?:none|no\s*(?:real\s+|integer\s+|such\s+|possible\s+|valid\s+|positive\s+)?"
    r"(?:solutions?|roots?|values?|answers?|such\s+\w+|x|numbers?|pairs?))(?:\s+exists?)?"
    r"|\\emptyset|\\varnothing|\\\{\s*\\\}|\{\s*\}|∅",
    re.I,
)
# "all real numbers": the real line
_ALL_REALS_RE = re.compile(
    r"(?:x\s*\\in\s*)?(?:all|any|every)\s+real\s+(?:numbers?|values?|x)|\\mathbb\s*\{?R\}?|all\s+reals", re.I
)
# "(B) 12", "\text{Option B}", "B." for the multiple-choice gold "B"
_CHOICE_GOLD_RE = re.compile(r"\(?([A-J])\)?")
_CHOICE_PRED_RE = re.compile(r"(?:(?:option|choice|answer)\s*:?\s*)?(?:\(([A-J])\)|([A-J])(?:[.:)]|$))\s*(.*)", re.I)


def _plain(s: str) -> str:
    s = re.sub(TEXT_WRAP + r"\s*\{([^{}]*)\}", r"\1", normalize(s))
    return re.sub(r"\s+", " ", s).strip().rstrip(".").strip()


def _set_words(s: str) -> str:
    plain = _plain(s)
    if _NO_SOLUTION_RE.fullmatch(plain):
        return r"\emptyset"
    return r"\mathbb{R}" if _ALL_REALS_RE.fullmatch(plain) else s


def _choice(gold: str, pred: str) -> bool | None:
    """Multiple choice: whether ``pred`` picks the gold letter, or None when the gold is no letter."""
    m = _CHOICE_GOLD_RE.fullmatch(_plain(gold))
    if not m:
        return None
    pm = _CHOICE_PRED_RE.fullmatch(_plain(pred))
    if not pm:
        return None
    letter, rest = pm.group(1) or pm.group(2), pm.group(3)
    if pm.group(2) and pm.group(2) != pm.group(2).upper():
        return None  # a lower-case letter without parentheses is a variable
    if not re.fullmatch(r"[\d\s.,$\\{}()+-]*", rest):
        return False  # "(B) or (C)", "(B) D", "(B) is false", "(B)?": more than the choice and its value
    return letter.upper() == m.group(1)


def check_pair(gold: str, pred: str, policy: dict) -> tuple[str, str | None]:
    pol = Policy(**policy)
    if "?" in pred and "?" not in gold:
        return ("not_equal", "a question")  # "No?", "(B)?"
    if _canon(gold) == _canon(pred):
        return ("equal", None)
    choice = _choice(gold, pred)
    if choice is not None:
        return ("equal", None) if choice else ("not_equal", None)
    gold, pred = _set_words(gold), _set_words(pred)
    verdict = _check_parsed(gold, pred, pol, FUNC_LETTERS)
    if verdict[0] == "not_equal" and verdict[1] is None and _AMBIGUOUS_CALL_RE.search(gold + " " + pred):
        # p(1-p), P(1+r)^n: a single letter before "(" may be a factor, not a function
        retry = _check_parsed(gold, pred, pol, frozenset("fgh"))
        if retry[0] == "equal":
            return retry
    return verdict


# only a call whose argument is a sum or difference: P(3) stays the value of P at 3
_AMBIGUOUS_CALL_RE = re.compile(r"(?<![A-Za-z\\])[pqPQTFGH]\s*\([^()]*[-+][^()]*\)")


def _check_parsed(gold: str, pred: str, pol, func_letters) -> tuple[str, str | None]:
    g_text = p_text = None
    try:
        g, g_dom = parse_with_domain(gold, func_letters)
    except TooLarge:
        return ("unknown", "gold too large")
    except (ParseError, RecursionError, TypeError, ValueError, ZeroDivisionError):
        g = None
        g_text = text_words(gold)
        if not g_text:
            return ("unknown", "gold unparseable")
    try:
        p, p_dom = parse_with_domain(pred, func_letters)
    except TooLarge:
        return ("not_equal", "answer too large")
    except (ParseError, RecursionError, TypeError, ValueError, ZeroDivisionError):
        p = None
        p_text = text_words(pred)
    if g is not None and p is None:
        return ("not_equal", None)  # a math gold and an answer we cannot read
    if g is None:
        gw = g_text if g_text is not None else text_words(gold)
        pw = p_text if p_text is not None else text_words(pred)
        return ("equal", None) if _text_equal(gold, pred, gw, pw, pol) else ("not_equal", None)
    try:
        same = Cmp(pol, g_dom, p_dom).eq(g, p)
    except (TypeError, ValueError, AttributeError, NotImplementedError, ArithmeticError, IndexError) as exc:
        # sympy refusing to compare what we built (a matrix inequality, ...): no evidence of equality
        return ("not_equal", f"incomparable: {type(exc).__name__}")
    return ("equal", None) if same else ("not_equal", None)


_NEGATION_WORDS = {"not", "no", "never", "neither", "nor", "cannot", "none", "nothing", "nobody", "impossible",
                   "isn", "aren", "doesn", "don", "can", "t", "without", "false"}


def _text_equal(gold: str, pred: str, gw: list[str], pw: list[str], pol) -> bool:
    """Text answers: the same words in the same order; a list of words in any order ("red, blue"
    = "blue, red", but "Bob beats Alice" is not "Alice beats Bob")."""
    if not gw or not pw:
        return False
    if gw == pw:
        return True
    gi, pi = _text_items(gold), _text_items(pred)
    if len(gi) > 1 and sorted(gi) == sorted(pi):
        return True
    # "Petya" for "Petya will receive the last token": opt-in, and only a short answer that starts
    # like the sentence (its subject) and keeps every negation ("done" is not "It cannot be done")
    if pol.text_containment and len(gw) >= 3 and len(pw) <= 3 and len(pw) < len(gw) and pw[0] == gw[0]:
        neg = lambda ws: sorted(w for w in ws if w in _NEGATION_WORDS)  # noqa: E731
        return all(w in gw for w in pw) and neg(gw) == neg(pw) and any(len(w) > 2 and w.isalpha() for w in pw)
    return False


def _text_items(s: str) -> list[tuple]:
    parts = re.split(r",|;|\band\b", re.sub(TEXT_WRAP + r"\s*", " ", s), flags=re.I)
    return [tuple(w) for w in (text_words(x) for x in parts) if w]


# ---------------------------------------------------------------- comparer

def _expand_pm(expr) -> list:
    markers = sorted((s for s in expr.free_symbols if s.name.startswith(PM)), key=lambda s: s.name)
    if not markers:
        return [expr]
    if len(markers) > 6:
        raise TooLarge("too many \\pm")
    return [expr.subs(dict(zip(markers, signs))) for signs in itertools.product((1, -1), repeat=len(markers))]


def _has_pm(node) -> bool:
    if isinstance(node, E):
        return isinstance(node.expr, sp.Basic) and any(s.name.startswith(PM) for s in node.expr.free_symbols)
    if isinstance(node, (Tup, Lst, SetN)):
        return any(_has_pm(x) for x in node.items)
    return False


def _alternatives(node) -> list:
    """A node containing \\pm as the list of its sign choices."""
    if isinstance(node, E):
        return [E(v) for v in _expand_pm(node.expr)]
    if isinstance(node, Tup):
        markers = sorted({s for x in node.items if isinstance(x, E) and isinstance(x.expr, sp.Basic)
                          for s in x.expr.free_symbols if s.name.startswith(PM)}, key=lambda s: s.name)
        out = []
        for signs in itertools.product((1, -1), repeat=len(markers)):
            sub = dict(zip(markers, signs))
            out.append(Tup([E(x.expr.subs(sub)) if isinstance(x, E) else x for x in node.items], node.open, node.close))
        return out
    return [node]


def _flatten(node) -> list:
    """The members of a top-level list (or set), with \\pm items expanded."""
    items = node.items if isinstance(node, (Lst, SetN)) else [node]
    out = []
    for x in items:
        out.extend(_alternatives(x) if _has_pm(x) else [x])
        if len(out) > MAX_ALTERNATIVES:
            raise TooLarge("too many alternatives")
    # duplicates do not make a different set
    return out


def _is_label(x) -> bool:
    """A left-hand side naming the answer (x, f(x), a_n, m_max, (f(n), g(n)), T(10)) rather than
    constraining it."""
    if isinstance(x, Tup):
        return all(_is_label(i) for i in x.items)
    if not isinstance(x, E) or not isinstance(x.expr, sp.Basic):
        return False
    v = x.expr
    if isinstance(v, sp.Symbol) or (v.is_Function and isinstance(v.func, sp.core.function.UndefinedFunction)):
        return True
    if isinstance(v, sp.Mul) and len(v.args) <= 3 and all(
        isinstance(a, sp.Symbol) or (isinstance(a, sp.Pow) and isinstance(a.base, sp.Symbol) and a.exp == -1)
        for a in v.args
    ):
        return True  # "xy" or "m_{max}" glued letters
    return False


def _strip_label(node):
    """``x = 3`` -> ``3``; ``x = y = 3`` -> ``3``; lists itemwise."""
    if isinstance(node, Rel) and all(o == "=" for o in node.ops) and all(_is_label(a) for a in node.args[:-1]):
        return node.args[-1]
    if isinstance(node, Rel) and node.ops == ["in"] and _is_label(node.args[0]):
        return node.args[1]
    if isinstance(node, Rel) and node.ops == ["="] and _is_label(node.args[1]) and _is_constant(node.args[0]):
        return node.args[0]  # "3 = x"
    if isinstance(node, Lst):
        return Lst([_strip_label(x) for x in node.items], node.joins)
    return node


def _is_constant(x) -> bool:
    return isinstance(x, E) and isinstance(x.expr, sp.Expr) and not x.expr.free_symbols


def _named(node) -> dict | None:
    """``p = 4, q = 9`` (or ``(p, q) = (4, 9)``) as {label: [values]}; None unless every item
    names its value."""
    items = node.items if isinstance(node, Lst) else [node]
    out: dict = {}
    for x in items:
        if (isinstance(x, Rel) and x.ops == ["="] and len(x.args) == 2 and _is_label(x.args[1])
                and _is_constant(x.args[0])):
            x = Rel(["="], [x.args[1], x.args[0]])  # "4 = q"
        if not (isinstance(x, Rel) and x.ops == ["="] and _is_label(x.args[0])):
            return None
        lhs, rhs = x.args
        if isinstance(lhs, Tup):
            if not isinstance(rhs, Tup) or len(rhs.items) != len(lhs.items):
                return None
            pairs = list(zip(lhs.items, rhs.items))
        else:
            pairs = [(lhs, rhs)]
        for label, value in pairs:
            out.setdefault(label.expr, []).append(value)
    return out


def _disjunction(node) -> bool:
    """A list joined by "or" whose items name different quantities."""
    named = _named(node) if isinstance(node, Lst) and "or" in node.joins else None
    return named is not None and len(named) > 1


def _applied_vars(node) -> list:
    """Bound variables of a function definition: f(x) = 2x + 1 -> [x]; P(A) = 0.3 has none (A is
    not used on the right)."""
    out = []
    rhs = node.args[-1] if isinstance(node, Rel) else None
    free = rhs.expr.free_symbols if isinstance(rhs, E) and isinstance(rhs.expr, sp.Basic) else set()
    for a in (node.args[:-1] if isinstance(node, Rel) else []):
        if isinstance(a, E) and isinstance(a.expr, sp.Basic) and a.expr.is_Function:
            out.extend(x for x in a.expr.args if isinstance(x, sp.Symbol) and x in free)
    return out


class Cmp:
    def __init__(self, pol, gold_domain=(), pred_domain=()):
        self.pol = pol
        self.rng = random.Random(_RNG_SEED)
        self.gold_domain, self.pred_domain = gold_domain, pred_domain

    # -- dispatch
    def eq(self, g, p) -> bool:
        # f(n) = 2n+1007 vs f(m) = 2m+1007: rename the bound variable before anything else
        gv, pv = _applied_vars(g), _applied_vars(p)
        if len(gv) == len(pv) == 1 and gv[0] != pv[0]:
            p = _subs_node(p, {pv[0]: gv[0]})
        decided = self.names_eq(g, p)
        if decided is not None:
            return decided
        if isinstance(g, Rel) and isinstance(p, Rel) and self.rel_eq(g, p):
            return True
        g2, p2 = _strip_label(g), _strip_label(p)
        if g2 is not g or p2 is not p:
            if self.node_eq(g2, p2):
                return True
        p3 = _strip_label(p)
        if isinstance(g, Rel) and not isinstance(p3, Rel) and not self._set_like(p3):
            if self.solve_eq(g, p3):
                return True
        return self.node_eq(g, p)

    def names_eq(self, g, p) -> bool | None:
        """What the names of the values decide, or None when they decide nothing."""
        if _disjunction(p) != _disjunction(g):
            return False  # "a = 2 or b = 3" asserts neither value
        gn, pn = _named(g), _named(p)
        if gn is not None and pn is not None:
            if len(gn) == len(pn) == 1 and gn.keys() != pn.keys() \
                    and not all(isinstance(k, sp.Symbol) and len(k.name) == 1 for k in (*gn, *pn)):
                return False  # f(2) = 5 is not f(3) = 5, a_2 = 3 not a_3 = 3 (x = 5 and y = 5 stay equal)
            if len(gn) > 1 or len(pn) > 1:  # p = 9, q = 4 is not p = 4, q = 9
                return gn.keys() == pn.keys() and all(self.multiset_eq(gn[k], pn[k]) for k in gn)
        if gn is not None and len(gn) > 1 and isinstance(p, Lst):
            if any(_named(x) is not None for x in p.items):
                return False  # "p = 9, q = 4, 4": names mixed with bare values
            if all(len(v) == 1 for v in gn.values()) and len(p.items) == len(gn):
                # a gold naming its values against a bare list: the list answers in the gold's order
                return self.seq_eq([v[0] for v in gn.values()], p.items)
        return None

    def node_eq(self, g, p) -> bool:
        gl = isinstance(g, (Lst, SetN)) or _has_pm(g) and not isinstance(g, Tup)
        pl = isinstance(p, (Lst, SetN)) or _has_pm(p) and not isinstance(p, Tup)
        if isinstance(g, Tup) and _has_pm(g) or isinstance(p, Tup) and _has_pm(p):
            gl = gl or (isinstance(g, Tup) and _has_pm(g))
            pl = pl or (isinstance(p, Tup) and _has_pm(p))
        if gl or pl:
            if (isinstance(g, SetN) and isinstance(p, SetN) or not (self._set_like(g) or self._set_like(p))
                    or (gl and pl)):
                gi, pi = _flatten(g), _flatten(p)
                if isinstance(g, Lst) and isinstance(p, Tup) and len(g.items) == len(p.items) and not _has_pm(p):
                    # "1, 2, 3" vs "(x, y, z) = (1, 2, 3)"
                    return self.seq_eq([_strip_label(x) for x in g.items], p.items)
                if isinstance(p, Lst) and isinstance(g, Tup) and len(g.items) == len(p.items) and not _has_pm(g):
                    return self.seq_eq(g.items, [_strip_label(x) for x in p.items])
                gi = [_strip_label(x) for x in gi]
                pi = [_strip_label(x) for x in pi]
                if (isinstance(g, Lst) and isinstance(p, Lst)
                        and {g.joins, p.joins} == {frozenset({"and"}), frozenset({"or"})}):
                    return False  # "A and B" is not "A or B"
                if self.pol.ordered_lists and isinstance(g, Lst) and isinstance(p, Lst):
                    return len(gi) == len(pi) and self.seq_eq(gi, pi)
                if isinstance(g, SetN) and isinstance(p, SetN) or all(isinstance(x, Tup) for x in gi + pi):
                    # \{1, 1, 2\} is the set \{1, 2\}; a solution tuple listed twice is one solution
                    gi, pi = _dedupe(gi), _dedupe(pi)
                return self.multiset_eq(gi, pi)
        if self._set_like(g) or self._set_like(p):
            if isinstance(g, Tup) and isinstance(p, Tup):
                return self.tup_eq(g, p)
            return self.set_eq(g, p)
        if isinstance(g, Tup) or isinstance(p, Tup):
            return self.tup_eq(g, p)
        if isinstance(g, Rel) or isinstance(p, Rel):
            if isinstance(g, Rel) and isinstance(p, Rel):
                return self.rel_eq(g, p)
            return False
        if isinstance(g, E) and isinstance(p, E):
            return self.expr_eq(g, p)
        return False

    # -- containers
    def seq_eq(self, a, b) -> bool:
        return len(a) == len(b) and all(self.node_eq(x, y) for x, y in zip(a, b))

    def multiset_eq(self, a, b) -> bool:
        # repeats count: 2, 2, 3 is not 2, 3, 3
        if len(a) != len(b) or len(a) > MAX_ITEMS:
            return False
        used = [False] * len(b)
        for x in a:
            for j, y in enumerate(b):
                if not used[j] and self.node_eq(x, y):
                    used[j] = True
                    break
            else:
                return False
        return True

    def tup_eq(self, g, p) -> bool:
        gi = _vector(g)
        pi = _vector(p)
        if gi is None or pi is None or len(gi) != len(pi):
            return False
        if isinstance(g, Tup) and isinstance(p, Tup) and len(gi) == 2:
            # an interval's brackets matter: (1,2) is not [1,2]
            if (g.open, g.close) != (p.open, p.close):
                return False
        return all(self.node_eq(x, y) for x, y in zip(gi, pi))

    def _set_like(self, n) -> bool:
        if isinstance(n, (SetOp, SetB)):
            return True
        if isinstance(n, E) and isinstance(n.expr, sp.Set):
            return True
        if isinstance(n, Tup) and len(n.items) == 2:
            if n.open != n.close.replace(")", "(").replace("]", "[") or n.open == "[":
                return True
            return any(isinstance(x, E) and isinstance(x.expr, sp.Basic) and x.expr.has(sp.oo) for x in n.items)
        if isinstance(n, Rel) and any(o in ("<", ">", "<=", ">=", "!=", "in") for o in n.ops):
            return True
        return False

    def to_set(self, n):
        """A sympy Set for an interval, union, set-builder, finite set or a one-variable relation."""
        if isinstance(n, E) and isinstance(n.expr, sp.Set):
            return n.expr
        if isinstance(n, Tup) and len(n.items) == 2:
            a, b = (_expr(x) for x in n.items)
            if a is None or b is None:
                return None
            return sp.Interval(a, b, n.open == "(", n.close == ")")
        if isinstance(n, SetN):
            vals = [_expr(x) for x in _flatten(n)]
            return None if any(v is None for v in vals) else sp.FiniteSet(*vals)
        if isinstance(n, SetOp):
            a, b = self.to_set(n.a), self.to_set(n.b)
            if a is None or b is None:
                return None
            return {"cup": sp.Union, "cap": sp.Intersection}.get(n.op, lambda x, y: sp.Complement(x, y))(a, b)
        if isinstance(n, SetB):
            return self.to_set(n.cond)
        if isinstance(n, Lst):  # "x < a or x > b"; "x >= 3 and x <= 5" is an intersection
            parts = [self.to_set(x) for x in n.items]
            if any(x is None for x in parts):
                return None
            return sp.Intersection(*parts) if n.joins == frozenset({"and"}) else sp.Union(*parts)
        if isinstance(n, Rel):
            if n.ops == ["in"]:
                return self.to_set(n.args[1])
            if n.ops == ["="] and _is_label(n.args[0]):
                v = _expr(n.args[1])
                return None if v is None else sp.FiniteSet(v)
            exprs = [_expr(a) for a in n.args]
            if any(e is None for e in exprs):
                return None
            syms = set().union(*(e.free_symbols for e in exprs))
            if len(syms) != 1 or any(e.has(sp.core.function.AppliedUndef) for e in exprs):
                return None  # f(a) >= f(b) is a statement, not a set of numbers
            (x,) = syms
            conds = []
            for op, a, b in zip(n.ops, exprs, exprs[1:]):
                rel = {"<": sp.Lt, ">": sp.Gt, "<=": sp.Le, ">=": sp.Ge, "!=": sp.Ne, "=": sp.Eq}[op]
                conds.append(rel(a, b))
            try:
                return sp.And(*conds).as_set() if len(conds) > 1 else conds[0].as_set()
            except Exception:
                return None
        return None

    def set_eq(self, g, p) -> bool:
        if not self.pol.set_relation and (isinstance(g, Rel) != isinstance(p, Rel)):
            return False
        a, b = self.to_set(g), self.to_set(p)
        if a is None or b is None:
            return False
        try:
            if a == b:
                return True
            if isinstance(a, sp.Interval) and isinstance(b, sp.Interval):
                return ((a.left_open, a.right_open) == (b.left_open, b.right_open) and self.val_eq(a.start, b.start)
                        and self.val_eq(a.end, b.end))
            d1, d2 = sp.Complement(a, b), sp.Complement(b, a)
            return d1.is_empty is True and d2.is_empty is True or (d1 == sp.S.EmptySet and d2 == sp.S.EmptySet)
        except Exception:
            return False

    # -- relations
    def rel_eq(self, g: Rel, p: Rel) -> bool:
        if g.ops == p.ops == ["="]:
            gl, gr = _expr(g.args[0]), _expr(g.args[1])
            pl, pr = _expr(p.args[0]), _expr(p.args[1])
            if None in (gl, gr, pl, pr):
                return False
            if _is_label(g.args[0]) and _is_label(p.args[0]) and gl == pl:
                return self.node_eq(g.args[1], p.args[1])
            return self.proportional(gl - gr, pl - pr)
        if len(g.ops) == len(p.ops) and all(o in ("<", "<=", ">", ">=") for o in g.ops + p.ops):
            # a < b vs -a > -b, b > a
            if self._set_like(g) and self.to_set(g) is not None and self.to_set(p) is not None:
                return self.set_eq(g, p)
            flip = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}
            if g.ops == p.ops:
                return all(self.node_eq(x, y) for x, y in zip(g.args, p.args))
            if g.ops == [flip[o] for o in reversed(p.ops)]:
                return all(self.node_eq(x, y) for x, y in zip(g.args, reversed(p.args)))
            return False
        if g.ops == p.ops == ["!="]:
            return self.node_eq(g.args[0], p.args[0]) and self.node_eq(g.args[1], p.args[1])
        if g.ops == p.ops and len(g.ops) > 1:
            return all(self.node_eq(x, y) for x, y in zip(g.args, p.args))
        return False

    def proportional(self, a, b) -> bool:
        """Two equations ``a = 0`` and ``b = 0`` with a = c*b for a nonzero constant c."""
        if a == 0 or b == 0:
            return a == b
        try:
            r = sp.cancel(sp.together(a / b))
        except Exception:
            return False
        if r.free_symbols:
            r = sp.simplify(r)
        return not r.free_symbols and r != 0 and r.is_finite is not False

    def solve_eq(self, g: Rel, p) -> bool:
        """Gold ``y + 1 = -(2x-1)^2`` vs pred ``-4x^2+4x-2``: solve for the variable the pred lacks."""
        if g.ops != ["="] or not isinstance(p, E) or not isinstance(p.expr, sp.Expr):
            return False
        gl, gr = _expr(g.args[0]), _expr(g.args[1])
        if gl is None or gr is None:
            return False
        lhs = gl - gr
        missing = [s for s in lhs.free_symbols if s not in p.expr.free_symbols and not s.name.startswith(PM)]
        if len(missing) != 1:
            return False
        try:
            sols = sp.solve(lhs, missing[0])
        except Exception:
            return False
        return len(sols) == 1 and self.val_eq(sols[0], p.expr)

    # -- expressions
    def expr_eq(self, g: E, p: E) -> bool:
        gv, pv = g.expr, p.expr
        if isinstance(gv, sp.MatrixBase) or isinstance(pv, sp.MatrixBase):
            return self.matrix_eq(gv, pv)
        if isinstance(gv, sp.Set) or isinstance(pv, sp.Set):
            return isinstance(gv, sp.Set) and isinstance(pv, sp.Set) and gv == pv
        conv = conversion(g.unit, p.unit)
        if conv is False:
            return False  # 7 kg is not 7 g
        if conv is not True:  # 2000 g for 2 kg: the pred in the gold's unit, exactly
            f = sp.Rational(conv.numerator, conv.denominator)
            pnum = None if p.num is None else Num(p.num.value * conv, None, p.num.percent)
            p = E(pv * f, pnum, p.pct, p.deg)
            pv = p.expr
        if g.deg != p.deg and (_has_pi(gv) or _has_pi(pv) or "rad" in g.unit + p.unit):
            # pi/4 degrees is not pi/4: an angle with pi in it is in radians, compare only converted
            return self.pol.degrees and self.degrees_eq(g, p)
        # number literals keep their written precision and percent sign
        gn, pn = self.as_num(g), self.as_num(p)
        if gn is not None and pn is not None:
            if numbers_equal(gn, pn, self.pol.num_policy()):
                return True
        elif ((gn is not None and gn.decimals is not None) or (pn is not None and pn.decimals is not None)
              or g.pct or p.pct):
            # a rounded decimal against an exact closed form (85.71 vs 600/7, 41.4% vs sqrt(2)-1)
            lit, other, lit_is_gold = (gn, pv, True) if gn is not None else (pn, gv, False)
            approx = _to_fraction(other) if lit is not None else None
            if approx is not None:
                exact = Num(approx, None)  # exact value (to 40 digits): the literal states the precision
                pair = (lit, exact) if lit_is_gold else (exact, lit)
                if numbers_equal(*pair, self.pol.num_policy()):
                    return True
        if self.val_eq(gv, pv):
            return True
        return self.pol.degrees and g.deg != p.deg and self.degrees_eq(g, p)

    def degrees_eq(self, g: E, p: E) -> bool:
        deg_side, other = (g.expr, p.expr) if g.deg else (p.expr, g.expr)
        return not other.free_symbols and not _has_pi(deg_side) and self.val_eq(deg_side * sp.pi / 180, other)


    def as_num(self, n: E) -> Num | None:
        if n.num is not None:
            return n.num if not n.pct or n.num.percent else Num(n.num.value, n.num.decimals, True)
        v = n.expr
        if isinstance(v, sp.Rational):
            return Num(Fraction(int(v.p), int(v.q)), None, n.pct)
        return None

    def matrix_eq(self, a, b) -> bool:
        if not (isinstance(a, sp.MatrixBase) and isinstance(b, sp.MatrixBase)):
            return False
        if a.shape != b.shape:
            if a.shape[0] * a.shape[1] == b.shape[0] * b.shape[1] and 1 in a.shape and 1 in b.shape:
                return all(self.expr_eq(E(x), E(y)) for x, y in zip(a, b))
            return False
        return all(self.expr_eq(E(x), E(y)) for x, y in zip(a, b))

    def val_eq(self, a, b) -> bool:
        """Exact equality of two sympy values (numbers or expressions)."""
        try:
            if isinstance(a, sp.Set) or isinstance(b, sp.Set):
                return a == b
            if self.narrower_domain(a):
                return False
            if a == b:
                return True
            if a.has(sp.oo, -sp.oo, sp.zoo, sp.nan) or b.has(sp.oo, -sp.oo, sp.zoo, sp.nan):
                return a == b
            d = a - b
            if d == 0:
                return True
            syms = d.free_symbols
            if not syms:
                return self.numeric_zero(a, b)
            if any(s.name.startswith(PM) for s in syms):
                return False
            if sp.expand(d) == 0:
                return True
            if d.has(sp.core.function.AppliedUndef):
                return sp.simplify(d) == 0
            if len(syms) <= 8 and self.pol.numeric_check:
                agree = self.random_points(a, b, syms)
                if agree is not None:
                    return agree
            return sp.simplify(d) == 0
        except (TypeError, ValueError, AttributeError, NotImplementedError, ZeroDivisionError, RecursionError):
            return False

    def numeric_zero(self, a, b) -> bool:
        """a == b for constant expressions, decided on the *difference*: exact when it is
        rational (5000! and 5000!+1 differ), else sympy's adaptive evalf must find no significant
        digit down to 2^-1200. No relative or absolute epsilon: Math-Verify's ``chop`` calls
        1/2004! and 1/2006! equal (notes §1.9)."""
        d = a - b
        if d.is_Rational:
            return d == 0
        try:
            dv = d.evalf(60, maxn=1200)
        except (TypeError, ValueError, ArithmeticError):
            return False
        if not dv.is_number:
            return False
        for part in dv.as_real_imag():
            if part == 0:
                continue
            # evalf returns a Float with (almost) no precision when the value is 0 to within 2^-maxn
            if isinstance(part, sp.Float) and part._prec < 10:
                continue
            return False
        return True

    def narrower_domain(self, a) -> bool:
        """The answer is undefined somewhere the gold is defined: e^{\ln x} for x (sympy folds
        it into x, but the answer's log needs x > 0)."""
        extra = [c for c in self.pred_domain if c not in self.gold_domain]
        if not extra or not isinstance(a, sp.Expr):
            return False
        gold = _conditions(a, self.gold_domain)
        for kind, arg in extra:
            if kind == "ne0" and _defined_at_roots(a, gold, arg):
                return True  # (x^2-1)/(x-1) is undefined at 1, where x+1 is not
        syms = sorted(a.free_symbols.union(*(arg.free_symbols for _, arg in extra)), key=lambda s_: s_.name)
        rng = random.Random(_RNG_SEED)
        extra = [c for c in extra if c[0] != "ne0"]
        if not extra:
            return False
        for _ in range(_POINT_TRIES):
            pt = {s_: sp.Float(rng.choice(_POINTS) * rng.uniform(0.93, 1.07), 30) for s_ in syms}
            try:
                if _holds(gold, pt) and not _holds(extra, pt):
                    return True
            except (TypeError, ValueError, OverflowError, ZeroDivisionError):
                continue
        return False

    def random_points(self, a, b, syms) -> bool | None:
        """Gold ``a`` and pred ``b`` at seeded points drawn over the whole real line (negative,
        small and large values), keeping the points where the gold is defined (real unless the
        gold is complex): False at the first disagreement, True when enough points agreed, None
        (doubt) when too few points were usable. Sampling only (0.1, 0.9) once accepted
        arctan(tan x) and sqrt(x^2) for x; domain identities such as 2 asin(sqrt a) =
        acos(1-2a) still hold because points outside the gold's domain are skipped."""
        syms = sorted(set(syms) | a.free_symbols | b.free_symbols, key=lambda s_: s_.name)
        diff = a - b
        complex_gold = a.has(sp.I)
        gold_defined, pred_defined = _conditions(a, self.gold_domain), _conditions(b, self.pred_domain)
        agreed = 0
        # evalf with subs, not lambdify: lambdify exec()s generated source, and the symbol names
        # here come from model text
        for _ in range(_POINT_TRIES):
            # exact rational points: an agreement to 30 digits is then confirmed exactly below
            pt = {s_: sp.Rational(round(self.rng.choice(_POINTS) * self.rng.uniform(0.93, 1.07) * 1000), 1000)
                  for s_ in syms}
            try:
                av = complex(a.evalf(30, subs=pt))
            except (TypeError, ValueError, OverflowError, ZeroDivisionError):
                continue  # the gold is undefined here (a pole, a log of zero)
            try:
                if av != av or abs(av) == float("inf") or not complex_gold and not _holds(gold_defined, pt):
                    continue
            except (TypeError, ValueError, OverflowError, ZeroDivisionError):
                continue
            try:
                d = complex(diff.evalf(30, subs=pt))
                if not complex_gold and not _holds(pred_defined, pt):
                    return False  # defined for the gold, not for the answer
            except (TypeError, ValueError, OverflowError, ZeroDivisionError):
                return False
            if d != d or abs(d) > 1e-20 * max(1.0, abs(av)):
                return False
            if agreed < _POINTS_EXACT and not _vanishes(diff, pt):
                return False  # x^2 + 10^{-25} x is not x^2: the difference is below 30 digits, not zero
            agreed += 1
            if agreed == _POINTS_NEEDED:
                return True
        return None


def _defined_at_roots(a, gold_conditions, arg) -> bool:
    """The gold is defined at a real root of the one-variable polynomial ``arg``."""
    syms = arg.free_symbols
    if len(syms) != 1:
        return False
    (x,) = syms
    try:
        if not arg.is_polynomial(x) or sp.degree(arg, x) > 4:
            return False
        roots = [r for r in sp.solve(arg, x) if r.is_real]
    except (NotImplementedError, ValueError, TypeError, sp.PolynomialError):
        return False
    for r in roots:
        pt = {s_: r for s_ in a.free_symbols | {x}} if a.free_symbols <= {x} else None
        if pt is None:
            continue
        try:
            v = complex(a.evalf(30, subs=pt))
            if v == v and abs(v) != float("inf") and _holds(gold_conditions, pt):
                return True
        except (TypeError, ValueError, OverflowError, ZeroDivisionError):
            continue
    return False


def _vanishes(diff, pt) -> bool:
    """The difference is zero at the (rational) point as far as sympy's adaptive evalf can tell
    within 160 bits: a true identity leaves no significant digit, a tiny real difference
    (10^-25 x) keeps its digits however small it is."""
    try:
        dv = diff.evalf(30, subs=pt, maxn=160)
    except (TypeError, ValueError, ArithmeticError):
        return False
    if not dv.is_number:
        return False
    for part in dv.as_real_imag():
        if part != 0 and not (isinstance(part, sp.Float) and part._prec < 10):
            return False
    return True


def _conditions(expr, domain=()) -> list:
    """Where ``expr`` is real-defined, as (kind, argument) pairs: the conditions written in the
    answer (sympy has already folded e^{ln x} into x) and every root, log and inverse trig
    function left in ``expr`` that depends on a variable."""
    out = list(domain)
    for node in sp.preorder_traversal(expr):
        partial = isinstance(node, sp.Pow) and not node.exp.is_integer
        if (partial or isinstance(node, (sp.log, sp.asin, sp.acos, sp.atanh, sp.acosh, sp.asec, sp.acsc))) \
                and node.free_symbols:
            out.append(("real", node))
    return out


def _holds(conditions, pt) -> bool:
    for kind, arg in conditions:
        if not arg.free_symbols <= set(pt):
            continue  # a condition on a variable the other side does not have (a compare of parts)
        v = complex(arg.evalf(30, subs=pt))
        if v != v or abs(v.imag) > 1e-20 * max(1.0, abs(v)):
            return False
        if kind == "ge0" and v.real < 0 or kind == "gt0" and v.real <= 0 or kind == "abs1" and abs(v.real) > 1 \
                or kind == "ne0" and v == 0:
            return False
    return True


_POINTS = (-61.7, -13.3, -4.9, -2.2, -1.37, -0.81, -0.44, -0.12, 0.07, 0.19, 0.31, 0.46, 0.58, 0.71, 0.83, 0.94,
           1.28, 2.47, 3.9, 7.3, 16.1, 57.9)
_POINT_TRIES = 60
_POINTS_NEEDED = 6
_POINTS_EXACT = 2  # agreeing points whose difference is also decided exactly (numeric_zero)


def _has_pi(v) -> bool:
    return isinstance(v, sp.Basic) and v.has(sp.pi)


def _subs_node(node, mapping):
    if isinstance(node, E):
        return (E(node.expr.subs(mapping), node.num, node.pct, node.deg, node.unit)
                if isinstance(node.expr, sp.Basic) else node)
    if isinstance(node, Rel):
        return Rel(node.ops, [_subs_node(a, mapping) for a in node.args])
    if isinstance(node, Lst):
        return Lst([_subs_node(a, mapping) for a in node.items], node.joins)
    if isinstance(node, SetN):
        return SetN([_subs_node(a, mapping) for a in node.items])
    if isinstance(node, Tup):
        return Tup([_subs_node(a, mapping) for a in node.items], node.open, node.close)
    return node


def _expr(n):
    if isinstance(n, E) and isinstance(n.expr, sp.Expr):
        return n.expr
    return None


def _vector(n):
    if isinstance(n, Tup):
        return n.items
    if isinstance(n, E) and isinstance(n.expr, sp.MatrixBase) and 1 in n.expr.shape:
        return [E(x) for x in n.expr]
    return None


def _dedupe(items):
    """Drop literal repeats (a set lists an element once however often it is written)."""
    out, seen = [], set()
    for x in items:
        k = _key(x)
        if k is None or k not in seen:
            out.append(x)
            if k is not None:
                seen.add(k)
    return out


def _key(node):
    try:
        if isinstance(node, E):
            return ("E", node.expr, node.pct, node.deg) if isinstance(node.expr, sp.Basic) else None
        if isinstance(node, Tup):
            keys = tuple(_key(x) for x in node.items)
            return None if None in keys else ("T", node.open, node.close, keys)
    except TypeError:  # unhashable
        return None
    return None


def _to_fraction(v) -> Fraction | None:
    if not isinstance(v, sp.Basic) or v.free_symbols or not v.is_number:
        return None
    try:
        x = sp.N(v, 40)
        if not x.is_real:
            return None
        return Fraction(str(sp.Float(x, 40)))
    except (TypeError, ValueError, ZeroDivisionError):
        return None
