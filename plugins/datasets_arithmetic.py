"""``data.source = "arithmetic"``: word problems generated in-repo, with answers,
reasoning traces and metadata checkpoints. No hub, deterministic per seed and split.

Options (``data.options``): ``n`` rows (default 256), ``seed`` (default 0),
``max_operand`` (default 20), ``max_ops`` 1–3 operations per problem (default 2),
``pairs`` (default false): add ``chosen`` (the well-formed, correct trace) and
``rejected`` (a corrupted one: wrong answer, swapped or missing tags, or rambling).
Train and test splits never share a problem.
"""

from __future__ import annotations

import random
import zlib

from reasonlab import hookimpl

GIVE_UP_AFTER = 20_000  # draws in a row without a new problem: the options allow no more distinct ones
MAX_ROWS = 200_000
_NAMES = ["Ana", "Ben", "Chloe", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun"]
_ITEMS = ["apples", "books", "coins", "pens", "stamps", "shells", "cards", "marbles"]


def _problem(rng: random.Random, max_operand: int, max_ops: int) -> dict:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    total = rng.randint(2, max_operand)
    question = f"{name} has {total} {item}."
    checkpoints = []
    for _ in range(rng.randint(1, max_ops)):
        op = rng.choice(["+", "-", "*"] if total <= max_operand else ["+", "-"])
        if op == "+":
            k = rng.randint(1, max_operand)
            question += f" {name} gets {k} more."
            new = total + k
        elif op == "-" and total > 1:
            k = rng.randint(1, total - 1)
            question += f" {name} gives away {k}."
            new = total - k
        else:
            op, k = "*", rng.randint(2, 4)
            question += f" Then the number of {item} becomes {k} times as many."
            new = total * k
        checkpoints.append(f"{total} {op} {k} = {new}")
        total = new
    question += f" How many {item} does {name} have now?"
    return {
        "question": question,
        "reasoning": " ".join(checkpoints) + f". So {name} has {total} {item}.",
        "answer": str(total),
        "checkpoints": checkpoints,
        "difficulty": len(checkpoints),
        "domain": "math",
    }


def _rejected(row: dict, rng: random.Random) -> str:
    wrong = str(int(row["answer"]) + rng.choice([-3, -1, 1, 2, 10]))
    kind = rng.randrange(4)
    if kind == 0:
        return f"<reasoning>{row['reasoning']}</reasoning><answer>{wrong}</answer>"
    if kind == 1:
        return f"<answer>{row['answer']}</answer><reasoning>{row['reasoning']}</reasoning>"
    if kind == 2:
        return f"{row['reasoning']} The answer is {row['answer']}."
    return f"<reasoning>Let me think. {row['reasoning']} Hmm, maybe not.</reasoning><answer>{wrong} or so</answer>"


def generate(n: int = 256, seed: int = 0, split: str = "train", max_operand: int = 20, max_ops: int = 2,
             pairs: bool = False) -> list[dict]:
    """``n`` distinct problems; the test split excludes every question the train split could produce first."""
    rng = random.Random(seed * 1_000_003 + zlib.crc32(split.encode()))
    rows, seen = [], set()
    misses = 0
    while len(rows) < n and misses < GIVE_UP_AFTER:
        misses += 1
        row = _problem(rng, max_operand, max_ops)
        # Hash-partition questions so splits are disjoint whatever n each asks for.
        bucket = "test" if zlib.crc32(row["question"].encode()) % 5 == 0 else "train"
        if row["question"] in seen or bucket != ("test" if split == "test" else "train"):
            continue
        seen.add(row["question"])
        misses = 0
        if pairs:
            row["chosen"] = f"<reasoning>{row['reasoning']}</reasoning><answer>{row['answer']}</answer>"
            row["rejected"] = _rejected(row, rng)
        rows.append(row)
    return rows


def load(arg: str, spec) -> list[dict]:
    from reasonlab.data import require_rows

    return require_rows(generate(split=spec.split, **spec.options), spec.options.get("n", 256), spec,
                        " with these options (max_operand, max_ops)")


def _check(arg: str, spec) -> None:
    from reasonlab.data import check_options

    check_options(spec, {"n": (1, MAX_ROWS), "seed": (0, 2**63 - 1), "max_operand": (2, 10**9), "max_ops": (1, 3),
                         "pairs": bool})
    load(arg, spec)  # generating is cheap (2000 rows in ~20 ms): an impossible n is refused before training


load.check = _check
load.columns = lambda arg, spec: set(generate(split=spec.split, **{**spec.options, "n": 1})[0])


@hookimpl
def register_datasets(register):
    register("arithmetic", load)
