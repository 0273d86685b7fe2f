"""What runs inside the sandbox, after isolation is in place. Standard library only (loaded by the
``-I -S`` fork server, after ``rpc``).

Modes:

* ``stdio``: the program runs as ``__main__``; the trusted parent compares its stdout.
* ``functional``: call one function; its return value goes onto fd 3 in ``rpc``'s data-only
  format (an object that is not data is an error), and the parent compares.
* ``candidate`` (assert tests): the program runs, then serves calls on fds 3 (in) and 5 (out). The test
  code runs in another process the program cannot reach (the slot's judge, see ``server``), through
  :func:`judge`, and sees the program's functions only as ``rpc.Remote`` proxies: arguments and
  results cross as plain data. Expected values never leave that process.
"""

from __future__ import annotations

import ast
import builtins
import json
import linecache
import os
import re
import symtable
import sys
import traceback
import types

from rewards.sandbox import rpc

CE_MARK = b"\x00CE\x00"
USER_FILES = ("solution.py", "tests.py")
_sources: dict[str, str] = {}


# ---- process set-up and exit --------------------------------------------------------------------
def _fresh_stdio() -> None:
    sys.stdin = open(0, "r", encoding="utf-8", errors="replace", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1)
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr


def _main_module(filename: str) -> dict:
    mod = types.ModuleType("__main__")
    mod.__dict__["__builtins__"] = builtins
    mod.__dict__["__file__"] = "/sandbox/work/" + filename
    sys.modules["__main__"] = mod
    return mod.__dict__


def _finish(code: int) -> None:
    try:
        sys.stdout.flush()
    except BaseException:  # EFBIG past the output cap, or a closed stdout
        code = code or 1
    try:
        sys.stderr.flush()
    except BaseException:
        pass
    os._exit(code)  # no atexit hooks, no finalizers: nothing runs after the verdict is fixed


def _exit_code(e: SystemExit) -> int:
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code & 0xFF
    print(e.code, file=sys.stderr)
    return 1


# ---- tracebacks that show the user's files and nothing of the host -------------------------------
def format_user_tb(e: BaseException) -> str:
    """The traceback with only the frames of ``solution.py``/``tests.py`` (with their source lines)."""
    for name, text in _sources.items():
        linecache.cache[name] = (len(text), None, text.splitlines(True), name)
    te = traceback.TracebackException.from_exception(e)
    seen, todo = set(), [te]
    while todo:
        t = todo.pop()
        if t is None or id(t) in seen:
            continue
        seen.add(id(t))
        t.stack = traceback.StackSummary.from_list([f for f in t.stack if f.filename in USER_FILES])
        todo += [t.__cause__, t.__context__]
    return "".join(te.format())


def _report(e: BaseException) -> None:
    try:
        sys.stderr.write(format_user_tb(e))
    except BaseException:
        pass


def _compile_source(source: str, filename: str):
    _sources[filename] = source
    return compile(source, filename, "exec")


# ---- entry -----------------------------------------------------------------------------------------
def run(req: dict) -> None:
    """Never returns: ends the process with the program's exit status."""
    # (random reseeds itself in a forked child: the server imported it, which registers that at-fork hook)
    sys.set_int_max_str_digits(0)
    sys.argv = ["solution.py"]
    builtins.exit = builtins.quit = sys.exit  # normally added by site, which the -S server skips
    _fresh_stdio()
    write, dumps = os.write, rpc.dumps  # captured before user code can monkeypatch them
    try:
        code = _compile_source(req["source"], "solution.py")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        msg = str(e).encode("utf-8", "replace")[:2000]
        if req["mode"] == "candidate":
            _send_quietly(req, ["loaderr", "CE", msg.decode("utf-8", "replace")])
        else:
            write(3, CE_MARK + msg)
        _finish(1)
    ns = _main_module("solution.py")
    mode = req["mode"]
    try:
        exec(code, ns)
        if mode == "functional":
            sol = ns.get("Solution")
            fn = getattr(sol(), req["fn_name"]) if isinstance(sol, type) and hasattr(sol, req["fn_name"]) \
                else ns[req["fn_name"]]
            write(3, dumps(fn(*req["args"], **req["kwargs"])))
        elif mode == "candidate":
            _serve(req, ns)
            _finish(0)  # the tests are over: no waiting for the program's threads
        threading = sys.modules.get("threading")  # not imported by the server: it slows every fork
        if threading is not None:
            threading._shutdown()  # like interpreter exit: wait for non-daemon threads (deep-recursion idiom)
    except SystemExit as e:
        _finish(_exit_code(e) if mode == "stdio" else (_exit_code(e) or 1))
    except BaseException as e:
        if mode == "candidate":
            _send_quietly(req, ["loaderr", "RE", format_user_tb(e)])
        _report(e)
        _finish(1)
    _finish(0)


