"""Output comparison, in the trusted parent (notes/code_sandbox.md §8).

Lines: CRLF→LF, trailing whitespace per line and trailing empty lines dropped; line count must
match (no ``zip``: a prefix of the expected lines is WA). Tokens: integers compared exactly as
Python ints; floats within ``float_tol`` only when a tolerance is asked for; otherwise exact text.
"""

from __future__ import annotations

import json
import math
import re

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


def _norm(x):
    if isinstance(x, tuple):
        x = list(x)
    if isinstance(x, list):
        return [_norm(v) for v in x]
    if isinstance(x, dict):
        return {str(k): _norm(v) for k, v in x.items()}
    return x


def values_equal(got, exp, float_tol: float | None) -> bool:
    if type(got) is bool or type(exp) is bool:
        return type(got) is type(exp) and got == exp
    if isinstance(got, (int, float)) and isinstance(exp, (int, float)):
        if isinstance(got, int) and isinstance(exp, int):
            return got == exp
        if float_tol is None:
            return float(got) == float(exp)
        return abs(got - exp) <= float_tol * max(1.0, abs(exp))
    if isinstance(got, list) and isinstance(exp, list):
        return len(got) == len(exp) and all(values_equal(a, b, float_tol) for a, b in zip(got, exp))
    if isinstance(got, dict) and isinstance(exp, dict):
        return got.keys() == exp.keys() and all(values_equal(got[k], exp[k], float_tol) for k in got)
    return type(got) is type(exp) and got == exp


def result_matches(payload: bytes, expected, float_tol: float | None = None) -> bool:
    """``payload`` is the JSON the sandbox wrote; anything unparseable is simply wrong."""
    try:
        got = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return values_equal(got, _norm(expected), float_tol)
