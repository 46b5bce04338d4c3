"""Wilson intervals, exact McNemar and the paired comparison that `compare` prints,
against values computed by hand from their formulas."""

from __future__ import annotations

import json
import math

import pytest
from conftest import reasonlab

from reasonlab.stats import mcnemar, paired_bootstrap, wilson


def wilson_by_hand(k, n, z=1.959963984540054):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k, n", [(77, 200), (61, 200), (0, 32), (32, 32), (11, 32)])
def test_wilson_matches_the_formula(k, n):
    assert wilson(k, n) == pytest.approx(wilson_by_hand(k, n), abs=1e-9)


def test_wilson_of_the_issue_figures():
    low, high = wilson(77, 200)
    assert round(low, 3) == 0.320 and round(high, 3) == 0.454


@pytest.mark.parametrize("gained, lost", [(8, 24), (3, 3), (0, 5), (10, 0), (0, 0)])
def test_mcnemar_is_the_two_sided_exact_binomial(gained, lost):
    n = gained + lost
    tail = sum(math.comb(n, k) for k in range(min(gained, lost) + 1)) / 2 ** n if n else 0.5
    assert mcnemar(gained, lost) == pytest.approx(min(1.0, 2 * tail), rel=1e-9)
    assert round(mcnemar(8, 24), 3) == 0.007


def test_paired_bootstrap_counts_and_interval():
    a = [1, 1, 0, 0, 1, 0, 1, 0] * 25
    b = [1, 0, 1, 1, 1, 0, 1, 0] * 25
    result = paired_bootstrap(a, b)
    assert (result.gained, result.lost, result.n) == (50, 25, 200)
    assert result.difference == pytest.approx(25 / 200)
    assert result.interval[0] < result.difference < result.interval[1]
    assert result.p_value == pytest.approx(mcnemar(50, 25)) and result.significant


def fake_run(root, name, correct):
    run = root / name
    (run / "stages" / "eval").mkdir(parents=True)
    (run / "recipe.toml").write_text(f'[recipe]\nname = "{name}"\n')
    accuracy = sum(correct) / len(correct)
    (run / "summary.json").write_text(json.dumps({"eval": {"answer_accuracy": accuracy}}))
    (run / "stages" / "eval" / "eval.json").write_text(json.dumps({"metrics": {"items": len(correct)}}))
    with open(run / "stages" / "eval" / "samples.jsonl", "w") as fh:
        for i, c in enumerate(correct):
            fh.write(json.dumps({"prompt": f"q{i}", "completion": "", "correct": float(c)}) + "\n")
        fh.write(json.dumps({"prompt": "q0", "completion": "a sampled extra", "correct": 1.0}) + "\n")
    return run


def test_compare_reports_the_paired_difference(tmp_path):
    first = fake_run(tmp_path, "first", [1, 1, 0, 0, 1, 0])
    second = fake_run(tmp_path, "second", [1, 0, 1, 1, 1, 0])
    result = reasonlab("compare", first, second)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "paired on the same eval items" in out
    assert "2 / 1" in out and "not significant" in out and "+0.167" in out
    assert f"{mcnemar(2, 1):.3g}" in out