# ---- assert tests: the candidate's side -----------------------------------------------------------
def _send_quietly(req: dict, msg: list) -> None:
    try:
        rpc.Endpoint("c", 3, 5, req["limits"]["output_bytes"]).send(msg)
    except BaseException:
        pass


def _serve(req: dict, ns: dict) -> None:
    """After the program ran: answer the tests' ``init``, then serve their calls until they hang up."""
    ep = rpc.Endpoint("c", 3, 5, req["limits"]["output_bytes"], format_tb=format_user_tb)
    try:
        msg = ep.recv()
        if msg[0] != "init" or len(msg) != 3:
            return
        entry, entry_error = None, None
        if msg[1] is not None:
            try:
                entry = ep.encode(_resolve(ns, msg[1]))
            except BaseException as e:
                entry_error = f"entry point {msg[1]!r}: {type(e).__name__}: {rpc._describe(e)}"
        names = []
        for name in msg[2] if type(msg[2]) is list else ():
            if type(name) is str and name in ns:
                try:
                    names.append([name, ep.encode(ns[name])])
                except rpc.EncodeError:
                    pass
        ep.send(["ready", entry, entry_error, names])
        while True:
            ep.serve(ep.recv())
    except rpc.ChannelBroken:
        return  # the tests are done (or gone): nothing left to serve


def _resolve(ns: dict, expr: str):
    """``f``, ``Solution().twoSum``: names, no-argument calls and attributes only (no eval)."""
    if type(expr) is not str or not rpc.ENTRY_POINT.match(expr):
        raise ValueError("not a name")
    obj = None
    for i, part in enumerate(expr.split(".")):
        call = part.endswith("()")
        name = part[:-2] if call else part
        if i == 0:
            if name not in ns:
                raise NameError(f"name {name!r} is not defined by the program")
            obj = ns[name]
        else:
            obj = getattr(obj, name)
        if call:
            obj = obj()
    return obj


# ---- assert tests: the tests' side ----------------------------------------------------------------
class _Done(Exception):
    def __init__(self, outcome: str, detail: str = "") -> None:
        self.outcome, self.detail = outcome, detail


def judge(req: dict, rfd: int, wfd: int, result_fd: int) -> str:
    """Run assert tests against the program at the other end of ``rfd``/``wfd``; write the outcome
    (``{"outcome", "detail"}``) on ``result_fd`` and return it. Only a test that ran to its end with the
    program still answering is a "pass". Called in the judge process, never in the program's."""
    ep = rpc.Endpoint("t", rfd, wfd, req["limits"]["output_bytes"])
    try:
        _tests(req, ep)
        outcome, detail = "pass", ""
    except _Done as d:
        outcome, detail = d.outcome, d.detail
    os.write(result_fd, json.dumps({"outcome": outcome, "detail": detail[:2000]}).encode())
    return outcome


_compiled: dict = {}  # test code -> (code object, free names, names used as ``name.attr``, calls check itself)


def _compile_tests(text: str):
    """The test code, compiled and analysed once per distinct text (GRPO judges every sample of a
    prompt against the same tests). Raises _Done("bad_test") when it does not compile."""
    hit = _compiled.get(text)
    if hit is not None:
        return hit
    try:
        tcode = compile(text, "tests.py", "exec")
        free = _free_names(symtable.symtable(text, "tests.py", "exec"))
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        raise _Done("bad_test", f"tests.code does not compile: {type(e).__name__}: {e}") from None
    modlike = frozenset()
    if free:  # (rare: only then is the slower AST walk worth it)
        modlike = frozenset(n.value.id for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Attribute)
                            and isinstance(n.value, ast.Name))
    if len(_compiled) >= 64:
        _compiled.pop(next(iter(_compiled)))
    hit = _compiled[text] = (tcode, free, modlike, bool(_CALLS_CHECK.search(text)))
    return hit


_CALLS_CHECK = re.compile(r"^check\s*\(", re.M)  # MultiPL-E style: the test code calls check(...) itself


def _free_names(top) -> frozenset:
    """Names the test code uses and binds nowhere (a name bound somewhere is its own: HumanEval's check()
    locals, imports inside check), builtins and ``candidate`` left out."""
    used, bound, todo = set(), set(), [top]
    while todo:
        table = todo.pop()
        for sym in table.get_symbols():
            name = sym.get_name()
            if sym.is_assigned() or sym.is_imported() or sym.is_parameter() or sym.is_namespace():
                bound.add(name)
            elif sym.is_referenced() and (sym.is_global() or table is top):
                used.add(name)
        todo += table.get_children()
    return frozenset(used - bound - set(vars(builtins)) - {"candidate"})


