"""What a stage plugin implements and what the runner hands it.

A stage plugin registers a class with a pydantic ``Config`` (its options in the
recipe's ``[[stages]]`` table) and a ``run(ctx)`` method::

    class MyStage:
        Config = MyConfig            # subclass of StageConfig
        def run(self, ctx: StageContext) -> StageResult: ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from reasonlab.schema import DataSpec, MeshSpec, PluginRef, Strict


class StageConfig(Strict):
    """Base of every stage's options (unknown keys are errors).

    mesh -> this stage's devices and role placement, when they differ from the recipe's
            ``[mesh]`` (see ``reasonlab.schema.MeshSpec``)
    """

    mesh: MeshSpec | None = None


class TrainingStageConfig(StageConfig):
    """Options every training stage shares.

    data            -> rows to train on (``data.source = "loader:arg"``)
    steps           -> optimiser steps
    batch_size      -> rows per step
    learning_rate   -> peak learning rate (AdamW; linear warmup then cosine decay)
    warmup_ratio    -> fraction of steps spent warming up (``warmup_steps`` wins when set)
    schedule, final_lr_ratio, weight_decay, adam_b1, adam_b2, max_grad_norm -> the
                       optimiser, with one meaning for every stage: ``reasonlab.optim``
    max_prompt_tokens / max_completion_tokens -> the length budget: longer rows are
                       dropped (never truncated: truncation teaches endless output)
    checkpoint_every -> orbax checkpoint interval in steps (default: only the last step)
    eval_every, eval_data, eval_options, eval_kind -> held-out evaluation while training:
                       every ``eval_every`` steps and after the last, the evaluating stage kind
                       (``eval_kind``; default: the one that declares ``default_evaluator``)
                       scores the model on ``eval_data`` with ``eval_options`` (its other keys,
                       e.g. ``answer_reward``, ``max_completion_tokens``) and its metrics are
                       logged as ``eval/<metric>`` at that step; each evaluation's files go to
                       ``stages/<name>/evals/step_<N>/``
    """

    data: DataSpec
    steps: PositiveInt
    batch_size: PositiveInt = 4
    learning_rate: PositiveFloat = 1e-4
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    warmup_steps: NonNegativeInt | None = None
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    final_lr_ratio: float = Field(0.1, ge=0.0, le=1.0)
    weight_decay: float = Field(1e-4, ge=0.0, allow_inf_nan=False)
    adam_b1: float = Field(0.9, ge=0.0, lt=1.0)
    adam_b2: float = Field(0.999, ge=0.0, lt=1.0)
    max_grad_norm: PositiveFloat | None = None
    max_prompt_tokens: PositiveInt = 256
    max_completion_tokens: PositiveInt = 256
    checkpoint_every: PositiveInt | None = None
    loss: Annotated[str, PluginRef("losses")] | None = None
    eval_every: PositiveInt | None = None
    eval_data: DataSpec | None = None
    eval_options: dict = {}
    eval_kind: Annotated[str, PluginRef("stages")] | None = None

    @model_validator(mode="after")
    def _eval_every_needs_eval_data(self):
        if (self.eval_every is None) != (self.eval_data is None):
            missing = "eval_data" if self.eval_data is None else "eval_every"
            raise ValueError(f"eval_every and eval_data go together: set {missing} too (or remove the other)")
        return self


def evaluator_class(config, plugins):
    """The stage kind that evaluates a training stage while it trains (``eval_kind``, else the
    one kind that declares ``default_evaluator``), or None without ``eval_every``."""
    if getattr(config, "eval_every", None) is None:
        return None
    stages = plugins.registry("stages")
    if config.eval_kind is not None:
        return stages.get(config.eval_kind)
    defaults = [name for name in stages.names() if getattr(stages.get(name), "default_evaluator", False)]
    if len(defaults) != 1:
        from reasonlab.errors import RecipeError

        raise RecipeError(f"no single default evaluator among the stage kinds ({', '.join(defaults) or 'none'})",
                          where="eval_kind", hint="name the stage kind that evaluates")
    return stages.get(defaults[0])


def evaluator_of(config, plugins):
    """(stage class, its config) for ``eval_every``, or None; the evaluator's own validation
    error for options it does not take."""
    stage_cls = evaluator_class(config, plugins)
    if stage_cls is None:
        return None
    return stage_cls, stage_cls.Config.model_validate({**config.eval_options, "data": config.eval_data})


@dataclass
class StageResult:
    """What a stage hands back: the trained model and its headline metrics."""

    model: Any
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class StageContext:
    """Everything a stage may use. Stages talk to the outside only through this."""

    name: str
    kind: str
    config: StageConfig
    recipe: Any  # reasonlab.recipe.Recipe
    model: Any  # reasonlab.modeling.ModelBundle from the previous stage (or the preset)
    dir: Path  # this stage's folder in the run directory
    seed: int
    plugins: Any  # reasonlab.plugins.PluginSystem
    log: Callable[[dict[str, float], int], None]  # log(metrics, step)
    progress: Any  # reasonlab.progress.RunProgress
    should_stop: Callable[[], bool] = lambda: False  # poll once per step; end the data iterator when True
    log_table: Callable[[str, list[str], list[list], int], None] = lambda name, columns, rows, step: None
    # log_rows(name, columns, rows, step): rows added to a table that grows over the stage
    log_rows: Callable[[str, list[str], list[list], int], None] = lambda name, columns, rows, step: None
    meshes: Any = None  # reasonlab.mesh.StageMeshes: .main (entered around run()) and .role(name)
    # history(key) -> [(step, value)] this stage logged, across resumes (its earlier sessions first)
    history: Callable[[str], list[tuple[int, float]]] = lambda key: []
    process_index: int = 0  # this process in a multi-process run (jax.distributed)
    process_count: int = 1
    shared: dict = field(default_factory=dict)  # lives as long as the run: the same dict for every stage
    run_root: Path | None = None  # the run directory, where ``dir`` is not RUN/stages/NAME

    @property
    def reward_context(self):
        """What rewards and judges that take a ``context`` get (reasonlab.rewards.RewardContext)."""
        from reasonlab.rewards import RewardContext

        return RewardContext(self.plugins, self.meshes, self.shared)

    @property
    def is_primary(self) -> bool:
        """Only the primary process writes files; the others compute alongside it."""
        return self.process_index == 0

    @property
    def run_dir(self) -> Path:
        return self.run_root or self.dir.parent.parent  # RUN/stages/NAME

    @property
    def mesh(self):
        return self.meshes.main if self.meshes is not None else None

    def stop_if_requested(self, steps_done: int, steps_total: int) -> None:
        """After the trainer returned: raise StageInterrupted if it stopped early on request."""
        from reasonlab.interrupt import StageInterrupted

        if steps_done < steps_total and self.should_stop():
            raise StageInterrupted(f"stage {self.name!r} stopped at step {steps_done}/{steps_total}")

    def registry(self, kind: str):
        return self.plugins.registry(kind)

    def load_rows(self, spec: DataSpec) -> list[dict]:
        """The rows of ``spec``; which ones were used is recorded in this stage's folder (rows.jsonl)."""
        import json

        from reasonlab.data import load_rows

        rows = load_rows(spec, self.plugins, run_dir=self.run_dir)
        if not self.is_primary:
            return rows
        loader = self.plugins.registry("datasets").get(spec.source.partition(":")[0])
        # the question, and what the source says makes its order (a curriculum's difficulty, a replay's flag)
        recorded = [spec.question_field, *getattr(loader, "recorded_columns", lambda spec: ())(spec)]
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "rows.jsonl", "w", encoding="utf-8") as fh:
            for row in rows:
                kept = {k: row[k] for k in recorded if k in row}
                fh.write(json.dumps(kept, default=str) + "\n")
        return rows

    # -- the training kit: what every training stage does the same way ----------------------
    def training_data(self, spec: DataSpec, columns: list[str], encode: Callable[[list[dict]], Any], *,
                      nothing_left: str, hint: str, kept_as: str | None = None):
        """Load the rows, check they have ``columns``, apply the length budget (``encode(rows)``
        returns a ``reasonlab.data.LengthBudget``), log ``data/rows`` and
        ``data/dropped_overlength`` (and ``kept_as``: how many were kept), and stop with
        ``nothing_left`` (``{rows}``: how many were read) when none is left. Returns (rows, budget)."""
        from reasonlab.data import require_columns
        from reasonlab.errors import DataError

        rows = self.load_rows(spec)
        require_columns(rows, columns, spec)
        budget = encode(rows)
        counts = {"data/rows": len(rows), "data/dropped_overlength": budget.dropped}
        self.log(counts | ({kept_as: len(budget.kept)} if kept_as else {}), 0)
        if not budget.kept:
            raise DataError(nothing_left.format(rows=len(rows)), where=f"stages.{self.name}", hint=hint)
        self._warn_unseen(spec, len(budget.kept))
        return rows, budget

    def _warn_unseen(self, spec: DataSpec, kept: int) -> None:
        """Rows in order (a curriculum) beyond what the steps draw are never trained on: say so."""
        used = getattr(self.config, "steps", 0) * getattr(self.config, "batch_size", 0)
        if spec.order != "as_is" or not used or kept <= used:
            return
        self.log({"data/unseen_rows": kept - used}, 0)
        self.progress.print(f"[yellow]stage {self.name!r}: its {kept} rows are used in order and "
                            f"steps × batch_size = {used}: the last {kept - used} (a curriculum's hardest) "
                            "are never trained on — raise steps or shorten the data")

    def evaluate(self, step: int) -> dict[str, float]:
        """Score the model as it is now with the stage's ``eval_data`` (``eval_every``), log the
        metrics as ``eval/<metric>`` at ``step`` and return them."""
        from dataclasses import replace

        from reasonlab.progress import RunProgress

        stage_cls, config = evaluator_of(self.config, self.plugins)
        child = replace(self, name=f"{self.name}.eval", kind="eval", config=config, run_root=self.run_dir,
                        dir=self.dir / "evals" / f"step_{step}", log=lambda metrics, step: None,
                        log_table=lambda *args: None, log_rows=lambda *args: None,
                        progress=RunProgress(False))  # the training stage's bar stays
        child.dir.mkdir(parents=True, exist_ok=True)
        metrics = {f"eval/{key}": float(value) for key, value in stage_cls().run(child).metrics.items()}
        self.log(metrics, step)
        return metrics

    def evaluation_hooks(self):
        """Tunix training hooks that run ``evaluate`` before each step whose number of finished
        steps is a multiple of ``eval_every``; ``after_training(step)`` runs the last one (None
        when the stage has no ``eval_every``). ``train`` uses them itself; a stage that drives
        its own Tunix trainer passes them to ``with_training_hooks`` and calls
        ``after_training`` when it is done."""
        if getattr(self.config, "eval_every", None) is None:
            return None
        from tunix.sft import hooks

        ctx, every = self, self.config.eval_every
        done = {step for step, _ in self.history("eval/n")}  # evaluated before a resume

        class Evaluations(hooks.TrainingHooks):
            def after_training(self, step: int) -> None:
                self._maybe(step, last=True)

            def _maybe(self, step: int, last: bool = False) -> None:
                if step and step not in done and (last or step % every == 0) and not ctx.should_stop():
                    done.add(step)
                    ctx.evaluate(step)

            def on_train_step_start(self, trainer):
                self._maybe(trainer.train_steps)

            # the rest does nothing (an RL learner calls train() once per step: on_train_end is no "last")
            def on_train_start(self, trainer): ...
            def on_train_end(self, trainer): ...
            def on_train_step_end(self, trainer, train_step, train_loss): ...
            def on_eval_step_start(self, trainer): ...
            def on_eval_step_end(self, trainer, eval_loss): ...

        return Evaluations()

    def train(self, trainer, batches, steps: int) -> None:
        """Run a Tunix trainer over ``batches``; it ends when they run out (or a stop is requested)
        and closes itself, saving the last step. On an error it is closed first (metrics flushed,
        listeners released); a requested stop before ``steps`` raises StageInterrupted.
        With ``eval_every``, the held-out evaluations run between steps (``evaluation_hooks``)."""
        hooks = self.evaluation_hooks()
        if hooks is not None:
            trainer.with_training_hooks(hooks)
        try:
            trainer.train(batches)
        except BaseException:
            trainer.close()
            raise
        self.stop_if_requested(trainer.train_steps, steps)
        if hooks is not None:
            hooks.after_training(trainer.train_steps)

    @property
    def checkpoint_dir(self) -> Path:
        return self.dir / "checkpoints"

