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


def _final_box(text: str) -> str | None:
    boxes = _boxes(text)
    if not boxes:
        return None
    # The last box, joined with boxes right before it that only a separator parts
    # ("\boxed{1}, \boxed{2}" is the answer "1, 2"; a hedge then fails to match a single gold).
    group = [boxes[-1]]
    for prev in reversed(boxes[:-1]):
        between = text[prev[1]: group[0][0]]
        if len(between) > 40 or not _JOINER_RE.match(between):
            break
        group.insert(0, prev)
    parts = [b[2] for b in group]
    if any(p is None or not p.strip() for p in parts):
        return None
    return ", ".join(p.strip() for p in parts)


def extract_answer(text, fallbacks: bool | tuple[str, ...] | list[str] = False) -> str | None:
    """The final answer of ``text``: last ``\\boxed{}``/``\\fbox{}`` (balanced braces), else the last
    ``<answer>…</answer>``; then, only when asked, regex fallbacks (``True`` = all of
    ``ALL_FALLBACKS``: "final answer is", "the answer is", GSM8K ``####``, an ``A:``/``Answer:`` line).
    Empty or unclosed boxes give None, so a truncated completion earns nothing."""
    if not isinstance(text, str) or not text:
        return None
    text = text[-MAX_TEXT:]
    tags = _ANSWER_TAG_RE.findall(text)
    boxed_in = tags[-1] if tags and _BOX_RE.search(tags[-1]) else text
    if _BOX_RE.search(boxed_in):
        ans = _final_box(boxed_in)
    elif tags:
        ans = tags[-1].strip() or None
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
