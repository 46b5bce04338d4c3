"""`reasonlab run --seeds N` and `compare`'s aggregate across seeds."""

from __future__ import annotations

import json

import pytest
from conftest import TINY_SFT, reasonlab, tiny_recipe

from reasonlab.stats import mean_interval


def test_mean_interval_matches_the_t_formula():
    mean, low, high, std = mean_interval([0.3, 0.4, 0.5])
    # t(0.975, 2 df) = 4.302653; half-width = t · s / sqrt(n) = 4.302653 · 0.1 / sqrt(3)
    assert (mean, std) == (pytest.approx(0.4), pytest.approx(0.1))
    assert (low, high) == (pytest.approx(0.4 - 0.248414, abs=1e-6), pytest.approx(0.4 + 0.248414, abs=1e-6))


def fake_seed_run(root, seed, accuracy, lr=1e-3):
    run = root / f"run-seed{seed}"
    run.mkdir()
    (run / "recipe.toml").write_text(f'[recipe]\nname = "r"\nseed = {seed}\n\n[[stages]]\nname = "eval"\n'
                                     f'kind = "eval"\nlearning_rate = {lr}\n')
    (run / "summary.json").write_text(json.dumps({"eval": {"answer_accuracy": accuracy}}))
    return run


def test_compare_aggregates_runs_that_differ_only_in_seed(tmp_path):
    runs = [fake_seed_run(tmp_path, s, a) for s, a in ((1, 0.3), (2, 0.4), (3, 0.5))]
    other = fake_seed_run(tmp_path, 9, 0.9, lr=5e-4)
    result = reasonlab("compare", *runs, other)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "across 3 seeds" in out and "across 1" not in out          # the lr=5e-4 run is not a seed of them
    line = next(l for l in out.splitlines() if "eval/answer_accuracy" in l and "…" in l)
    assert "0.4" in line and "0.1516" in line and "0.6484" in line   # 0.4 ± 0.248414


@pytest.mark.slow
def test_run_with_seeds_makes_sibling_runs_that_differ_only_in_seed(tmp_path):
    recipe = tmp_path / "seeded.toml"
    recipe.write_text(tiny_recipe("seeded", TINY_SFT, seed=5))
    result = reasonlab("run", recipe, "--seeds", "2", "--no-progress", "--runs-dir", tmp_path / "runs",
                       env={"WANDB_MODE": "disabled"})
    assert result.returncode == 0, result.stderr[-2000:]
    dirs = sorted((tmp_path / "runs" / "seeded").iterdir())
    assert [d.name.rsplit("-", 1)[1] for d in dirs] == ["seed5", "seed6"]
    seeds = [json.loads((d / "state.json").read_text())["status"] for d in dirs]
    assert seeds == ["done", "done"]
    assert ['seed = 5' in (dirs[0] / "recipe.toml").read_text(), 'seed = 6' in (dirs[1] / "recipe.toml").read_text()] == [True, True]
    losses = [json.loads((d / "summary.json").read_text())["sft"]["first_loss"] for d in dirs]
    assert losses[0] != losses[1]                                     # the seed reached the training
    compared = reasonlab("compare", *dirs)
    assert "across 2 seeds" in compared.stdout, compared.stdout
