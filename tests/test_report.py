"""The HTML run report: written at the end of a run, its numbers equal the run's files, and
it opens in a real headless Chromium with no console errors, no network requests and charts
that are drawn (Debian's chromium, driven by Playwright; skipped with the reason when absent)."""

from __future__ import annotations

import io
import json
import shutil
import statistics
from pathlib import Path

import pytest

from conftest import read_metrics, reasonlab
from wandb_files import records

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def browser_page():
    """A Playwright page in headless Chromium, or a skip that says what is missing."""
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (it is in the test extra: pip install -e '.[test]')")
    manager = sync_playwright().start()
    # the flags the closed network needs: no background fetches that would be refused
    browser = manager.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"])
    return manager, browser


def open_report(browser, path: Path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors, requests = [], []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.resolve().as_uri(), wait_until="load")
    return page, errors, requests


def drawn_fraction(png: bytes) -> float:
    """The share of a screenshot's pixels that are not background white."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    return float((pixels < 245).mean())


def test_the_run_writes_its_report_and_its_numbers_are_the_runs(quickstart_run):
    from reasonlab.compare import RunRecord
    from reasonlab.report import run_view

    run_dir, _ = quickstart_run
    assert (run_dir / "report.html").exists()  # written by the run itself
    view = run_view(RunRecord(run_dir))
    assert [s["name"] for s in view["stages"]] == ["eval_base", "sft", "grpo", "eval"]  # the recipe's order
    metrics = read_metrics(run_dir)
    for stage in view["stages"]:
        if stage["eval"]:
            written = json.loads((run_dir / "stages" / stage["name"] / "eval.json").read_text())["metrics"]
            for row in stage["eval"]:
                assert row["value"] == written[row["metric"]]
                assert (row["low"], row["high"]) == (written[f"{row['metric']}_ci95_low"],
                                                     written[f"{row['metric']}_ci95_high"])
        for row in stage["rewards"]:
            logged = [m[f"reward/{row['name']}/mean"] for m in metrics
                      if m["stage"] == stage["name"] and f"reward/{row['name']}/mean" in m]
            assert row["mean"] == pytest.approx(statistics.mean(logged)) and row["steps"] == len(logged)
        assert stage["seconds"] > 0 and stage["peak_rss_gb"] > 0
    grpo = next(s for s in view["stages"] if s["name"] == "grpo")
    assert {c["title"] for c in grpo["charts"]} >= {"loss", "reward", "KL to the reference", "entropy",
                                                    "completion length (tokens)", "held-out evaluation while training"}
    assert grpo["rollouts"]["step"] == 4 and len(grpo["rollouts"]["rows"]) == 8
    assert view["comparison"]["first"] == "eval_base" and view["comparison"]["last"] == "eval"


def test_the_report_and_the_trained_models_go_to_wandb_as_artifacts(quickstart_run):
    """The tiny profile sets tracking.wandb.log_model: SFT's and GRPO's final states are model
    artifacts (not the eval stages', which train nothing); the report is one of type report."""
    run_dir, _ = quickstart_run
    artifacts = [r.artifact for path in (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
                 for r in records(path) if r.WhichOneof("record_type") == "artifact"]
    reports = [a for a in artifacts if a.type == "report"]
    assert len(reports) == 1
    assert [entry.path for entry in reports[0].manifest.contents] == ["report.html"]
    models = sorted(a.name.rsplit("-", 1)[-1] for a in artifacts if a.type == "model")
    assert models == ["grpo", "sft"]
    for artifact in (a for a in artifacts if a.type == "model"):
        assert any(entry.path == "_CHECKPOINT_METADATA" for entry in artifact.manifest.contents)


@pytest.mark.slow
def test_the_report_opens_offline_in_chromium_with_charts_drawn(quickstart_run):
    run_dir, _ = quickstart_run
    manager, browser = browser_page()
    try:
        page, errors, requests = open_report(browser, run_dir / "report.html")
        assert errors == []
        assert requests == [(run_dir / "report.html").resolve().as_uri()]  # the file itself, nothing else
        charts = page.locator("figure.chart img")
        assert charts.count() >= 8
        for i in range(charts.count()):
            image = charts.nth(i)
            image.scroll_into_view_if_needed()
            assert image.evaluate("img => img.complete && img.naturalWidth > 0")
            assert drawn_fraction(image.screenshot()) > 0.02, image.get_attribute("alt")  # axes, lines, labels
        for cell in page.locator("tr[data-metric]").all():  # the numbers shown are the run's
            stage, metric = cell.get_attribute("data-stage"), cell.get_attribute("data-metric")
            written = json.loads((run_dir / "stages" / stage / "eval.json").read_text())["metrics"]
            assert float(cell.get_attribute("data-value")) == written[metric]
            assert cell.locator("td").nth(1).inner_text() == f"{written[metric]:.3f}"
        assert page.locator("tr[data-reward]").count() == 2
        assert "format_strict" in page.locator("#recipe").inner_text()
    finally:
        browser.close()
        manager.stop()


@pytest.mark.slow
def test_several_runs_side_by_side_with_the_flipped_items(quickstart_run, tmp_path):
    run_dir, _ = quickstart_run
    other = tmp_path / "other"
    shutil.copytree(run_dir, other, ignore=shutil.ignore_patterns("wandb", "checkpoints", "final"))
    samples_path = other / "stages" / "eval" / "samples.jsonl"
    samples = [json.loads(line) for line in samples_path.read_text().splitlines()]
    samples[0]["correct"], samples[1]["correct"] = 1 - samples[0]["correct"], 1 - samples[1]["correct"]
    samples_path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    out = tmp_path / "both.html"
    result = reasonlab("report", run_dir, other, "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    manager, browser = browser_page()
    try:
        page, errors, requests = open_report(browser, out)
        assert errors == [] and len(requests) == 1
        paired = page.locator("#paired tr[data-stage='eval']")
        assert paired.count() == 1
        assert page.locator("table.flipped[data-stage='eval'] tr").count() == 1 + 2  # header + the two flipped
        assert page.locator("figure.chart img").count() > 0
    finally:
        browser.close()
        manager.stop()
