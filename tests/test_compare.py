"""Two runs of different recipes, compared offline; eval summaries and sample tables in W&B."""

from __future__ import annotations

import pytest
from conftest import QUICKSTART, reasonlab, run_dir_of
from wandb_files import summarize

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def other_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("other")
    recipe = folder / "quickstart_short.toml"
    recipe.write_text(QUICKSTART.read_text().replace('name = "quickstart"', 'name = "quickstart_short"'))
    result = reasonlab("run", recipe, "--profile", "tiny", "--no-progress", "--runs-dir", folder / "runs",
                       "stages.sft.steps=60", "stages.grpo.steps=2")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir_of(folder / "runs", "quickstart_short")


def test_compare_prints_differences_and_writes_plots(quickstart_run, other_run, tmp_path):
    from PIL import Image

    first, _ = quickstart_run
    result = reasonlab("compare", first, other_run, "--out", tmp_path / "plots")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "configuration that differs" in out and "recipe.name" in out and "stages.sft.steps" in out
    assert "eval/format_accuracy" in out and "eval_base/format_accuracy" in out
    pngs = sorted((tmp_path / "plots").glob("*.png"))
    assert {p.name for p in pngs} >= {"curves_sft.png", "curves_grpo.png", "final_metrics.png"}
    for png in pngs:
        with Image.open(png) as image:
            assert image.format == "PNG" and image.width >= 400 and image.height >= 300


def test_wandb_files_hold_eval_summary_and_samples_table(quickstart_run, other_run):
    first, _ = quickstart_run
    for run_dir in (first, other_run):
        runs = {s["run"][1]: s for s in map(summarize, (run_dir / "wandb").glob("offline-run-*/run-*.wandb"))}
        for stage in ("eval_base", "eval"):
            assert "format_accuracy" in runs[stage]["summary"] and "answer_accuracy" in runs[stage]["summary"]
            logged = {k: v for h in runs[stage]["history"] for k, v in h.items() if k.startswith("eval/samples/step_0/")}
            assert logged["eval/samples/step_0/_type"] == "table-file" and logged["eval/samples/step_0/nrows"] == 16
            assert list(run_dir.glob(f"wandb/offline-run-*/files/{logged['eval/samples/step_0/path']}"))
        assert runs["eval"]["run"][0] == f"{run_dir.parent.name}-{run_dir.name}"
