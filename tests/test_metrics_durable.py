"""A checkpoint never gets ahead of metrics.jsonl: when step N is saved, step N's metrics are
already logged, so a kill right after a save and a resume (which does not re-log restored
steps) lose no record. Tunix's rollout metrics carry the step they belong to."""

from __future__ import annotations

import pytest

from reasonlab.mesh import stage_meshes
from reasonlab.plugins import get_plugins
from reasonlab.progress import RunProgress
from reasonlab.schema import MeshSpec, ModelSpec
from reasonlab.stage import StageContext
from reasonlab_plugins.models_tiny import load
from reasonlab_plugins.stage_grpo import GRPOConfig, GRPOStage
from reasonlab_plugins.stage_sft import SFTConfig, SFTStage

pytestmark = pytest.mark.slow
DATA = {"source": "arithmetic", "options": {"n": 16}}


@pytest.fixture
def logged_at_save(monkeypatch):
    """(logged records, {saved step: the (step, key) pairs logged before it was saved})."""
    import orbax.checkpoint as ocp

    records: list[tuple[int, dict]] = []
    seen_at_save: dict[int, set[tuple[int, str]]] = {}
    save = ocp.CheckpointManager.save

    def recording_save(self, step, *args, **kwargs):
        seen_at_save[step] = {(s, key) for s, metrics in records for key in metrics}
        return save(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", recording_save)
    return records, seen_at_save


def run(stage, config, tmp_path, records):
    ctx = StageContext(name=stage.__name__, kind="x", config=config, recipe=None,
                       model=load(ModelSpec(preset="tiny")), dir=tmp_path, seed=0, plugins=get_plugins(),
                       log=lambda metrics, step: records.append((int(step), dict(metrics))),
                       progress=RunProgress(False), meshes=stage_meshes(MeshSpec(), None, "stages.x"))
    with ctx.meshes.main:
        return stage().run(ctx)


def test_sft_step_metrics_are_logged_before_its_checkpoint(tmp_path, logged_at_save):
    records, seen_at_save = logged_at_save
    run(SFTStage, SFTConfig(data=DATA, steps=3, batch_size=4, checkpoint_every=1,
                            max_prompt_tokens=64, max_completion_tokens=32), tmp_path, records)
    assert sorted(seen_at_save) == [1, 2, 3]
    for step, seen in seen_at_save.items():
        assert (step, "train/loss") in seen, f"checkpoint {step} was saved before its loss was logged"


def test_grpo_step_metrics_are_logged_before_its_checkpoint(tmp_path, logged_at_save):
    records, seen_at_save = logged_at_save
    run(GRPOStage, GRPOConfig(data=DATA, steps=3, batch_size=2, num_generations=2, checkpoint_every=1,
                              rewards=[{"name": "format_strict"}], max_prompt_tokens=64, max_completion_tokens=16),
        tmp_path, records)
    assert sorted(seen_at_save) == [1, 2, 3]
    for step, seen in seen_at_save.items():
        for key in ("train/actor/loss", "train/rewards/mean", "reward/total/mean", "perf/rollout_seconds"):
            assert (step, key) in seen, f"checkpoint {step} was saved before {key} of step {step} was logged"
    # Tunix counts its rollouts from 0: shifted, they share the steps of the actor's records
    steps_of = lambda key: sorted(s for s, metrics in records if key in metrics)  # noqa: E731
    assert steps_of("train/rewards/mean") == steps_of("train/actor/loss") == [1, 2, 3]


def test_drop_rows_after_keeps_the_steps_before_a_resume(tmp_path):
    import json

    from reasonlab.files import drop_rows_after

    path = tmp_path / "rollouts.jsonl"
    path.write_text("".join(json.dumps({"step": s, "i": i}) + "\n" for s in (1, 2, 3) for i in range(2)) + '{"step": 4, "i"')
    assert drop_rows_after(path, 2) == 3  # step 3's two rows and the line a kill cut short
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 1, 2, 2]
    assert drop_rows_after(tmp_path / "absent.jsonl", 5) == 0
