"""Preference losses against their formulas, and the preference stage learning on the tiny model."""

from __future__ import annotations

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


def test_reference_needs():
    assert L.dpo.needs_reference and not L.simpo.needs_reference and not L.orpo.needs_reference


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
    assert np.mean(accuracy[-5:]) >= 0.9, accuracy[-5:]
    assert any("train/lengths/chosen" in m for _, m in logged)
    assert result.metrics["pairs"] == 64


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
