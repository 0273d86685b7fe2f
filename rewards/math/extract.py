"""Find the final answer in a model's solution text.

For RL rewards only explicit final-answer markup counts (the last ``\\boxed{}``/``\\fbox{}``
or an ``<answer>`` tag): regex fallbacks such as "the last number" (Qwen2.5-Math's ``use_last_number``)
or "the answer is X" let a policy spray numbers and get paid, so they are opt-in.

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

from rewards.math.num import parse_number

MAX_TEXT = 200_000  # characters scanned from the end of a completion; a longer text is cut
MAX_ANSWER = 2_000  # an extracted answer longer than this is not an answer
MAX_ANCHORS = 64  # fallback anchors tried, from the end
MAX_CANDIDATES = 8  # more different final answers than this is a spray: no answer
MAX_LIST = 64  # boxes joined into one list answer

_INVISIBLE_RE = re.compile("[\u00ad\u200b-\u200f\u2060-\u2064\ufeff]")
_BOX_RE = re.compile(r"\\(?:boxed|fbox|framebox)\s*(\{|\s)")
# A completion that strikes out or hides text, or boxes in colour, is not graded: the box a reader
# sees may not be the one this extractor reads.
_HIDDEN_RE = re.compile(
    r"~~|<del>|<s>|<strike>|<!--|\\(?:cancel|bcancel|xcancel|sout|st|fcolorbox|colorbox|phantom)\b", re.I
)

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

# ---------------------------------------------------------------- what surrounds the final answer
# The text after an answer decides whether it stands. Taken back: "that's wrong", "No! It's 10".
# A phrase is not taken as a retraction when it is itself negated ("no mistake here", "not a typo").
_NOT = r"(?<!\bno )(?<!\bnot )(?<!\bnot a )(?<!\bno a )"
_RETRACT_RE = re.compile(
    r"\b(?:oops|nope|ugh|scratch that|on second thought|never ?mind|disregard|retract\w*|take (?:that|it) back"
    r"|upon reflection|let me (?:redo|re-do|start over|fix|revise)|" + _NOT + r"miscalculat\w*|" + _NOT + r"miscount\w*"
    r"|misread\w*|botch\w*|" + _NOT + r"typo|I (?:think I )?double-?counted"
    r"|" + _NOT + r"(?:mistake|error) (?:above|here|earlier)|there(?: i|')s an? (?:mistake|error)"
    r"|(?:that|this|it|which|that's|this is|it's|answer is|was|above|result) (?:(?:is|was) )?(?:\w+ )?"
    r"(?:wrong|incorrect"
    r"|not (?:right|correct))|(?:was|is) an? (?:error|mistake)"
    r"|(?:can'?t|cannot|isn'?t|is not) (?:be )?(?:right|correct)|(?:made|make) an? (?:mistake|error|slip)"
    r"|my (?:mistake|error|bad)|answer (?:is|was) not|not \$?-?\d+\$?,? but)\b|\bcorrection\s*[:,]|\bno\s*[!,]"
    r"|\bnein\b|\bfalsch\b|\bnon,|\bнет\b|неверно|不对|不，|错了"
    r"|其实|实际上|いや|違う|\ben fait\b|\bplutôt\b|\ben realidad\b",
    re.I,
)
# Hedged: another value is kept open ("maybe 9", "otherwise 1", "9 also works", "Or 9.").
_HEDGE_RE = re.compile(
    r"\b(?:maybe|perhaps|possibly|probably|depending|assuming|plausible|likewise|equally|uncertain"
    r"|not (?:sure|certain|confident)|unsure|(?:a|my) guess"
    r"|no idea|(?:don'?t|do not) know|(?:cannot|can'?t) (?:be )?determine\w*|(?:might|could|may) (?:also |equally )?be"
    r"|could (?:also|work)|also (?:works?|possible|valid|correct|an? answer|a solution|satisf\w*)"
    r"|works? (?:too|as well|also)"
    r"|other possibilit\w*|second (?:choice|option|answer)|runner-up|in the other case|case [a-z0-9]\b)\b"
    r"|other (?:convention|reading|interpretation|way of reading)"
    r"|(?:^|[.!?;\n(]\s*)(?:or|and)\b|(?:^|[.!?;\n(]\s*)(?:not|no)\s*[.!)]|\d\s*(?:or|\\lor)\s*\$?\s*-?\d|✅|✔️"
    r"|\bvielleicht\b|\boder\b|peut-être|\bou\b"
    r"|quiz[áa]s?\b|\bили\b|может|也可能|或者?|または|かも",
    re.I,
)
# A doubt: the answer stands only if the text comes back to it ("Wait, let me double-check:
# 4 + 5 = 9. Yes." keeps 9; "Wait, using the right triangle we get 10" does not).
_DOUBT_RE = re.compile(
    r"\b(?:wait|hmm+|err|re-?check\w*|reconsider\w*|re-?(?:calculat|comput|evaluat|examin|do)\w*|revis\w*"
    r"|let me (?:double-?check|check|verify|see|confirm)|is (?:that|this|it) (?:right|correct)|contradict\w*"
    r"|I mean|instead|(?:it|that|this|answer) is actually"
    r"|(?:correct|right|true|actual|real) (?:answer|value|count|total"
    r"|result|number))\b|(?:^|[.!?;:\n]\s*)actually\b|\bactually,|等等|应该|\battends?\b|\bespera\b",
    re.I,
)
# Another value attached to a condition ("\boxed{7} if n is even and 9 if n is odd", "(9 for odd
# n)"); "for n = 6 the condition fails" attaches none.
_CONDITIONAL_VALUE_RE = re.compile(
    r"(-?\d+(?:\.\d+)?)\s*\$?\s*(?:\\text\{\s*)?(?:if|when|whenever|for|except|in case|unless)\b", re.I
)
# Words that offer an alternative: they hedge when another value follows ("Alternatively, 9";
# "Alternatively, by symmetry one also gets 7" keeps 7).
_ALTERNATIVE_RE = re.compile(r"\b(?:though|although|alternatively|alternative|otherwise|else|unless|either)\b", re.I)
# A later statement of a value: it must be the answer ("So the final answer is nine.").
_STATED_RE = re.compile(r"(?:\b(?:is|are|be|equals?|gives?|get|gets|got|yields?|it's)\b"
                        r"|\b(?:answer|final|update|result|total|output)(?:\s+is|\s*:|\s*=)|\b(?:therefore|thus|hence|so)\b[^.!?\n=]{0,40}=)\s*\$?\s*"
                        r"(-?\d+(?:\.\d+)?(?:\s*/\s*\d+)?|" + "|".join(
                            ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                             "eleven", "twelve"]) + r")\b", re.I)
_WORD_NUMBERS = {
    w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve".split())
}
# "I now believe nine is right"
_STATED_BEFORE_RE = re.compile(r"(-?\d+(?:\.\d+)?|" + "|".join(
    "zero one two three four five six seven eight nine ten eleven twelve".split()) + r")\s+(?:is|was|would be)\s+"
    r"(?:right|correct|the (?:right |correct |true )?answer)\b", re.I)
_STATED_TEXT_RE = re.compile(
    r"(?:\b(?:answer|result|value|it)\s+(?:is|equals)|\bequals|=)\s*(.{1,200}?)\s*(?:[.;!?\n]|$)", re.I
)
_CONFIRM_RE = re.compile(r"\b(?:yes|that'?s right|that is right|correct|confirm(?:s|ed)|checks out|verified"
                         r"|(?:seems|looks) (?:right|correct|good))\b|✓|✔", re.I)
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?(?:\s*/\s*\d+)?")

# Right before the box, what its own line must not end with: a number, an operator or relation,
# an open group or a command ("2\boxed{7}", "x \ge \boxed{7}", "\frac{1}{\boxed{7}}"), or a word
# that makes it one of several values or denies it ("9 or \boxed{7}", "not \boxed{7}").
_BEFORE_END_RE = re.compile(
    r"(?:[\d+*/^_<>|~≤≥≠⩾⩽≧≦{\\-]|\\[a-zA-Z]+|\b(?:or|and|nor|not|n't|n’t|no|than|between|both|either|neither"
    r"|least|most|minus|plus|times|over|under|above|below|except|besides|maybe|perhaps|possibly|probably|multiple of"
    r"|divisor of|factor of|power of|root of|log of|box|boxes|boxed|wrong|incorrect|false)\b)$",
    re.I,
)
# In the same clause before the box (a colon does not end it: "Wrong answer: \boxed{7}"): a denial,
# a doubt or several values.
_BEFORE_CLAUSE_RE = re.compile(
    r"\b(?:not|never|isn'?t|isn’t|can'?t|can’t|cannot|false|wrong|incorrect|reject\w*|ruled? out|trap|naive\w*|fails?"
    r"|maybe|perhaps|possibly|probably|guess\w*|uncertain|either|neither|between|both|if|when|whenever|unless"
    r"|otherwise|except|or|vs|versus)\b|\\(?:neg|lnot|not|notin)(?![a-zA-Z])|[❌✗✘]", re.I)
# Right after the box, in its clause: a predicate that keeps the answer, or plain words (a unit, a
# noun: "\boxed{18} dollars") that are read as part of it; anything else ("\boxed{7} \times 10^3",
# "\boxed{7} or 9", "\boxed{7} is ruled out", "\boxed{7}?") makes it no answer.
_AFTER_OK_RE = re.compile(
    r"(?:is|are|was|would be|must be|should be|will be)\s+(?:indeed\s+|therefore\s+|thus\s+)?(?:the|our|my|your)\s+"
    r"(?:\w+\s+){0,3}(?:answer|value|number|result|solution|one|count|total|sum|n|x)|(?:as|which is)\s+(?:required"
    r"|desired|expected|claimed|stated)", re.I)
# A justification or a qualifier that offers no other value: "(since 4 + 5 = 9)", "for all n".
_QUALIFIER_RE = re.compile(r"\(|(?:for (?:all|every|each|any)|where|since|because|as|which|i\.e|e\.g)\b", re.I)
_WORDS_RE = re.compile(r"[A-Za-z]+(?:\s+[A-Za-z]+){0,3}")
_VERBS = {"is", "are", "was", "were", "be", "been", "does", "doesn", "did", "didn", "do", "don", "can", "cannot",
          "could", "would", "should", "must", "might", "may", "will", "fails", "fail", "failed", "that", "which",
          "since", "because", "if", "when", "or", "and", "not", "but", "yet", "so", "plus", "minus", "times"}


_END = r"(?<!\\)[.;!?](?=\s|$)|[。！？；]|\n"  # "\!" and "\;" are LaTeX spacing, not sentence ends


def _clause(text: str, end: int) -> str:
    """The clause that ends at ``end`` (at most 200 characters; "vs." is no sentence end)."""
    piece = re.sub(r"\b(vs|e\.g|i\.e|cf|approx)\.", r"\1", text[max(0, end - 200): end], flags=re.I)
    return re.split(_END + r"|,\s", piece)[-1]


def _table_rows(text: str, pos: int) -> int:
    """Data rows of the markdown table around ``pos`` (its header and separator not counted)."""
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    above = list(_table_lines(text[max(0, line_start - 4000): line_start].split("\n")[:-1][::-1]))[::-1]
    below = list(_table_lines(text[line_end + 1: line_end + 4000].split("\n"))) if line_end >= 0 else []
    table = above + [text[line_start: line_end if line_end >= 0 else len(text)]] + below
    return sum(not re.fullmatch(r"\s*\|[\s:|-]*", ln) for ln in table[1:])


def _table_lines(lines):
    for ln in lines:
        if not ln.lstrip().startswith("|"):
            return
        yield ln


def _neighbourhood(text: str, start: int, end: int, before: bool = True) -> str | None:
    """None when the final answer's own line makes it something else; else the plain words that
    follow it in its clause (a unit), possibly "". ``before=False`` skips the text before it
    (``hedge="last"``: an earlier answer may precede it)."""
    clause = _clause(text, start) if before else ""
    bare = re.sub(r"(?:\s|\$|\\\(|\\\[|\*\*|\\displaystyle|\\[,;:! ]|\{\})+$", "", clause)
    if clause.lstrip().startswith("|"):  # a table cell: "| answer | $\boxed{7}$ |"
        if _table_rows(text, start) > 1:
            return None  # one row of several: "| n even | 9 |" above "| n odd | \boxed{7} |"
        bare = bare.rstrip("| ")
    if _BEFORE_END_RE.search(bare) or _BEFORE_CLAUSE_RE.search(clause):
        return None
    after = re.split(_END + r"|,\s|</think(?:ing)?>|</answer>|</reasoning>", text[end: end + 200])[0]
    after = re.sub(r"^(?:\s|\$|\\\)|\\\]|\*\*|\\q?quad\b|\\[,;:! ]|</think(?:ing)?>|</answer>)+", "", after).strip()
    if not after or re.fullmatch(r"\|?\s*", after):  # nothing, or the end of a table cell
        return ""
    if _AFTER_OK_RE.match(after) or _QUALIFIER_RE.match(after):
        return ""  # the text after it is read by _fate
    words = _WORDS_RE.fullmatch(after)
    if words and not ({w.lower() for w in after.split()} & _VERBS):
        return after  # "\boxed{18} dollars": the unit belongs to the answer
    return None


def _last(pattern: re.Pattern, text: str, pos: int = 0):
    m = None
    for m in pattern.finditer(text, pos):
        pass
    return m


def _is(said: str, value) -> bool:
    """Whether a number said in the text (digits or a word) is ``value`` (a ``Num``)."""
    s = said.replace(" ", "").lower()
    if s in _WORD_NUMBERS:
        return _WORD_NUMBERS[s] == value.value
    n = parse_number(s)
    return n is not None and n.value == value.value


def _fate(tail: str, answer: str) -> str:
    """What the text after ``answer`` does to it: "stands", "retracted" (taken back, or a doubt
    or a statement that ends elsewhere) or "hedged" (another value kept open)."""
    if _HEDGE_RE.search(tail):
        return "hedged"
    if _RETRACT_RE.search(tail):
        return "retracted"
    doubt = _last(_DOUBT_RE, tail)
    value = parse_number(answer)
    if value is None and _ALTERNATIVE_RE.search(tail):
        return "hedged"
    if value is not None:  # a number: every value the text states afterwards must be it
        if not all(_is(m.group(1), value) for pat in (_STATED_RE, _STATED_BEFORE_RE, _CONDITIONAL_VALUE_RE)
                   for m in pat.finditer(tail)):
            return "retracted"
        alt = _ALTERNATIVE_RE.search(tail)
        if alt and not all(_is(m.group(0), value) for m in _NUMBER_RE.finditer(tail, alt.start())):
            return "hedged"  # "Alternatively, 9"
        if doubt is not None and not any(True for _ in _STATED_RE.finditer(tail, doubt.start())):
            return "stands" if _CONFIRM_RE.search(tail, doubt.start()) else "retracted"  # a doubt left open
        return "stands"
    squash = lambda t: re.sub(r"\s|\$|\\boxed|[{}*]", "", t)  # noqa: E731
    for m in _STATED_TEXT_RE.finditer(tail):  # any other answer: a later "the answer is X" must say it
        if squash(m.group(1)) != squash(answer):
            return "retracted"
    if doubt is not None:
        return "stands" if _CONFIRM_RE.search(tail, doubt.start()) else "retracted"
    return "stands"


_BRACE_TOKEN_RE = re.compile(r"\\.|[{}]", re.S)


def _brace_matches(text: str) -> dict[int, int]:
    """Position of every ``{`` -> position of its ``}``, in one pass (escaped braces skipped)."""
    out, stack = {}, []
    for m in _BRACE_TOKEN_RE.finditer(text):
        c = m.group()
        if c == "{":
            stack.append(m.start())
        elif c == "}" and stack:
            out[stack.pop()] = m.start()
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


def _candidates(text: str, fallbacks, strict: bool = True) -> list[tuple[str | None, int, int]]:
    """The answer candidates of ``text`` in order, each with where it starts and ends."""
    tags = _answer_tags(text)
    if tags:
        out = []
        for tag_start, start, end, tag_end in tags:
            inner = text[start:end]
            if not _BOX_RE.search(inner):
                out.append((inner.strip() or None, tag_start, tag_end))
                continue
            # a box inside the tag is held to the same rules as one outside it
            groups = _box_groups(inner)
            ans, b_start, b_end = groups[-1] if groups else (None, 0, 0)
            if strict and ans is not None:
                if len(groups) > 1 or _fate(inner[b_end:], ans) != "stands" \
                        or _neighbourhood(inner, b_start, b_end) != "":
                    ans = None
            out.append((ans, tag_start, tag_end))
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
    if not isinstance(text, str) or not text or len(text) > MAX_TEXT:
        return []  # a completion longer than MAX_TEXT is no answer (it is not cut: the cut could hide a hedge)
    text = _INVISIBLE_RE.sub("", text)  # "n\u200bot" is "not"
    low = text.lower()
    opened = max(low.rfind("<think>"), low.rfind("<thinking>"), low.rfind("<reasoning>"))
    close_at = max(low.rfind("</think>"), low.rfind("</thinking>"), low.rfind("</reasoning>"))
    if opened > close_at:
        return []  # still thinking: nothing in an unclosed <think> is a final answer
    if strict and low.count("</think") > 1:
        return []  # two ends of thinking: which part is the answer is not defined
    if close_at >= 0:
        after = text[low.index(">", close_at) + 1:]
        if _BOX_RE.search(after) or "<answer>" in after.lower():
            text = after
    if strict and (_HIDDEN_RE.search(text) or text.lower().rfind("<answer>") > text.lower().rfind("</answer>")):
        return []  # struck-out or hidden text; an <answer> opened after the last one closed
    cands = _candidates(text, fallbacks, strict)
    if not strict:
        if not cands or cands[-1][0] is None or len(cands[-1][0]) > MAX_ANSWER:
            return []
        return [cands[-1][0]] if hedge == "last" else _distinct(cands)
    # an answer taken back before the next one ("\boxed{9}. Wait, that's wrong ... \boxed{10}")
    # is no candidate; the last one taken back leaves no answer at all
    if len({c[0] for c in cands}) > MAX_CANDIDATES * MAX_CANDIDATES:
        return []  # a spray: far more different boxes than answers could ever be distinct
    last = cands[-1][0] if cands else None
    nexts = [c[1] for c in cands[1:]] + [len(text)]
    # an earlier box with the final box's text cannot change the answer: its fate is not read
    # (a repetition loop of one box stays linear and fast)
    fates = [("stands" if c[0] is None or (c is not cands[-1] and (hedge == "last" or c[0] == last))
              else _fate(text[c[2]: nxt], c[0])) for c, nxt in zip(cands, nexts)]
    if "hedged" in fates:
        return []
    kept = [c for c, fate in zip(cands, fates) if fate == "stands"]
    if not kept or kept[-1] is not cands[-1] or cands[-1][0] is None or len(cands[-1][0]) > MAX_ANSWER:
        return []
    start = cands[-1][1]
    marked = text.startswith(("\\boxed", "\\fbox", "\\framebox"), start) or text[start:].lower().startswith("<answer>")
    # a fallback's regex delimits its answer itself
    unit = _neighbourhood(text, start, cands[-1][2], before=hedge != "last") if marked else ""
    if unit is None:
        return []
    if unit:  # "\boxed{18} dollars": the words after the box are part of the answer
        kept[-1] = (f"{kept[-1][0]} \\text{{ {unit}}}", kept[-1][1], kept[-1][2])
    return [kept[-1][0]] if hedge == "last" else _distinct(kept)


def _distinct(cands) -> list[str]:
    """The distinct answers of the candidates, the last one last; [] for a spray."""
    out, seen = [cands[-1][0]], {cands[-1][0]}
    for c, _, _ in reversed(cands[:-1]):
        if c is None or c in seen:
            continue
        seen.add(c)
        if len(c) <= MAX_ANSWER and not any(_same_answer(c, o) for o in out):
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
