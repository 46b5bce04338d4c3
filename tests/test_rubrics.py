"""G-RaR's rubric step: a teacher (a real HTTP server on 127.0.0.1 speaking OpenAI's protocol)
writes a rubric per prompt; invalid ones are dropped and counted; GRPO's rubric judge scores
with them; a rerun asks the teacher only for prompts it has not seen."""

from __future__ import annotations

import json

from conftest import REPO, read_metrics, reasonlab, run_dir_of
from judge_server import JudgeServer

from reasonlab_plugins.stage_rubrics import parse_rubric

ITEMS = [("Essential", "States the mechanism"), ("Essential", "Gives the right answer"),
         ("Important", "Names the concept"), ("Important", "Explains step by step"),
         ("Optional", "Gives an example"), ("Optional", "Is concise"), ("Pitfall", "Avoids false claims")]


def rubric(question: str, size: int = 7) -> str:
    return json.dumps([{"title": title, "criterion": f"{title} for: {question[:40]}", "category": category}
                       for category, title in (ITEMS * 3)[:size]])


def teacher(messages):
    question = messages[-1]["content"].split("Question:\n", 1)[1].split("\n\nReference answer:", 1)[0]
    return rubric(question, 3) if "seasons" in question else rubric(question)  # 3 items: too few


def test_parse_rubric_accepts_only_rars_shape():
    assert len(parse_rubric(rubric("q"), 7, 20)) == 7
    assert parse_rubric("```json\n" + rubric("q") + "\n```", 7, 20)[0]["category"] == "Essential"
    no_essential = json.dumps([{"title": "t", "criterion": "c", "category": "Optional"}] * 7)
    cases = {rubric("q", 3): "3 items, not 7-20", "not json": "not JSON", '{"a": 1}': "not a list",
             no_essential: "no Essential item", None: "no reply",
             json.dumps([{"title": "t", "criterion": "c", "category": "Bonus"}] * 7): "category 'Bonus'",
             json.dumps([{"title": "t", "category": "Essential"}] * 7): "an item without title, criterion and category"}
    for reply, why in cases.items():
        assert parse_rubric(reply, 7, 20) == why


def run(runs, server, n, *more):
    result = reasonlab("run", REPO / "recipes" / "g_rar.toml", "--profile", "tiny", "--no-progress",
                       "--runs-dir", runs, "stages.rubrics.enabled=true",
                       f'stages.rubrics.teacher={{ base_url = "{server.url}", model = "teacher", cache = "{runs.parent}/cache.sqlite" }}',
                       f'stages.rubrics.data={{ source = "open_questions", options = {{ n = {n} }} }}',
                       "stages.eval_base.enabled=false", "stages.sft.enabled=false", "stages.eval.enabled=false", *more)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = run_dir_of(runs, "g_rar")
    return run_dir, json.loads((run_dir / "summary.json").read_text())["rubrics"]


def test_rubrics_stage_feeds_grpo_and_reruns_ask_only_for_new_prompts(tmp_path):
    with JudgeServer(teacher) as server:
        run_dir, summary = run(tmp_path / "a", server, 12, 'stages.grpo.data={ source = "stage:rubrics" }')
        written = [json.loads(line) for line in (run_dir / "stages/rubrics/rubrics.jsonl").read_text().splitlines()]
        dropped = int(summary["dropped_invalid"])
        assert summary["prompts"] == 12 and summary["teacher_requests"] == 12 and 0 < dropped < 12
        assert len(written) == 12 - dropped and all(len(r["rubric"]) == 7 for r in written)
        assert not any("seasons" in r["question"] for r in written)
        # GRPO trained on the teacher's rubrics, and the rubric judge scored them without a failure
        used = {json.loads(line)["question"] for line in (run_dir / "stages/grpo/rows.jsonl").read_text().splitlines()}
        assert used == {r["question"] for r in written}
        judged = [r for r in read_metrics(run_dir) if r["stage"] == "grpo" and "reward/rubric_judge/failures" in r]
        assert judged and all(r["reward/rubric_judge/failures"] == 0 for r in judged)

        _, again = run(tmp_path / "b", server, 12, "stages.grpo.enabled=false")
        assert again["teacher_requests"] == 0 and again["teacher_cache_hits"] == 12
        _, more = run(tmp_path / "c", server, 14, "stages.grpo.enabled=false")
        assert more["teacher_requests"] == 2 and more["teacher_cache_hits"] == 12