def _tests(req: dict, ep) -> None:
    _sources["tests.py"] = req["test_code"]
    tcode, free, modlike, calls_check = _compile_tests(req["test_code"])
    entry_expr = req.get("entry_point")
    ns = {"__name__": "__main__", "__builtins__": builtins}
    try:
        ask = _resolve_names(free, modlike, req["source"], entry_expr, ns)  # while the program starts
        try:  # waits in the pipe until the program has run
            ep.send(["init", entry_expr, ask])
        except rpc.ChannelBroken:  # the program is gone already; its last words may still be in the pipe
            ep.broken = None
        reply = ep.recv()
        if reply[0] == "loaderr" and len(reply) == 3:
            sys.stderr.write(str(reply[2])[-4000:])
            raise _Done("compile_error" if reply[1] == "CE" else "load_error", str(reply[2])[-500:])
        if reply[0] != "ready" or len(reply) != 4 or type(reply[3]) is not list:
            ep._break("malformed ready message")
        for item in reply[3]:
            if type(item) is list and len(item) == 2 and item[0] in ask:
                ns[item[0]] = ep.decode(item[1])
        candidate = None
        if entry_expr is not None:
            if reply[2] is not None:
                sys.stderr.write(f"{reply[2]}\n")
                raise _Done("missing_entry", str(reply[2]))
            candidate = ep.decode(reply[1])
            ns["candidate"] = candidate
            if "." not in entry_expr and "(" not in entry_expr:
                ns[entry_expr] = candidate
        exec(tcode, ns)
        check = ns.get("check")
        if callable(check) and not isinstance(check, rpc.Remote) and not calls_check:
            if entry_expr is None:
                raise _Done("bad_test", "tests.entry_point is required: the test code defines check(candidate)")
            check(candidate)
    except _Done:
        raise
    except rpc.ChannelBroken:
        pass
    except AssertionError as e:
        _report(e)
        raise _Done("candidate_died" if ep.broken else "assert", _last_line(e)) from None
    except BaseException as e:  # SystemExit of the test code included: only a normal return passes
        _report(e)
        raise _Done("candidate_died" if ep.broken else "error", _last_line(e)) from None
    if ep.broken is not None:  # even if the test code swallowed it
        sys.stderr.write(f"the program stopped answering: {ep.broken}\n")
        raise _Done("candidate_died", ep.broken)


def _last_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {rpc._describe(e)}"


def _resolve_names(free: frozenset, modlike: frozenset, source: str, entry_expr, ns: dict) -> list:
    """Bind into ``ns`` what the test code uses but does not define, the way in-process harnesses would
    have it from the program's module, minus every way for the program to lie through it:

    * builtins are always the real ones (a program's ``def abs`` or ``len = ...`` is not seen);
    * a name the program binds by an import anywhere at top level (``import math``, ``from math import
      isclose``) is imported here, fresh: rebinding it later, patching the module or shadowing it with a
      class changes nothing for the tests; so is a module name the tests use as ``name.attr`` that is
      importable here (``math.isclose`` with ``class math`` in the program);
    * any other name is asked from the program (its functions and classes become ``Remote`` proxies).

    ``free``: the names the test code uses and binds nowhere, builtins left out. Returns those to ask for."""
    wanted = set(free)
    if entry_expr is not None:
        wanted.discard(entry_expr)
    if not wanted:
        return []
    imports = _program_imports(source)
    ask = []
    for name in sorted(wanted):
        node = imports.get(name)
        if node is None and name in modlike and _importable(name):
            node = ast.Import(names=[ast.alias(name=name)])
        if node is None:
            ask.append(name)
            continue
        try:
            exec(compile(ast.fix_missing_locations(ast.Module(body=[node], type_ignores=[])), "<imports>", "exec"), ns)
        except BaseException:
            pass  # not importable here: a NameError in the tests, as there would be without the import
    return ask


def _importable(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _program_imports(source: str) -> dict:
    """Name -> the (last) top-level import statement of the program that binds it, as a one-name import.
    Imports under top-level if/try/with/for/while count; so do ``from m import *`` names, resolved here."""
    try:
        tree = ast.parse(source)
    except BaseException:
        return {}
    out: dict = {}
    stars: list = []

    def visit(stmts) -> None:
        for st in stmts:
            if isinstance(st, ast.Import):
                for a in st.names:
                    out[a.asname or a.name.split(".")[0]] = ast.Import(names=[a])
            elif isinstance(st, ast.ImportFrom) and not st.level and st.module not in (None, "__future__"):
                for a in st.names:
                    if a.name == "*":
                        stars.append(st.module)
                    else:
                        out[a.asname or a.name] = ast.ImportFrom(module=st.module, names=[a], level=0)
            if isinstance(st, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
                for field in ("body", "orelse", "finalbody"):
                    visit(getattr(st, field, []))
                for h in getattr(st, "handlers", []):
                    visit(h.body)

    visit(tree.body)
    for mod in stars:
        try:
            import importlib

            m = importlib.import_module(mod)
        except BaseException:
            continue
        public = getattr(m, "__all__", None) or [n for n in vars(m) if not n.startswith("_")]
        for name in public:
            if type(name) is str:
                out.setdefault(name, ast.ImportFrom(module=mod, names=[ast.alias(name=name)], level=0))
    return out
