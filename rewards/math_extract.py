"""Find the final answer in a model's solution text.

For RL rewards only explicit final-answer markup counts (the last ``\\boxed{}``/``\\fbox{}``
or an ``<answer>`` tag): regex fallbacks such as "the last number" or "the answer is X" let a
policy spray numbers and get paid (notes/math_checkers.md §2.4, §6.2.5), so they are opt-in.
"""

from __future__ import annotations

import re

MAX_TEXT = 200_000  # characters scanned from the end of a completion; a longer text is cut
MAX_ANSWER = 2_000  # an extracted answer longer than this is not an answer

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*(\{|\s)")
_ANSWER_TAG_RE = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)

# Opt-in fallbacks, by name. Each pattern's last match wins.
FALLBACKS: dict[str, re.Pattern] = {
    "final_answer": re.compile(r"final answer\s*(?:is|:)\s*:?\s*(.+?)\s*(?:\.\s|\.?$|I hope|\n)", re.I | re.M),
    "the_answer_is": re.compile(r"the answer is\s*:?\s*(.+?)\s*(?:\.\s|\.?$|\n)", re.I | re.M),
    "gsm8k": re.compile(r"^\s*####\s*(.+?)\s*$", re.M),
    "answer_line": re.compile(r"^\s*(?:A|Answer)\s*:\s*(.+?)\s*$", re.M),
}
ALL_FALLBACKS = tuple(FALLBACKS)

# Separators that may sit between boxes that together form one multi-part answer.
_JOINER_RE = re.compile(r"^[\s,;$.]*(?:,|;|\band\b|\bor\b|&|\\text\{\s*(?:and|or|,)\s*\})?[\s,;$]*$", re.I)


def _boxes(text: str) -> list[tuple[int, int, str | None]]:
    """Every ``\\boxed{...}`` as (start, end, content); content None when never closed."""
    out = []
    for m in _BOX_RE.finditer(text):
        if m.group(1) != "{":  # "\boxed 5": the next token is the content
            tok = re.match(r"\s*([^\s$]+)", text[m.end():])
            if tok:
                out.append((m.start(), m.end() + tok.end(), tok.group(1)))
            continue
        depth, i = 1, m.end()
        while i < len(text) and depth:
            c = text[i]
            if c == "\\":
                i += 2
                continue
            depth += (c == "{") - (c == "}")
            i += 1
        out.append((m.start(), i, text[m.end(): i - 1] if depth == 0 else None))
    return out


def _box_groups(text: str) -> list[str | None]:
    """The boxed answers in order; boxes that only a separator parts form one answer
    ("\\boxed{1}, \\boxed{2}" is "1, 2", so a spray of boxes fails against a single gold).
    A group with an empty or unclosed box is None."""
    groups: list[list[tuple]] = []
    for b in _boxes(text):
        if groups:
            between = text[groups[-1][-1][1]: b[0]]
            if len(between) <= 40 and _JOINER_RE.match(between):
                groups[-1].append(b)
                continue
        groups.append([b])
    out = []
    for g in groups:
        parts = [b[2] for b in g]
        out.append(None if any(p is None or not p.strip() for p in parts) else ", ".join(p.strip() for p in parts))
    return out


def _same_answer(a: str, b: str) -> bool:
    from rewards.math_num import parse_number

    if re.sub(r"\s|\$", "", a) == re.sub(r"\s|\$", "", b):
        return True
    na, nb = parse_number(a), parse_number(b)
    return na is not None and nb is not None and na.value == nb.value and na.percent == nb.percent


def _final(candidates: list[str | None], hedge: str) -> str | None:
    if not candidates or candidates[-1] is None:
        return None
    last = candidates[-1]
    if hedge == "reject" and any(c is not None and not _same_answer(c, last) for c in candidates[:-1]):
        return None  # several different final answers: a hedge earns nothing
    return last


def extract_answer(text, fallbacks: bool | tuple[str, ...] | list[str] = False, hedge: str = "reject") -> str | None:
    """The final answer of ``text``: the last ``\\boxed{}``/``\\fbox{}`` (balanced braces), else
    the last ``<answer>…</answer>``; then, only when asked, regex fallbacks (``True`` = all of
    ``ALL_FALLBACKS``: "final answer is", "the answer is", GSM8K ``####``, an ``A:``/``Answer:`` line).

    After a ``</think>`` only the text after it counts (when it holds an answer). Empty or
    unclosed boxes give None, so a truncated completion earns nothing. ``hedge="reject"``
    (default): several *different* boxed (or tagged) answers give None; ``"last"`` keeps the
    last one (a model correcting itself: "\\boxed{3}, wait, no: \\boxed{5}")."""
    if hedge not in ("reject", "last"):
        raise ValueError(f"hedge must be 'reject' or 'last', got {hedge!r}")
    if not isinstance(text, str) or not text:
        return None
    text = text[-MAX_TEXT:]
    if "</think>" in text:
        after = text.rsplit("</think>", 1)[1]
        if _BOX_RE.search(after) or _ANSWER_TAG_RE.search(after):
            text = after
    tags = _ANSWER_TAG_RE.findall(text)
    if tags:
        cands = []
        for t in tags:
            groups = _box_groups(t) if _BOX_RE.search(t) else [t.strip() or None]
            cands.append(groups[-1] if groups else None)
        ans = _final(cands, hedge)
    elif _BOX_RE.search(text):
        ans = _final(_box_groups(text), hedge)
    else:
        ans = None
        names = ALL_FALLBACKS if fallbacks is True else tuple(fallbacks or ())
        best = -1
        for name in names:
            pat, pos = FALLBACKS[name], 0
            # overlapping search: in "Final Answer: The final answer is 5" the inner phrase wins
            while (m := pat.search(text, pos)) is not None:
                if m.start() > best and m.group(1).strip():
                    best, ans = m.start(), m.group(1).strip()
                pos = m.start() + 1
        if ans is not None:
            ans = re.sub(r"^[\s*]+|[\s*]+$", "", ans) or None  # markdown bold
    if ans is not None and len(ans) > MAX_ANSWER:
        return None
    return ans
