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


def test_paired_rates_is_the_exact_sign_flip_test_on_small_sets():
    """Six items with 4 samples each: all 2**6 swaps enumerated by hand give the exact p."""
    import itertools

    import numpy as np

    from reasonlab.stats import paired_rates

    a = [0.0, 0.25, 0.5, 0.0, 0.25, 0.75]
    b = [0.5, 0.25, 1.0, 0.25, 0.75, 0.5]
    diff = np.subtract(b, a)
    observed = diff.mean()
    flips = [np.mean(diff * signs) for signs in itertools.product((1, -1), repeat=6)]
    exact = np.mean([abs(f) >= abs(observed) - 1e-12 for f in flips])
    result = paired_rates(a, b)
    assert result.p_value == pytest.approx(exact)
    assert (result.better, result.worse, result.n) == (4, 1, 6)
    assert result.difference == pytest.approx(observed)
    assert result.interval[0] <= observed <= result.interval[1]
    assert paired_rates(a, a).p_value == 1.0


def test_paired_rates_separates_a_real_gain_from_noise():
    import numpy as np

    from reasonlab.stats import paired_rates

    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, 200) / 4
    assert paired_rates(a, np.minimum(a + 0.25 * (rng.random(200) < 0.3), 1.0)).significant
    noise = rng.choice([-0.25, 0.0, 0.25], 200)  # symmetric: no real difference
    assert not paired_rates(a, np.clip(a + noise * (a > 0) * (a < 1), 0, 1)).significant


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
