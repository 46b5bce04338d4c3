"""Preference losses against their formulas, and the preference stage learning on the tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reasonlab_plugins import losses_preference as L

C = np.array([-12.0, -30.0, -8.0])   # summed log-probs of chosen completions
R = np.array([-15.0, -25.0, -8.5])
CL = np.array([6.0, 15.0, 4.0])      # their lengths
RL = np.array([5.0, 10.0, 4.0])
REF_C = np.array([-13.0, -28.0, -9.0])
REF_R = np.array([-14.0, -26.0, -8.0])


def log_sigmoid(x):
    return -np.log1p(np.exp(-x))


def test_dpo_matches_formula():
    beta, eps = 0.1, 0.1
    delta = beta * ((C - REF_C) - (R - REF_R))
    expected = -(log_sigmoid(delta) * (1 - eps) + log_sigmoid(-delta) * eps)
    loss, cr, rr = L.dpo(C, R, CL, RL, REF_C, REF_R, beta=beta, label_smoothing=eps)
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    np.testing.assert_allclose(cr - rr, delta, rtol=1e-6)


def test_simpo_matches_formula():
    beta, gamma = 2.5, 1.25
    expected = -log_sigmoid(beta / CL * C - beta / RL * R - gamma)
    loss, _, _ = L.simpo(C, R, CL, RL, 0.0, 0.0, beta=beta, gamma=gamma)
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    ratio_loss, _, _ = L.simpo(C, R, CL, RL, 0.0, 0.0, beta=beta, gamma_beta_ratio=0.5)
    np.testing.assert_allclose(ratio_loss, expected, rtol=1e-6)  # γ = 0.5 β


def test_orpo_matches_formula():
    lam = 0.2
    c, r = C / CL, R / RL
    log_odds = (c - r) - (np.log1p(-np.exp(c)) - np.log1p(-np.exp(r)))
    expected = -c - lam * log_sigmoid(log_odds)
    loss, _, _ = L.orpo(C, R, CL, RL, 0.0, 0.0, lambda_orpo=lam)
    np.testing.assert_allclose(loss, expected, rtol=1e-6)


def test_kto_matches_formula():
    """KTO (arXiv:2402.01306 eq. 8; TRL's KTOTrainer): z0 from the mismatched pairs, clamped at 0."""
    beta, lam_d, lam_u = 0.2, 1.0, 1.33
    kl_logps, ref_kl = np.array([-20.0, -31.0, -9.0]), np.array([-21.0, -30.5, -10.0])
    desirable = np.array([True, False, True])
    z0 = max(0.0, np.mean(kl_logps - ref_kl))  # (1 - 0.5 + 1) / 3 = 0.5
    r = C - REF_C
    expected = np.where(desirable, lam_d * (1 - 1 / (1 + np.exp(-beta * (r - z0)))),
                        lam_u * (1 - 1 / (1 + np.exp(-beta * (z0 - r)))))
    loss, reward, point = L.kto(C, kl_logps, CL, CL, REF_C, ref_kl, desirable, beta=beta,
                                desirable_weight=lam_d, undesirable_weight=lam_u)
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    np.testing.assert_allclose(reward, beta * r, rtol=1e-6)
    np.testing.assert_allclose(point, beta * 0.5, rtol=1e-6)
    _, _, clamped = L.kto(C, kl_logps, CL, CL, REF_C, ref_kl + 5.0, desirable)  # a negative KL estimate
    assert float(clamped) == 0.0


def test_kto_reference_point_is_not_differentiated():
    import jax
    import jax.numpy as jnp

    def total(kl_logps):
        loss, _, _ = L.kto(jnp.asarray(C), kl_logps, CL, CL, jnp.asarray(REF_C), jnp.asarray(REF_C) - 3.0,
                           jnp.array([True, False, True]))
        return loss.sum()

    np.testing.assert_array_equal(jax.grad(total)(jnp.asarray(REF_C)), 0.0)


def test_reference_needs():
    assert L.dpo.needs_reference and not L.simpo.needs_reference and not L.orpo.needs_reference
    assert L.kto.needs_reference and L.kto.unpaired


def learnt(accuracy: list[float]) -> bool:
    """Each step's accuracy is over 8 pairs, so single steps are noisy (and the numbers differ
    between CPU kinds): the last 10 steps average >= 0.8 and >= 0.15 above the first 2."""
    late, early = np.mean(accuracy[-10:]), np.mean(accuracy[:2])
    return late >= 0.8 and late >= early + 0.15


@pytest.mark.slow
@pytest.mark.parametrize("loss,options,lr", [("dpo", {"beta": 0.5}, 3e-3), ("orpo", {"lambda_orpo": 2.0}, 5e-3),
                                             ("simpo", {"beta": 2.0, "gamma_beta_ratio": 0.5}, 3e-3)])
def test_preference_stage_learns_to_prefer_chosen(loss, options, lr, tmp_path):
    from reasonlab.plugins import get_plugins
    from reasonlab.progress import RunProgress
    from reasonlab.schema import ModelSpec
    from reasonlab.stage import StageContext
    from reasonlab_plugins.models_tiny import load
    from reasonlab_plugins.stage_preference import PreferenceConfig, PreferenceStage

    config = PreferenceConfig(data={"source": "arithmetic", "options": {"n": 64, "pairs": True}}, steps=30,
                              batch_size=8, learning_rate=lr, loss=loss, loss_options=options,
                              max_prompt_tokens=96, max_completion_tokens=80)
    logged = []
    ctx = StageContext(name="pref", kind="preference", config=config, recipe=None, model=load(ModelSpec(preset="tiny")),
                       dir=tmp_path, seed=0, plugins=get_plugins(), log=lambda m, s: logged.append((s, m)),
                       progress=RunProgress(False))
    result = PreferenceStage().run(ctx)
    accuracy = [m["train/rewards/accuracy"] for _, m in sorted(logged, key=lambda x: x[0]) if "train/rewards/accuracy" in m]
    assert len(accuracy) == 30
    assert np.mean(accuracy[:2]) <= 0.75, accuracy[:5]
    assert learnt(accuracy), accuracy
    assert any("train/lengths/chosen" in m for _, m in logged)
    assert result.metrics["pairs"] == 64
    # the pairs of steps 1, 10, 20, 30 with their numbers: each step's rows average to its logged margin
    rows = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert sorted({r["step"] for r in rows}) == [1, 10, 20, 30] and len(rows) == 4 * 8
    margins = {s: m["train/rewards/margin"] for s, m in logged if "train/rewards/margin" in m}
    for step in (1, 10, 20, 30):
        at = [r for r in rows if r["step"] == step]
        assert np.mean([r["margin"] for r in at]) == pytest.approx(margins[step], rel=1e-4, abs=1e-5)
        assert all(r["chosen"] and r["rejected"] and r["prompt"] for r in at)
        assert all(r["margin"] == pytest.approx(r["chosen_reward"] - r["rejected_reward"]) for r in at)


@pytest.mark.slow
@pytest.mark.parametrize("pairs", ["self", "chosen_data"])
def test_pairs_from_the_models_own_samples(pairs, tmp_path):
    from reasonlab.plugins import get_plugins
    from reasonlab.progress import RunProgress
    from reasonlab.schema import ModelSpec
    from reasonlab.stage import StageContext
    from reasonlab_plugins.models_tiny import load
    from reasonlab_plugins.stage_preference import PreferenceConfig, PreferenceStage

    plugins = get_plugins()
    plugins.registry("rewards").add("test_length", lambda p, c, **_: [float(len(x)) for x in c], "test")
    config = PreferenceConfig(data={"source": "arithmetic", "options": {"n": 8}}, pairs=pairs, steps=2, batch_size=4,
                              loss="simpo", rewards=[{"name": "test_length"}], num_samples=3,
                              max_prompt_tokens=96, max_completion_tokens=80, sample_max_tokens=24, learning_rate=1e-3)
    logged = []
    ctx = StageContext(name="pref", kind="preference", config=config, recipe=None, model=load(ModelSpec(preset="tiny")),
                       dir=tmp_path, seed=0, plugins=plugins, log=lambda m, s: logged.append((s, m)),
                       progress=RunProgress(False))
    result = PreferenceStage().run(ctx)
    assert 0 < result.metrics["pairs"] <= 8
    assert any("train/rewards/accuracy" in m for _, m in logged)
    if pairs == "self":  # best and worst of 3 samples by length: ties are skipped and counted
        assert any("pairs/ties_skipped" in m for _, m in logged)


def _run_preference(config, tmp_path):
    from reasonlab.plugins import get_plugins
    from reasonlab.progress import RunProgress
    from reasonlab.schema import ModelSpec
    from reasonlab.stage import StageContext
    from reasonlab_plugins.models_tiny import load
    from reasonlab_plugins.stage_preference import PreferenceStage

    logged = []
    ctx = StageContext(name="pref", kind="preference", config=config, recipe=None, model=load(ModelSpec(preset="tiny")),
                       dir=tmp_path, seed=0, plugins=get_plugins(), log=lambda m, s: logged.append((s, m)),
                       progress=RunProgress(False))
    result = PreferenceStage().run(ctx)
    history = {}
    for _, m in sorted(logged, key=lambda x: x[0]):
        for key, value in m.items():
            history.setdefault(key, []).append(value)
    return result, history


@pytest.mark.slow
def test_kto_learns_from_unpaired_labelled_completions(tmp_path):
    """KTO on single completions (no prompt has both a good and a bad one): desirable
    completions end above the KL reference point, undesirable ones below it."""
    import json

    from reasonlab_plugins.datasets_arithmetic import generate
    from reasonlab_plugins.stage_preference import PreferenceConfig

    rows = generate(split="train", n=64, seed=0, pairs=True)
    labelled = [{"question": r["question"], "completion": r["chosen"] if i % 2 else r["rejected"], "label": i % 2 == 1}
                for i, r in enumerate(rows)]
    path = tmp_path / "labelled.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in labelled))
    config = PreferenceConfig(data={"source": f"file:{path}"}, pairs="labelled", loss="kto",
                              loss_options={"beta": 0.5}, steps=30, batch_size=8, learning_rate=3e-3,
                              max_prompt_tokens=96, max_completion_tokens=80)
    result, history = _run_preference(config, tmp_path / "run")
    assert result.metrics["examples"] == 64
    assert history["data/desirable_per_batch"] == [4]  # half the data is desirable
    accuracy = history["train/rewards/accuracy"]
    assert len(accuracy) == 30
    assert np.mean(accuracy[:2]) <= 0.75, accuracy[:5]
    assert learnt(accuracy), accuracy
    margins = history["train/rewards/margin"]
    assert np.mean(margins[-5:]) > 0 and np.mean(margins[-5:]) > np.mean(margins[:2])
    logged = [json.loads(line) for line in (tmp_path / "run" / "pairs.jsonl").read_text().splitlines()]
    assert sorted({r["step"] for r in logged}) == [1, 10, 20, 30]
    last = [r for r in logged if r["step"] == 30]
    assert [r["desirable"] for r in last] == [True] * 4 + [False] * 4
    right = [(r["reward"] > r["reference_point"]) == r["desirable"] for r in last]
    assert np.mean(right) == pytest.approx(accuracy[-1])  # the rows are the step's own numbers
    assert all(v >= 0 for v in history["train/rewards/reference_point"])


@pytest.mark.slow
def test_kto_trains_on_pairs_split_in_two(tmp_path):
    from reasonlab_plugins.stage_preference import PreferenceConfig

    config = PreferenceConfig(data={"source": "arithmetic", "options": {"n": 16, "pairs": True}}, loss="kto",
                              desirable_per_batch=3, steps=3, batch_size=4, learning_rate=1e-3,
                              max_prompt_tokens=96, max_completion_tokens=80)
    result, history = _run_preference(config, tmp_path)
    assert result.metrics["examples"] == 32  # each pair: one desirable and one undesirable example
    assert history["data/desirable_per_batch"] == [3]
    assert len(history["train/rewards/accuracy"]) == 3


def test_labels_and_desirable_rows_per_batch():
    from reasonlab.errors import RecipeError
    from reasonlab_plugins.stage_preference import PreferenceConfig, desirable, desirable_rows

    assert [desirable(v, 0, "label") for v in (True, 0, 1, "false", " True ")] == [True, False, True, False, True]
    with pytest.raises(RecipeError, match="row 7: label = 'maybe'"):
        desirable("maybe", 7, "label")
    data = [(None, None, True)] * 3 + [(None, None, False)] * 9
    config = PreferenceConfig(data={"source": "arithmetic"}, loss="kto", batch_size=8, steps=1)
    assert desirable_rows(config, data) == 2  # 3 of 12 desirable
    assert desirable_rows(config, data[:1] + data[3:]) == 1  # rare but present: at least one row
    assert desirable_rows(config, data[:3]) == 8  # only desirable examples
    assert desirable_rows(config.model_copy(update={"desirable_per_batch": 5}), data) == 5
    with pytest.raises(RecipeError, match="desirable_per_batch = 9 does not fit"):
        desirable_rows(config.model_copy(update={"desirable_per_batch": 9}), data)
    with pytest.raises(RecipeError, match="desirable_per_batch = 6 does not fit"):  # no undesirable examples
        desirable_rows(config.model_copy(update={"desirable_per_batch": 6}), data[:3])
