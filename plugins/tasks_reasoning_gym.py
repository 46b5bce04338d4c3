"""reasoning-gym's procedural tasks as data, and their own verifiers as rewards.

``data = { source = "reasoning_gym:<task>", options = { n = 256, seed = 0, ... } }`` serves any
of the package's tasks (``gsm_symbolic``, ``basic_arithmetic``, ``propositional_logic``, …;
``python -c "import reasoning_gym; print(sorted(reasoning_gym.factory.DATASETS))"``). Options
other than ``n`` and ``seed`` go to the task's config (its size and difficulty knobs). Each row
has ``question``, ``answer`` (the task's reference answer, as text), ``reasoning`` (the
task's worked solution where it has one, e.g. gsm_symbolic's ``answer_cot``: what SFT learns
from; else empty), ``metadata`` (the task's own), and where the item came from
(``rg_task``, ``rg_seed``, ``rg_index``, ``rg_config``), which the rewards use to rebuild the
exact entry the verifier expects.

Splits never share an item, and for ``gsm_symbolic`` never a template: an item belongs to
``test`` when a hash of its split key falls in the test fifth — the template (the generator
the task picked for it) for gsm_symbolic, the question text for every other task. The
package's ``source_index`` is the item's index in its dataset, not its template, so it cannot
serve as the split key.

Rewards (the ``<answer>`` content is what is scored; no answer tag scores as no answer):
- ``reasoning_gym``: the task's ``score_answer`` verbatim (some tasks give partial credit,
  e.g. 0.01 for a wrong number);
- ``reasoning_gym_correct``: 1.0 when ``score_answer`` gives full credit, else 0.0 (for eval
  accuracy).
"""

from __future__ import annotations

import functools
import json
import zlib

from reasonlab import hookimpl
from reasonlab.errors import DataError
from reasonlab.format import parse_completion
from reasonlab.rewards import require_column

TEST_FIFTH = 0  # crc32(split key) % 5 == this -> test
COLUMNS = {"question", "answer", "reasoning", "metadata", "rg_task", "rg_seed", "rg_index", "rg_config", "template"}
MAX_DRAWS = 20  # datasets of n items drawn per split before giving up (a task with fewer distinct items)


def _task(arg: str):
    import reasoning_gym

    if arg not in reasoning_gym.factory.DATASETS:
        import difflib

        close = difflib.get_close_matches(arg, sorted(reasoning_gym.factory.DATASETS), n=1)
        raise DataError(f"reasoning-gym has no task {arg!r}",
                        hint=(f"did you mean {close[0]!r}? " if close else "") +
                             "list them: python -c \"import reasoning_gym; print(sorted(reasoning_gym.factory.DATASETS))\"")
    return arg


@functools.lru_cache(maxsize=64)
def _dataset(task: str, seed: int, size: int, config_json: str):
    import reasoning_gym

    return reasoning_gym.create_dataset(task, seed=seed, size=size, **json.loads(config_json))


def _split_key(dataset, index: int, entry: dict) -> str:
    templates = getattr(dataset, "task_indices", None)  # gsm_symbolic: the generator (template) of each item
    return f"template:{templates[index]}" if templates is not None else f"question:{entry['question']}"


def in_split(key: str, split: str) -> bool:
    test = zlib.crc32(key.encode()) % 5 == TEST_FIFTH
    return test if split == "test" else not test


def load(arg: str, spec) -> list[dict]:
    task = _task(arg)
    options = dict(spec.options)
    n, seed = int(options.pop("n", 256)), int(options.pop("seed", 0))
    config = json.dumps(options, sort_keys=True)
    rows, seen = [], set()
    for draw in range(MAX_DRAWS):
        try:
            dataset = _dataset(task, seed + 7919 * draw, n, config)
        except (TypeError, ValueError, AssertionError) as exc:
            raise DataError(f"reasoning-gym task {task!r} refused its options: {type(exc).__name__}: {exc}",
                            where="data.options", hint="options besides n and seed go to the task's config") from None
        for index in range(len(dataset)):
            entry = dataset[index]
            key = _split_key(dataset, index, entry)
            if entry["question"] in seen or not in_split(key, spec.split):
                continue
            seen.add(entry["question"])
            metadata = entry.get("metadata", {})
            rows.append({"question": entry["question"], "answer": str(entry["answer"]),
                         "reasoning": str(metadata.get("answer_cot", "")),
                         "metadata": json.loads(json.dumps(metadata, default=str)),
                         "template": key, "rg_task": task, "rg_seed": seed + 7919 * draw, "rg_index": index,
                         "rg_config": json.dumps({**options, "size": n}, sort_keys=True)})
            if len(rows) == n:
                return rows
    raise DataError(f"reasoning-gym task {task!r} gave only {len(rows)} distinct {spec.split} items of the {n} asked "
                    f"for in {MAX_DRAWS} draws", hint="ask for fewer (data.options.n) or widen the task's options")


def _check(arg: str, spec) -> None:
    _task(arg)
    for key in ("n", "seed"):
        value = spec.options.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < (1 if key == "n" else 0)):
            raise DataError(f"data.options.{key} must be a {'positive' if key == 'n' else 'non-negative'} integer, "
                            f"got {value!r}", where=f"data.options.{key}")


load.check = _check
load.columns = lambda arg, spec: set(COLUMNS)


def entry_of(task: str, seed: int, index: int, config_json: str) -> dict:
    """The exact reasoning-gym entry a row came from (its verifier may read any of it)."""
    config = json.loads(config_json)
    size = int(config.pop("size"))
    return _dataset(task, int(seed), size, json.dumps(config, sort_keys=True))[int(index)]


@functools.cache
def _verifier(task: str):
    import reasoning_gym

    return reasoning_gym.get_score_answer_fn(task)


def _scores(completions, columns) -> list[float]:
    located = [require_column(columns, c, "reasoning_gym") for c in ("rg_task", "rg_seed", "rg_index", "rg_config")]
    scores = []
    for text, task, seed, index, config in zip(completions, *located):
        entry = entry_of(task, seed, index, config)
        score = _verifier(task)(parse_completion(text).answer, entry)
        scores.append(float(score))
    return scores


def reasoning_gym_reward(prompts, completions, **columns) -> list[float]:
    return _scores(completions, columns)


def reasoning_gym_correct(prompts, completions, **columns) -> list[float]:
    return [1.0 if s >= 1.0 else 0.0 for s in _scores(completions, columns)]


@hookimpl
def register_datasets(register):
    register("reasoning_gym", load)


@hookimpl
def register_rewards(register):
    located = ["rg_task", "rg_seed", "rg_index", "rg_config"]
    register("reasoning_gym", reasoning_gym_reward, columns=located, options=[])
    register("reasoning_gym_correct", reasoning_gym_correct, columns=located, options=[])
