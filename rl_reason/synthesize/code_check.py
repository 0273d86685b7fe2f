"""Checking a teacher-written Python problem: its reference must pass its tests, and its tests must be
strong enough to fail broken programs (trivial stubs and AST mutants of the reference).

A problem is a training signal only if its tests separate right from wrong programs: tests that accept
``return None`` would reward a policy for writing nothing. So besides running the reference, every stub
must fail and at least ``min_kill_rate`` of the mutants must fail (mutation testing: tests that cannot
tell small bugs from the reference would reward them).

The teacher's reply has a fixed format (``prompts.CODE_FORMAT``)::

    Problem: <statement>
    Solution:
    ```python
    def name(args): ...
    ```
    Tests:
    ```python
    assert name(...) == ...
    ```
"""

from __future__ import annotations

import ast
import builtins
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

# 0.5 of the mutants: some mutants are equivalent to the reference (``x < y`` vs ``x <= y`` where x == y
# cannot happen, a constant in a table row no input reaches ...) and no test can fail them, so 1.0 would
# drop good problems. Measured: the careful tests of the 32 shipped seeds kill 75-100% of the sampled
# mutants (median 100%); type-only tests and one-case tests that every stub fails kill 17-42% (one
# informative case can still kill 60-100%, and is then a fair, if thin, test). Half sits between the two.
DEFAULT_MIN_KILL_RATE = 0.5
MAX_MUTANTS = 12
_SECTION = r"^[ \t#*_>]*{}[ \t*_]*:[ \t*_]*"  # "Problem:", "**Problem:**", "## Problem:"
_PROBLEM = re.compile(_SECTION.format("problem"), re.I | re.M)
_SOLUTION = re.compile(_SECTION.format("solution"), re.I | re.M)
_TESTS = re.compile(_SECTION.format("tests?"), re.I | re.M)
_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.I | re.S)
# Ways test code can end the judge before its last line; the harness never passes them, but a clear reason
# beats "reference fails its tests" (SystemExit) or "sandbox error" (os._exit).
_EXITS = {"exit", "quit", "_exit", "abort", "SystemExit"}
# The judge holds the program's source (sys._getframe(1).f_locals reaches it): tests could grade the text,
# which no policy can match. Test code for a pure function needs none of these names (or attributes).
_INTROSPECTION = {"eval", "exec", "compile", "globals", "locals", "vars", "open", "__import__", "__builtins__",
                  "builtins", "gc", "inspect", "ctypes"}
_INTROSPECTION_ATTRS = {"_getframe", "f_back", "f_locals", "f_globals", "tb_frame", "_current_frames",
                        "settrace", "setprofile", "__globals__", "__code__", "__builtins__", "__closure__"}

@dataclass
class CodeProblem:
    question: str  # the statement plus the signature sentence: what a policy is shown
    entry_point: str
    reference: str  # the solution, example usage removed
    tests: str  # assert lines (MBPP style) calling ``entry_point``

    @property
    def spec(self) -> dict:
        """The tests as ``rewards.code.run_tests`` (and a dataset's ``tests`` column) takes them."""
        return {"type": "assert", "code": self.tests, "entry_point": self.entry_point}


@dataclass
class CodeVerdict:
    kept: bool
    reason: str
    reference_passed: bool = False
    stubs_total: int = 0  # counts are of the runs made: 0 when the reference failed first
    stubs_killed: int = 0
    mutants_total: int = 0
    mutants_killed: int = 0
    survivors: list[str] = field(default_factory=list)  # labels of the broken variants the tests passed
    seconds: float = 0.0  # wall time of the sandbox runs


