"""Find the final answer in a model's solution text.

For RL rewards only explicit final-answer markup counts (the last ``\\boxed{}``/``\\fbox{}``
or an ``<answer>`` tag): regex fallbacks such as "the last number" or "the answer is X" let a
policy spray numbers and get paid (notes/math_checkers.md §2.4, §6.2.5), so they are opt-in.

A final answer must be final: a box inside a ``<think>`` that never closes, or one followed by
a retraction ("Wait, that's wrong", "Actually, it is 10"), is no answer.

Everything here runs in the trainer's own process, so every step is linear in the text: braces
are matched in one pass, tags are paired with one scan, and each fallback pattern is tried at a
bounded number of anchor positions with a bounded group (a repetition loop of 64 KB of
``\\boxed{`` must not cost seconds).
"""

from __future__ import annotations

import bisect
import re

from rewards.math_num import parse_number

MAX_TEXT = 200_000  # characters scanned from the end of a completion; a longer text is cut
MAX_ANSWER = 2_000  # an extracted answer longer than this is not an answer
MAX_ANCHORS = 64  # fallback anchors tried, from the end
MAX_CANDIDATES = 8  # more different final answers than this is a spray: no answer
MAX_LIST = 64  # boxes joined into one list answer

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*(\{|\s)")

# Opt-in fallbacks, by name: (anchor, pattern matched at the anchor). The last match wins.
_G = r"(.{1,%d}?)" % MAX_ANSWER
FALLBACKS: dict[str, tuple[re.Pattern, re.Pattern]] = {
    "final_answer": (re.compile(r"final answer", re.I),
                     re.compile(r"final answer\s*(?:is|:)\s*:?\s*" + _G + r"\s*(?:\.\s|\.?$|I hope|\n)", re.I | re.M)),
    "the_answer_is": (re.compile(r"the answer is", re.I),
                      re.compile(r"the answer is\s*:?\s*" + _G + r"\s*(?:\.\s|\.?$|\n)", re.I | re.M)),
    "gsm8k": (re.compile(r"^[ \t]*####", re.M), re.compile(r"[ \t]*####[ \t]*" + _G + r"[ \t]*$", re.M)),
    "answer_line": (re.compile(r"^[ \t]*(?:A|Answer)[ \t]*:", re.M),
                    re.compile(r"[ \t]*(?:A|Answer)[ \t]*:[ \t]*" + _G + r"[ \t]*$", re.M)),
}
ALL_FALLBACKS = tuple(FALLBACKS)

# Separators that may sit between boxes that together form one multi-part answer.
_JOINER_RE = re.compile(r"^[\s,;$.]*(?:,|;|\band\b|\bor\b|&|\\text\{\s*(?:and|or|,)\s*\})?[\s,;$]*$", re.I)

# What follows a final answer decides whether it stands.
# Taken back: "that's wrong", "I take that back", "No! It's 10".
_RETRACT_RE = re.compile(
    r"\b(?:oops|nope|scratch that|on second thought|never ?mind|disregard|retract\w*|take (?:that|it) back"
    r"|upon reflection|let me (?:redo|re-do|start over|fix|revise)|miscalculat\w*|miscount\w*|misread\w*|typo"
    r"|I (?:think I )?double-?counted|(?:mistake|error) (?:above|here|earlier)|there(?: i|')s an? (?:mistake|error)"
    r"|(?:that|this|it|which|that's|this is|it's|answer is|was|above|result) (?:(?:is|was) )?(?:\w+ )?(?:wrong|incorrect"
    r"|not (?:right|correct))|(?:was|is) an? (?:error|mistake)"
    r"|(?:can'?t|cannot|isn'?t|is not) (?:be )?(?:right|correct)|(?:made|make) an? (?:mistake|error|slip)"
    r"|my (?:mistake|error|bad))\b|\bcorrection\s*[:,]|\bno\s*[!,]|不对|错了|其实|实际上|\ben fait\b|\bplutôt\b|\ben realidad\b",
    re.I,
)
# Hedged: another value is kept open ("maybe 9", "otherwise 1", "though 9 is also plausible").
_HEDGE_RE = re.compile(r"\b(?:maybe|perhaps|possibly|probably|though|although|alternatively|otherwise|else|unless"
                       r"|depending|assuming|plausible|in the other case|not sure|unsure|not confident|(?:a|my) guess"
                       r"|no idea|(?:don'?t|do not) know|(?:cannot|can'?t) (?:be )?determine\w*|(?:might|could|may) (?:also )?be)\b",
                       re.I)
# Right next to the box, in the same clause: "\boxed{7} or 9", "x \ne \boxed{7}", "-\boxed{7}",
# "The answer is not \boxed{7}", "Is it \boxed{7}?", "\boxed{7} is incorrect."
_BEFORE_RE = re.compile(r"\b(?:not|cannot|can'?t|isn'?t|never|false|maybe|perhaps|possibly|probably|might|guess)\b"
                        r"|\bat\s+(?:least|most)\b|(?:[<>≠≤≥-]|\\(?:ne|neq|not|ge|le|geq|leq|geqslant|leqslant|gt|lt|pm|mp)"
                        r"(?![a-zA-Z]))[\s$({]*$", re.I)
_AFTER_RE = re.compile(r"^[\s$)\]}]*(?:[/|+?]|-\s*\d|\\(?:pm|mp|lor|vee)\b)|\bor\b|\\(?:lor|vee|pm|mp)\b|\bat\s+(?:least|most)\b"
                       r"|\?|\b(?:not|incorrect|wrong|false)\b", re.I)
# A doubt: the answer stands only if the text comes back to it ("Wait, let me double-check:
# 4 + 5 = 9. Yes." keeps 9; "Wait, using the right triangle we get 10" does not).
_DOUBT_RE = re.compile(
    r"\b(?:wait|hmm+|err|re-?check\w*|reconsider\w*|re-?(?:calculat|comput|evaluat|examin|do)\w*|revis\w*"
    r"|let me (?:double-?check|check|verify|see|confirm)|is (?:that|this|it) (?:right|correct)|contradict\w*"
    r"|I mean|instead|(?:it|that|this|answer) is actually)\b"
    r"|(?:^|[.!?;:\n]\s*)actually\b|\bactually,|等等|应该|\battends?\b|\bespera\b",
    re.I,
)
# A condition or a new statement of the answer: it must agree with the boxed value.
_STATEMENT_RE = re.compile(r"\b(?:if|when|whenever|except|for(?!\s+(?:all|every|each|any)\b)|it is|it's"
                           r"|should (?:be|have been|read)|therefore|thus|hence|so|final|update|output|result)\b"
                           r"|\banswer(?:\s+is\b|\s*:)|答案", re.I)
_CONFIRM_RE = re.compile(r"\b(?:yes|that'?s right|that is right|is correct|confirm(?:s|ed)|checks out|verified"
                         r"|(?:seems|looks) (?:right|correct|good))\b|✓|✔", re.I)
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?(?:\s*/\s*\d+)?")
_STATED_RE = re.compile(r"(?:answer(?:\s+is|\s*:)|it is|it's)\s*(.{1,200}?)\s*(?:[.;!?\n]|$)", re.I)


def _clause(text: str, start: int, end: int) -> str:
    """The text of the same clause between ``start`` and ``end`` (at most 60 characters)."""
    piece = text[max(start, end - 60): end] if start < end else ""
    return re.split(r"[.,;:!\n](?=\s|$)|\n", piece)[-1]


def _alone(text: str, start: int, end: int) -> bool:
    """Nothing in the final answer's own clause negates, bounds or hedges it."""
    before = _clause(text, 0, start)
    after = re.split(r"[.;!\n](?=\s|$)|\n", text[end: end + 60])[0]
    return not (_BEFORE_RE.search(before) or _AFTER_RE.search(after))


def _last(pattern: re.Pattern, text: str, pos: int = 0):
    m = None
    for m in pattern.finditer(text, pos):
        pass
    return m


def _fate(tail: str, answer: str) -> str:
    """What the text after ``answer`` does to it: "stands", "retracted" (taken back, or a doubt
    or statement that ends elsewhere) or "hedged" (another value kept open)."""
    if _HEDGE_RE.search(tail):
        return "hedged"
    if _RETRACT_RE.search(tail):
        return "retracted"
    doubt, stated = _last(_DOUBT_RE, tail), _last(_STATEMENT_RE, tail)
    if doubt is None and stated is None:
        return "stands"
    value = parse_number(answer)
    if value is not None:  # a number: the last number the text says must be the answer
        said = _last(_NUMBER_RE, tail)
        if said is not None:
            n = parse_number(said.group(0).replace(" ", ""))
            return "stands" if n is not None and n.value == value.value else "retracted"
        if doubt is None or _CONFIRM_RE.search(tail, doubt.start()):
            return "stands"
        return "retracted"  # a doubt left open
    if doubt is not None and (stated is None or doubt.start() > stated.start()):
        return "stands" if _CONFIRM_RE.search(tail, doubt.start()) else "retracted"
    m = _STATED_RE.search(tail, stated.start())
    if m is None:
        return "stands"  # a condition on a symbolic answer ("for x > 0")
    squash = lambda t: re.sub(r"\s|\$|\\boxed|[{}*]", "", t)  # noqa: E731
    return "stands" if squash(m.group(1)) == squash(answer) else "retracted"


def _brace_matches(text: str) -> dict[int, int]:
    """Position of every ``{`` -> position of its ``}``, in one pass (escaped braces skipped)."""
    out, stack, i, n = {}, [], 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            out[stack.pop()] = i
        i += 1
    return out


def _boxes(text: str) -> list[tuple[int, int, str | None]]:
    """Every ``\\boxed{...}`` as (start, end, content); content None when never closed."""
    out, matches = [], None
    for m in _BOX_RE.finditer(text):
        if out and m.start() < out[-1][1]:
            continue  # \boxed{\boxed{7}}: the outer box is the answer
        if m.group(1) != "{":  # "\boxed 5": the next token is the content
            tok = re.compile(r"\s*([^\s$]+)").match(text, m.end())
            if tok:
                out.append((m.start(), tok.end(), tok.group(1)))
            continue
        if matches is None:
            matches = _brace_matches(text)
        close = matches.get(m.end() - 1)
        out.append((m.start(), len(text), None) if close is None else (m.start(), close + 1, text[m.end(): close]))
    return out


def _box_groups(text: str, offset: int = 0) -> list[tuple[str | None, int, int]]:
    """The boxed answers in order, each with where it starts and ends; boxes that only a
    separator parts form one answer ("\\boxed{1}, \\boxed{2}" is "1, 2", so a spray of boxes
    fails against a single gold). A group with an empty or unclosed box is None."""
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
        if len(parts) > MAX_LIST or any(p is None or not p.strip() for p in parts):
            ans = None
        else:  # "\boxed{3} or \boxed{3}" is one answer, "\boxed{1}, \boxed{2}" a list
            distinct: list[str] = []
            for p in parts:
                if not any(_same_answer(p.strip(), d) for d in distinct):
                    distinct.append(p.strip())
            ans = ", ".join(distinct)
        out.append((ans, g[0][0] + offset, g[-1][1] + offset))
    return out


def _answer_tags(text: str) -> list[tuple[int, int, int, int]]:
    """Every ``<answer>…</answer>`` as (tag start, content start, content end, tag end), paired
    as the non-greedy regex would pair them, in one scan."""
    low = text.lower()
    opens = [m.end() for m in re.finditer("<answer>", low)]
    closes = [m.start() for m in re.finditer("</answer>", low)]
    out, pos = [], 0
    for o in opens:
        if o < pos:
            continue
        k = bisect.bisect_left(closes, o)
        if k == len(closes):
            break
        out.append((o - len("<answer>"), o, closes[k], closes[k] + len("</answer>")))
        pos = closes[k] + len("</answer>")
    return out


def _same_answer(a: str, b: str) -> bool:
    if re.sub(r"\s|\$", "", a) == re.sub(r"\s|\$", "", b):
        return True
    na, nb = parse_number(a), parse_number(b)
    return na is not None and nb is not None and na.value == nb.value and na.percent == nb.percent


def _fallback(text: str, names) -> tuple[str, int, int] | None:
    best = None
    for name in names:
        anchor, pat = FALLBACKS[name]
        starts = [m.start() for m in anchor.finditer(text)]
        for s in reversed(starts[-MAX_ANCHORS:]):
            if best is not None and s <= best[0]:
                break
            m = pat.match(text, s)
            if m and m.group(1).strip():
                best = (s, m)
                break
    if best is None:
        return None
    m = best[1]
    ans = re.sub(r"^[\s*]+|[\s*]+$", "", m.group(1))  # markdown bold
    return (ans, m.start(), m.end()) if ans else None


def _candidates(text: str, fallbacks) -> list[tuple[str | None, int, int]]:
    """The answer candidates of ``text`` in order, each with where it starts and ends."""
    tags = _answer_tags(text)
    if tags:
        out = []
        for tag_start, start, end, tag_end in tags:
            inner = text[start:end]
            groups = _box_groups(inner) if _BOX_RE.search(inner) else [(inner.strip() or None, 0, 0)]
            out.append((groups[-1][0] if groups else None, tag_start, tag_end))
        # a box outside the tags is an answer too: "<answer>7</answer> \boxed{9}" is a hedge
        spans = [(t[0], t[3]) for t in tags]
        for box in _box_groups(text):
            if not any(a <= box[1] < b for a, b in spans):
                out.append(box)
        return sorted(out, key=lambda c: c[1])
    if _BOX_RE.search(text):
        return _box_groups(text)
    names = ALL_FALLBACKS if fallbacks is True else tuple(fallbacks or ())
    found = _fallback(text, names)
    return [found] if found else []


def extract_answers(text, fallbacks: bool | tuple[str, ...] | list[str] = False, hedge: str = "reject",
                    strict: bool = True) -> list[str]:
    """Every distinct final answer ``text`` gives, last one last; [] when it gives none.

    With ``hedge="reject"`` a completion that boxes several different strings returns them all,
    so that a caller can compare *values* (``\\boxed{2\\sqrt2}`` … ``\\boxed{\\sqrt8}`` is one
    answer; ``\\boxed{3}`` … ``\\boxed{5}`` is a hedge); ``"last"`` keeps only the last one.
    ``strict=False`` is for a trusted text (a dataset's reference solution): what follows an answer
    and its own clause are not read for retractions and hedges."""
    if hedge not in ("reject", "last"):
        raise ValueError(f"hedge must be 'reject' or 'last', got {hedge!r}")
    if not isinstance(text, str) or not text:
        return []
    text = text[-MAX_TEXT:]
    low = text.lower()
    opened = max(low.rfind("<think>"), low.rfind("<thinking>"))
    close_at = max(low.rfind("</think>"), low.rfind("</thinking>"))
    if opened > close_at:
        return []  # still thinking: nothing in an unclosed <think> is a final answer
    if close_at >= 0:
        after = text[low.index(">", close_at) + 1:]
        if _BOX_RE.search(after) or "<answer>" in after.lower():
            text = after
    cands = _candidates(text, fallbacks)
    if not strict:
        if not cands or cands[-1][0] is None or len(cands[-1][0]) > MAX_ANSWER:
            return []
        return [cands[-1][0]] if hedge == "last" else _distinct(cands)
    # an answer taken back before the next one ("\boxed{9}. Wait, that's wrong ... \boxed{10}")
    # is no candidate; the last one taken back leaves no answer at all
    nexts = [c[1] for c in cands[1:]] + [len(text)]
    fates = [("stands" if c[0] is None else _fate(text[c[2]: nxt], c[0])) for c, nxt in zip(cands, nexts)]
    if "hedged" in fates:
        return []
    kept = [c for c, fate in zip(cands, fates) if fate == "stands"]
    if not kept or kept[-1] is not cands[-1] or cands[-1][0] is None or len(cands[-1][0]) > MAX_ANSWER:
        return []
    if not _alone(text, cands[-1][1], cands[-1][2]):
        return []
    cands = kept
    return [cands[-1][0]] if hedge == "last" else _distinct(cands)


def _distinct(cands) -> list[str]:
    """The distinct answers of the candidates, the last one last; [] for a spray."""
    out = [cands[-1][0]]
    for c, _, _ in reversed(cands[:-1]):
        if c is not None and len(c) <= MAX_ANSWER and not any(_same_answer(c, o) for o in out):
            out.insert(0, c)
            if len(out) > MAX_CANDIDATES:
                return []
    return out


def extract_answer(text, fallbacks: bool | tuple[str, ...] | list[str] = False, hedge: str = "reject",
                   strict: bool = True) -> str | None:
    """The final answer of ``text``: the last ``\\boxed{}``/``\\fbox{}`` (balanced braces), else
    the last ``<answer>…</answer>``; then, only when asked, regex fallbacks (``True`` = all of
    ``ALL_FALLBACKS``: "final answer is", "the answer is", GSM8K ``####``, an ``A:``/``Answer:`` line).

    After a ``</think>`` only the text after it counts (when it holds an answer); inside a
    ``<think>`` that never closes nothing counts. Empty or unclosed boxes give None, so a
    truncated completion earns nothing, and so does an answer followed by a retraction.
    ``hedge="reject"`` (default): several different boxed (or tagged) strings give None (the
    reward compares their values instead: see ``extract_answers``); ``"last"`` keeps the last one
    (a model correcting itself: "\\boxed{3}, wait, no: \\boxed{5}")."""
    found = extract_answers(text, fallbacks=fallbacks, hedge=hedge, strict=strict)
    return found[0] if len(found) == 1 else None
