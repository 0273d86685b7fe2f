"""Output comparison, in the trusted parent.

Lines: CRLF→LF, trailing whitespace per line and trailing empty lines dropped; line count must
match (no ``zip``: a prefix of the expected lines is WA). Tokens: integers compared exactly as
Python ints; floats within ``float_tol`` only when a tolerance is asked for; otherwise exact text.
"""

from __future__ import annotations

import decimal
import fractions
import json
import math
import re

from rewards.sandbox import rpc as sandbox_rpc

_INT = re.compile(r"[+-]?\d+\Z")


def _lines(text: str) -> list[str]:
    lines = [ln.rstrip() for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _int_key(tok: str) -> tuple[bool, str]:
    """Exact integer value without int(): huge numbers would hit Python's 4300-digit guard."""
    neg = tok.startswith("-")
    digits = tok.lstrip("+-").lstrip("0") or "0"
    return (neg and digits != "0", digits)


def _float(tok: str):
    try:
        v = float(tok)
    except ValueError:
        return None
    return v


def tokens_equal(got: str, exp: str, float_tol: float | None) -> bool:
    if got == exp:
        return True
    if _INT.match(got) and _INT.match(exp):
        return _int_key(got) == _int_key(exp)
    if float_tol is not None:
        g, e = _float(got), _float(exp)
        if g is None or e is None or math.isnan(g) or math.isnan(e) or math.isinf(g) or math.isinf(e):
            return False
        return abs(g - e) <= float_tol * max(1.0, abs(e))
    return False


def stdout_matches(got: bytes, expected: str, float_tol: float | None = None) -> bool:
    text = got.decode("utf-8", errors="replace")
    if "\x00" in text:
        return "\x00" in expected and text == expected
    g, e = _lines(text), _lines(expected)
    if len(g) != len(e):
        return False
    for gl, el in zip(g, e):  # lengths checked above
        gt, et = gl.split(), el.split()
        if len(gt) != len(et) or not all(tokens_equal(a, b, float_tol) for a, b in zip(gt, et)):
            return False
    return True


def _json_key(k):
    """A dict key as JSON would have written it (the expected values come from JSON: keys are strings)."""
    if type(k) is str:
        return k
    if type(k) is bool or k is None:
        return json.dumps(k)
    if type(k) is int or type(k) is float:
        return repr(k)
    return None


def _number(x) -> bool:
    return isinstance(x, (int, float, fractions.Fraction, decimal.Decimal)) and not isinstance(x, bool)


def values_equal(got, exp, float_tol: float | None) -> bool:
    """``got`` (decoded from the program) against ``exp`` (from JSON). JSON has no tuples and only string
    keys, so a tuple equals a list and ``{1: x}`` equals ``{"1": x}``; sets, ranges and generators are not
    lists. Numbers compare exactly (ints of any size, no float conversion) unless a tolerance is given."""
    if type(got) is bool or type(exp) is bool:
        return type(got) is type(exp) and got == exp
    if _number(got) and _number(exp):
        if float_tol is None or (isinstance(got, int) and isinstance(exp, int)):
            return got == exp
        try:
            g, e = float(got), float(exp)
        except (OverflowError, ValueError, decimal.InvalidOperation):
            return False
        if math.isnan(g) or math.isnan(e) or math.isinf(g) or math.isinf(e):
            return g == e
        return abs(g - e) <= float_tol * max(1.0, abs(e))
    if isinstance(exp, (list, tuple)):
        if type(got) is tuple:
            got = list(got)
        return type(got) is list and len(got) == len(exp) and all(
            values_equal(a, b, float_tol) for a, b in zip(got, exp))
    if isinstance(exp, dict):
        if not isinstance(got, dict):
            return False
        g = {_json_key(k): v for k, v in got.items()}
        e = {_json_key(k): v for k, v in exp.items()}
        return None not in g and len(g) == len(got) and g.keys() == e.keys() and all(
            values_equal(g[k], e[k], float_tol) for k in e)
    return type(got) is type(exp) and got == exp


def result_matches(payload: bytes, expected, float_tol: float | None = None) -> bool:
    """``payload`` is what the sandbox wrote (``rewards.sandbox.rpc`` format); anything undecodable is wrong."""
    try:
        got = sandbox_rpc.loads(payload)
    except sandbox_rpc.DecodeError:
        return False
    try:
        return values_equal(got, expected, float_tol)
    except (RecursionError, OverflowError, ValueError, TypeError, ArithmeticError):
        return False