# ---- parsing the teacher's reply -------------------------------------------------------------------
def signature_sentence(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    ret = f" -> {ast.unparse(fn.returns)}" if fn.returns is not None else ""
    return f"Write a Python function `{fn.name}({ast.unparse(fn.args)}){ret}`."


def _top_functions(tree: ast.Module) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    return {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _loaded_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _bound_names(node: ast.AST) -> set[str]:
    """Names the code binds anywhere (def, class, assignment, import, parameter, for, with, global ...)."""
    out = set()
    for n in ast.walk(node):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            out.add(n.id)
        elif isinstance(n, ast.alias):
            out.add(n.asname or n.name.split(".")[0])
        elif isinstance(n, ast.arg):
            out.add(n.arg)
        elif isinstance(n, (ast.Global, ast.Nonlocal)):
            out.update(n.names)
    return out


def _top_level_names(tree: ast.Module) -> set[str]:
    """What the module defines for others to use, except plain ``import m``: the judge imports a module the
    tests use as ``m.attr`` by itself, whatever the program imports."""
    out = set()
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
        elif not isinstance(n, ast.Import):
            out |= _bound_names(n)
    return out


def _is_main_guard(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "__name__" in _loaded_names(node.test)


def _strip_usage(tree: ast.Module, entry: str) -> ast.Module:
    """The solution without its example usage: ``if __name__ == "__main__"`` blocks (the program runs as
    ``__main__``: an ``input()`` there would break it) and top-level code that runs the entry point (or a
    function that calls it). Such code would run at import, so a stub or mutant could fail by it
    whatever the tests say (a self-check ``assert f(2) == 4`` in the solution would make any tests look
    strong)."""
    defs = {n.name: _loaded_names(n) for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    reach, grew = {entry}, True
    while grew:  # the definitions that (transitively) use the entry point
        new = {name for name, used in defs.items() if used & reach} - reach
        reach |= new
        grew = bool(new)
    body = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                                   ast.Import, ast.ImportFrom))
            or not (_is_main_guard(n) or _loaded_names(n) & reach)]
    return ast.Module(body=body, type_ignores=[])


def _test_problems(tests: ast.Module, entry: str, reference: ast.Module) -> str | None:
    """Why these tests cannot judge ``entry`` by their text alone, or None."""
    if not any(isinstance(n, ast.Assert) for n in ast.walk(tests)):
        return "tests contain no assert"
    if entry not in _loaded_names(tests):
        return f"tests never call {entry}"
    if entry in _bound_names(tests):
        return f"tests redefine {entry}"
    # A policy is told only the entry point's signature: its program would not define the solution's
    # helpers, classes, constants or from-imports, so tests that use them would fail a right answer.
    borrowed = sorted((_loaded_names(tests) - _bound_names(tests) - {entry}) & _top_level_names(reference))
    if borrowed:
        return f"tests use {', '.join(borrowed)} from the solution"
    imports = [n for n in ast.walk(tests) if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = _loaded_names(tests) | {a.name.split(".")[0] for n in imports for a in n.names} \
        | {n.module.split(".")[0] for n in imports if isinstance(n, ast.ImportFrom) and n.module}
    attrs = {n.attr for n in ast.walk(tests) if isinstance(n, ast.Attribute)}
    if (names | attrs) & _EXITS:
        return "tests exit early"
    if names & _INTROSPECTION or attrs & _INTROSPECTION_ATTRS:
        return "tests use introspection: " + ", ".join(sorted(names & _INTROSPECTION | attrs & _INTROSPECTION_ATTRS))
    # pytest style: asserts only inside functions nothing calls (the harness calls only check(candidate))
    top_asserts = [n for n in tests.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                   and any(isinstance(m, ast.Assert) for m in ast.walk(n))]
    called = {n.func.id for n in ast.walk(tests) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    if not top_asserts and "check" not in _top_functions(tests) and not called & set(_top_functions(tests)):
        return "tests define test functions that nothing calls"
    return None


def parse_code_problem(text: str) -> CodeProblem | str:
    """The problem in a teacher's reply, or a short reason why it is unusable."""
    text = text or ""
    # markers are looked for outside code fences: a "# Tests:" comment in the solution is not the section
    outside = re.sub(r"```.*?(?:```|\Z)", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)
    p, s, t = _PROBLEM.search(outside), _SOLUTION.search(outside), _TESTS.search(outside)
    if p is None:
        return "no Problem: section"
    if s is None or s.start() < p.end():
        return "no Solution: section after the problem"
    if t is None or t.start() < s.end():
        return "no Tests: section after the solution"
    statement = text[p.end():s.start()].strip()
    if not statement:
        return "empty problem statement"
    sol, tst = _FENCE.search(text[s.end():t.start()]), _FENCE.search(text[t.end():])
    if sol is None:
        return "no fenced solution code"
    if tst is None:
        return "no fenced test code"
    try:
        sol_tree = ast.parse(sol.group(1))
    except (SyntaxError, ValueError) as e:
        return f"solution does not parse: {type(e).__name__}: {e}"
    try:
        tests_tree = ast.parse(tst.group(1))
    except (SyntaxError, ValueError) as e:
        return f"tests do not parse: {type(e).__name__}: {e}"
    names = [n.name for n in sol_tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not names:
        return "solution has no top-level function"
    used = sorted(set(names) & _loaded_names(tests_tree))
    if not used:
        return "tests never call a solution function"
    if len(used) > 1:  # a policy would be asked for one function; which?
        return f"entry point ambiguous: tests call {', '.join(used)}"
    entry = used[0]
    if names.count(entry) > 1:
        return f"solution defines {entry} twice"
    if hasattr(builtins, entry):  # the policy's own code would shadow the builtin it may need
        return f"entry point {entry} shadows a builtin"
    if isinstance(_top_functions(sol_tree)[entry], ast.AsyncFunctionDef):
        return f"entry point {entry} is async"
    why = _test_problems(tests_tree, entry, sol_tree)
    if why:
        return why
    reference = ast.unparse(_strip_usage(sol_tree, entry)) + "\n"
    sentence = signature_sentence(_top_functions(sol_tree)[entry])
    question = statement if statement.endswith(sentence) else f"{statement}\n\n{sentence}"
    return CodeProblem(question=question, entry_point=entry, reference=reference, tests=tst.group(1).strip() + "\n")


def render_code_problem(problem: CodeProblem) -> str:
    """The teacher's reply format for ``problem`` (parsing it gives the problem back)."""
    return (f"Problem: {problem.question}\nSolution:\n```python\n{problem.reference.strip()}\n```\n"
            f"Tests:\n```python\n{problem.tests.strip()}\n```\n")


# ---- broken variants ---------------------------------------------------------------------------------
def _entry_def(tree: ast.Module, entry: str) -> ast.FunctionDef | ast.AsyncFunctionDef:
    fn = _top_functions(tree).get(entry)
    if fn is None:
        raise ValueError(f"the reference defines no top-level function {entry!r}")
    return fn


def _stubs(reference: str, entry: str) -> list[tuple[str, str]]:
    """The reference with only the entry point's body replaced: helpers, imports and constants stay, so a
    stub fails only when the tests look at what the entry point does (tests that check a helper instead
    would pass every stub)."""
    fn = _entry_def(ast.parse(reference), entry)
    params = fn.args.posonlyargs + fn.args.args
    first = params[0].arg if params else (f"{fn.args.vararg.arg}[0]" if fn.args.vararg else None)
    bodies = [("returning None", "return None"), ("returning 0", "return 0"), ("returning ''", "return ''"),
              ("returning []", "return []"), ("returning False", "return False"),
              ("returning True", "return True")]
    if first is not None:
        bodies.append(("returning its first argument", f"return {first}"))
    # ValueError: the exception tests most often expect, so tests that only check raising are caught too
    bodies.append(("raising an exception", "raise ValueError('stub')"))
    out = []
    for label, body in bodies:
        tree = ast.parse(reference)
        _entry_def(tree, entry).body = ast.parse(body).body
        out.append((label, ast.unparse(tree) + "\n"))
    return out


_CMP_FLIP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
             ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
_BIN_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult,
             ast.Div: ast.Mult, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult}
_BOOLISH = (ast.Compare, ast.BoolOp)


def _mutations(node: ast.AST) -> list[tuple[str, object]]:
    """(label, edit) for each mutation of ``node``; ``edit(node)`` changes it in place or returns the
    node that replaces it."""
    line = f" (line {getattr(node, 'lineno', '?')})"
    out: list[tuple[str, object]] = []
    if isinstance(node, ast.Compare):
        for k, op in enumerate(node.ops):
            new = _CMP_FLIP[type(op)]

            def edit(n, k=k, new=new):
                n.ops[k] = new()
            out.append((f"{type(op).__name__} -> {new.__name__}{line}", edit))
    elif isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _BIN_SWAP:
        new = _BIN_SWAP[type(node.op)]
        out.append((f"{type(node.op).__name__} -> {new.__name__}{line}", lambda n, new=new: setattr(n, "op", new())))
    elif isinstance(node, ast.BoolOp):
        new = ast.Or if isinstance(node.op, ast.And) else ast.And
        out.append((f"{type(node.op).__name__} -> {new.__name__}{line}", lambda n, new=new: setattr(n, "op", new())))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        out.append((f"{type(node.op).__name__} removed{line}", lambda n: n.operand))
    elif isinstance(node, ast.Constant) and type(node.value) is bool:
        out.append((f"{node.value} -> {not node.value}{line}", lambda n: setattr(n, "value", not n.value)))
    elif isinstance(node, ast.Constant) and type(node.value) is int:
        for d in (1, -1):
            out.append((f"{node.value} -> {node.value + d}{line}",
                        lambda n, d=d: setattr(n, "value", n.value + d)))
    elif isinstance(node, ast.Return) and node.value is not None:
        if not (isinstance(node.value, ast.Constant) and node.value.value is None):
            # spelled as the None stub spells it, so that a one-line entry point's twin is deduplicated
            out.append((f"return None{line}", lambda n: setattr(n, "value", ast.Constant(None))))
        if isinstance(node.value, _BOOLISH):
            out.append((f"return negated{line}",
                        lambda n: setattr(n, "value", ast.UnaryOp(op=ast.Not(), operand=n.value))))
    elif isinstance(node, (ast.Break, ast.Continue)):
        new = ast.Continue if isinstance(node, ast.Break) else ast.Break
        out.append((f"{type(node).__name__} -> {new.__name__}{line}", lambda n, new=new: new()))
    return out


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, name, new)
                return
            if isinstance(value, list) and any(v is old for v in value):
                value[[id(v) for v in value].index(id(old))] = new
                return


def _mutants(reference: str, skip: set[str], limit: int) -> list[tuple[str, str]]:
    nodes = list(ast.walk(ast.parse(reference)))
    # in reading order, so that the even spread below covers the code from top to bottom
    order = sorted(range(len(nodes)), key=lambda i: (getattr(nodes[i], "lineno", 0),
                                                     getattr(nodes[i], "col_offset", 0)))
    sites = [(i, k) for i in order for k in range(len(_mutations(nodes[i])))]
    found: dict[str, str] = {}  # source -> label, in site order
    for i, k in sites:
        tree = ast.parse(reference)  # a fresh copy per mutant; ast.walk's order is the same each time
        node = list(ast.walk(tree))[i]
        label, edit = _mutations(node)[k]
        new = edit(node)
        if new is not None and new is not node:
            _replace(tree, node, new)
        try:
            src = ast.unparse(ast.fix_missing_locations(tree)) + "\n"
            compile(src, "<mutant>", "exec")
        except (SyntaxError, ValueError, TypeError):  # e.g. ``continue`` where only ``break`` was legal
            continue
        if src not in skip and src not in found:
            found[src] = label
    items, seen = [], set()
    for src, label in found.items():  # two constants on one line would share a label
        n = 2
        while label in seen:
            label, n = f"{label.rsplit(' #', 1)[0]} #{n}", n + 1
        seen.add(label)
        items.append((label, src))
    if len(items) > limit:  # evenly spread over the code, not just its first lines
        items = [items[j * len(items) // limit] for j in range(limit)]
    return items


def broken_variants(reference: str, entry_point: str, max_mutants: int = MAX_MUTANTS) -> list[tuple[str, str]]:
    """(label, source) of programs the tests must fail: the trivial stubs first (labels "returning ..." and
    "raising an exception"), then up to ``max_mutants`` AST mutants of the reference, deterministic,
    distinct from each other, from the stubs and from the reference."""
    stubs = _stubs(reference, entry_point)
    skip = {ast.unparse(ast.parse(reference)) + "\n"} | {src for _, src in stubs}
    return stubs + _mutants(reference, skip, max_mutants)


# ---- the verdict ----------------------------------------------------------------------------------------
def verify_code_problem(problem: CodeProblem, *, min_kill_rate: float = DEFAULT_MIN_KILL_RATE,
                        max_mutants: int = MAX_MUTANTS, mutant_cpu_s: int = 1, workers: int | None = None,
                        **limits) -> CodeVerdict:
    """Run the reference, the stubs and the mutants on the problem's tests (1 + 8 + up to ``max_mutants``
    sandbox runs, each ~10 ms for a quick program). Kept: the reference passes, every stub fails and at
    least ``min_kill_rate`` of the mutants fail (with no mutant, the stubs alone decide). ``limits`` go to
    ``run_tests`` (``cpu_s`` default 2); mutants get ``mutant_cpu_s`` and a wall limit from the reference's
    run (below), since a mutated loop often never ends and would otherwise cost the full limit."""
    from rewards.code import run_tests  # the sandbox pool starts only when a problem is checked

    limits = {"cpu_s": 2, **limits}
    verdict = CodeVerdict(kept=False, reason="")
    try:
        ref_tree, tests_tree = ast.parse(problem.reference), ast.parse(problem.tests)
    except (SyntaxError, ValueError) as e:
        verdict.reason = f"reference or tests do not parse: {type(e).__name__}: {e}"
        return verdict
    if problem.entry_point not in _top_functions(ref_tree):
        verdict.reason = f"reference defines no top-level function {problem.entry_point}"
        return verdict
    why = _test_problems(tests_tree, problem.entry_point, ref_tree)  # also for problems that did not come from parse
    if why:
        verdict.reason = why
        return verdict
    if len(_strip_usage(ref_tree, problem.entry_point).body) != len(ref_tree.body):
        verdict.reason = f"reference runs {problem.entry_point} at import"  # see _strip_usage
        return verdict
    start = time.monotonic()

    def failed(source: str, lim: dict) -> tuple[bool | str, float]:
        """(True/False: the tests failed/passed ``source``, or a str: why it could not be judged; wall s)."""
        r = run_tests(source, problem.spec, stop_on_first_failure=True, **lim)
        wall = sum(t["wall_s"] for t in r.timings)
        if r.status == "invalid_tests":
            return f"invalid tests: {r.error}", wall
        if r.status != "ok":
            return f"sandbox error: {r.error}", wall
        return r.passed < r.total, wall

    def done(reason: str) -> CodeVerdict:
        verdict.reason, verdict.seconds = reason, round(time.monotonic() - start, 3)
        verdict.kept = reason == "ok"
        return verdict

    ref, ref_wall = failed(problem.reference, limits)
    if isinstance(ref, str):
        return done(ref)
    if ref:
        return done("reference fails its tests")
    verdict.reference_passed = True
    stubs = _stubs(problem.reference, problem.entry_point)
    variants = broken_variants(problem.reference, problem.entry_point, max_mutants)
    # A mutated loop often never ends: it is stopped at ``mutant_cpu_s`` or at 20x the reference's wall time
    # (at least 1 s), whichever comes first, and counts as failed: a mutant 20x slower than the reference
    # is broken too. (Under load a spinning program needs ~2.5 s of wall time for 1 s of CPU.)
    mutant_wall = max(1.0, 20 * ref_wall)
    if limits.get("wall_s"):
        mutant_wall = min(mutant_wall, limits["wall_s"])
    mutant_limits = {**limits, "cpu_s": min(mutant_cpu_s, limits["cpu_s"]), "wall_s": mutant_wall}
    # Every variant runs (~10 ms each) so the counts describe the whole check, not where it stopped; in
    # threads, since the pool's servers judge in parallel (a busy pool queues them).
    with ThreadPoolExecutor(max_workers=max(1, workers or os.cpu_count() or 1)) as ex:
        results = [res for res, _ in ex.map(
            lambda iv: failed(iv[1][1], limits if iv[0] < len(stubs) else mutant_limits), enumerate(variants))]
    for i, ((label, _), res) in enumerate(zip(variants, results)):
        if isinstance(res, str):  # not judged: counted nowhere
            continue
        stub = i < len(stubs)  # broken_variants lists the stubs first
        verdict.stubs_total += stub
        verdict.stubs_killed += stub and res
        verdict.mutants_total += not stub
        verdict.mutants_killed += not stub and res
        if not res:
            verdict.survivors.append(label)
    errors = [res for res in results if isinstance(res, str)]
    if errors:
        return done(errors[0])
    if verdict.stubs_killed < verdict.stubs_total:
        return done(f"tests accept a stub {verdict.survivors[0]}")  # stubs come first
    if verdict.mutants_total and verdict.mutants_killed == 0:
        return done("tests kill no mutant")
    if verdict.mutants_total and verdict.mutants_killed < min_kill_rate * verdict.mutants_total:
        return done(f"tests kill only {verdict.mutants_killed}/{verdict.mutants_total} mutants "
                    f"(< {min_kill_rate:.0%})")
    return done("ok")
