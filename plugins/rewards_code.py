"""``code_tests``: run the ``<answer>`` code against the row's tests, sandboxed (MBPP-style).

Each completion runs in its own child Python process — never in the learner's — with:
a wall-clock limit (``timeout``, default 5 s; the whole process group is killed), an
address-space limit (``memory_mb``, default 512), a file-size limit, a fresh empty
working directory, an empty environment, Python's isolated mode, and an audit hook
(irremovable from inside) that refuses sockets, subprocesses, ctypes and any file
outside that directory except reads of Python's own installation. Score: the share
of test statements that pass (each is run separately); 0 for any crash or limit hit.

``mode = "syntax"`` only checks that the code compiles (no execution).
Options: ``tests_column`` (default "tests": a list of assert statements, or its
JSON text), ``timeout``, ``memory_mb``, ``mode``, ``workers`` (parallel sandboxes, 2).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import sysconfig
import tempfile
from concurrent.futures import ThreadPoolExecutor

from reasonlab import hookimpl
from reasonlab.format import parse_completion

RUNNER = r'''
import json, os, resource, sys
payload = json.loads(sys.stdin.read())
# limits first, before any answer code runs (set here, not in a preexec_fn: forking a
# multithreaded JAX process and running Python before exec can deadlock)
memory = payload["memory_mb"] * 1024 * 1024
for limit, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, payload["cpu_seconds"]),
                     (resource.RLIMIT_FSIZE, 10 * 1024 * 1024), (resource.RLIMIT_CORE, 0)):
    resource.setrlimit(limit, (value, value))
WORK = os.path.realpath(os.getcwd())
READABLE = tuple(os.path.realpath(p) for p in payload["readable"])
BLOCKED = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
           "os.forkpty", "ctypes.", "pty.", "os.kill", "signal.", "shutil.rmtree", "os.remove", "os.rmdir",
           "resource.")  # as root, answer code could otherwise raise its own limits

def guard(event, args):
    if event.startswith(BLOCKED):
        raise PermissionError(f"sandbox: {event} is not allowed")
    if event == "open":
        path, mode = args[0], args[1] or "r"
        if isinstance(path, int):
            return
        real = os.path.realpath(os.fsdecode(path))
        inside = real == WORK or real.startswith(WORK + os.sep)
        reading = not any(c in str(mode) for c in "wax+")
        if not inside and not (reading and real.startswith(READABLE)):
            raise PermissionError(f"sandbox: no access to {real}")

sys.addaudithook(guard)
namespace = {"__name__": "__sandbox__"}
passed = 0
try:
    exec(compile(payload["code"], "<answer>", "exec"), namespace)
    for test in payload["tests"]:
        try:
            exec(compile(test, "<test>", "exec"), namespace)
            passed += 1
        except BaseException:
            pass
except BaseException as exc:
    print(json.dumps({"passed": 0, "error": type(exc).__name__}))
    sys.exit(0)
print(json.dumps({"passed": passed}))
'''

_FENCE = re.compile(r"```(?:python|py)?\s*\n?(.*?)```", re.DOTALL)


def extract_code(completion: str) -> str:
    answer = parse_completion(completion).answer or ""
    fenced = _FENCE.search(answer)
    return (fenced.group(1) if fenced else answer).strip()


def _tests(value) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = [value]
    return [str(t) for t in value or []]


def run_sandboxed(code: str, tests: list[str], timeout: float = 5.0, memory_mb: int = 512) -> dict:
    """Run ``code`` then each test in a child process; {"passed": n} or {"passed": 0, "error": ...}."""
    readable = sorted({sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")} | {sys.prefix,
                      sys.base_prefix})
    payload = json.dumps({"code": code, "tests": tests, "readable": readable, "memory_mb": memory_mb,
                          "cpu_seconds": int(timeout) + 1})
    with tempfile.TemporaryDirectory(prefix="reasonlab-sandbox-") as work:
        proc = subprocess.Popen([sys.executable, "-I", "-c", RUNNER], cwd=work, env={}, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                start_new_session=True)  # its own process group, killed whole on timeout
        try:
            out, _ = proc.communicate(payload, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return {"passed": 0, "error": "timeout"}
    lines = out.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return {"passed": 0, "error": f"crashed (exit {proc.returncode})"}


def code_tests(prompts, completions, tests_column: str = "tests", timeout: float = 5.0, memory_mb: int = 512,
               mode: str = "tests", workers: int = 2, **columns) -> list[float]:
    codes = [extract_code(c) for c in completions]
    if mode == "syntax":
        return [1.0 if code and _compiles(code) else 0.0 for code in codes]
    if mode != "tests":
        raise ValueError(f"mode must be 'tests' or 'syntax', got {mode!r}")
    all_tests = [_tests(t) for t in columns[tests_column]]

    def score(i: int) -> float:
        if not codes[i] or not all_tests[i]:
            return 0.0
        return run_sandboxed(codes[i], all_tests[i], timeout, memory_mb)["passed"] / len(all_tests[i])

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(score, range(len(completions))))


def _compiles(code: str) -> bool:
    try:
        compile(code, "<answer>", "exec")
        return True
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False


@hookimpl
def register_rewards(register):
    register("code_tests", code_tests)
