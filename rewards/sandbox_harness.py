"""What runs inside the sandbox, after isolation is in place: the user's Python program.

Three modes: ``stdio`` (run as ``__main__``), ``functional`` (call one function, serialize the
return value with a strict type walk onto fd 3), ``assert`` (run the test code after the program
and, only if ``check`` returned, write the run's nonce on fd 3). Expected outputs never come here;
the trusted parent compares. Standard library only (imported by the ``-I -S`` fork server).
"""

from __future__ import annotations

import builtins
import json
import os
import random
import sys
import threading
import types

CE_MARK = b"\x00CE\x00"
_PLAIN = (type(None), bool, int, float, str)


class Unserializable(Exception):
    pass


def plain(x, keep_tuples: bool, depth: int = 0):
    """A fresh copy made only of builtin types, or Unserializable (kills ``__eq__`` tricks)."""
    if depth > 100:
        raise Unserializable("nested too deep")
    t = type(x)
    if t in _PLAIN:
        return x
    if t is list or t is tuple:
        items = [plain(v, keep_tuples, depth + 1) for v in x]
        return tuple(items) if (t is tuple and keep_tuples) else items
    if t is dict:
        if any(type(k) is not str for k in x):
            raise Unserializable("dict keys must be str")
        return {k: plain(v, keep_tuples, depth + 1) for k, v in x.items()}
    raise Unserializable(f"unserializable return type {t.__name__}")


def _fresh_stdio() -> None:
    sys.stdin = open(0, "r", encoding="utf-8", errors="replace", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1)
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr


def _main_module() -> dict:
    mod = types.ModuleType("__main__")
    mod.__dict__["__builtins__"] = builtins
    mod.__dict__["__file__"] = "/sandbox/work/solution.py"
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


def _report_exception() -> None:
    import traceback  # pre-imported by the fork server

    try:
        traceback.print_exc()
    except BaseException:
        pass


def run(req: dict) -> None:
    """Never returns: ends the process with the program's exit status."""
    write, dumps = os.write, json.dumps  # captured before user code can monkeypatch them
    random.seed()  # a fork inherits the server's generator state
    sys.set_int_max_str_digits(0)
    sys.argv = ["solution.py"]
    builtins.exit = builtins.quit = sys.exit  # normally added by site, which the -S server skips
    _fresh_stdio()
    try:
        code = compile(req["source"], "solution.py", "exec")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        write(3, CE_MARK + str(e).encode("utf-8", "replace")[:2000])
        _finish(1)
    ns = _main_module()
    mode = req["mode"]
    try:
        exec(code, ns)
        if mode == "functional":
            sol = ns.get("Solution")
            fn = getattr(sol(), req["fn_name"]) if isinstance(sol, type) and hasattr(sol, req["fn_name"]) \
                else ns[req["fn_name"]]
            out = plain(fn(*req["args"], **req["kwargs"]), keep_tuples=False)
            write(3, dumps(out, allow_nan=False).encode())
        elif mode == "assert":
            exec(compile(req["test_code"], "tests.py", "exec"), ns)
            target = ns[req["entry_point"]]

            def candidate(*a, **k):  # results go through the strict copy: no AlwaysEqual objects
                return plain(target(*a, **k), keep_tuples=True)

            ns["check"](candidate)
            write(3, req["nonce"])  # reached only if check returned normally
        threading._shutdown()  # like interpreter exit: wait for non-daemon threads (deep-recursion idiom)
    except SystemExit as e:
        _finish(_exit_code(e) if mode == "stdio" else (_exit_code(e) or 1))
    except BaseException:
        _report_exception()
        _finish(1)
    _finish(0)
