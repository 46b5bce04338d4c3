"""``[tracking.wandb]``: one W&B run per stage.

group = "<recipe>-<run id>", job_type = the stage name, config = the resolved recipe,
tags = the recipe's tags. Options: ``project`` (default "reasonlab"), ``entity``,
``mode`` ("online" | "offline" | "disabled"). Without a mode, W&B runs online when an
API key is configured (``WANDB_API_KEY`` or ``wandb login``) and offline otherwise;
``WANDB_MODE`` in the environment wins over both. Files go to ``<run dir>/wandb``.
``log_model = true``: each training stage's trained state (its ``final/`` folder: LoRA
adapters, or all weights under full fine-tuning) is logged as a W&B artifact of type "model".
The run's HTML report is logged as an artifact of type "report" when the run ends.
Metrics are logged against ``stage_step`` so stages that log out of order lose nothing.
"""

from __future__ import annotations

import netrc
import os

from reasonlab import hookimpl


def api_key_configured() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_mode(options: dict) -> str:
    return os.environ.get("WANDB_MODE") or options.get("mode") or ("online" if api_key_configured() else "offline")


class WandbTracker:
    def __init__(self, options: dict, run):
        unknown = set(options) - {"project", "entity", "mode", "tags", "log_model"}
        if unknown:
            from reasonlab.errors import RecipeError

            raise RecipeError(f"tracking.wandb: unknown option(s) {', '.join(sorted(unknown))}",
                              hint="known: project, entity, mode, tags, log_model")
        if not isinstance(options.get("log_model", False), bool):
            from reasonlab.errors import RecipeError

            raise RecipeError("tracking.wandb.log_model must be true or false", hint="log_model = true")
        self.options = options
        self.run_info = run
        self._run = None
        self._stage = self._kind = ""
        self._growing: dict = {}  # name -> the stage's incremental wandb.Table

    def start_stage(self, stage: str, kind: str) -> None:
        self._stage, self._kind = stage, kind
        self._run = self._init(stage, kind)
        self._run.define_metric("stage_step")
        self._run.define_metric("*", step_metric="stage_step")

    def _init(self, stage: str, kind: str):
        import wandb

        info = self.run_info
        return wandb.init(
            project=self.options.get("project", "reasonlab"),
            entity=self.options.get("entity"),
            group=f"{info.recipe}-{info.run_id}",
            job_type=stage,
            name=f"{info.recipe}-{info.run_id}-{stage}",
            config={"recipe": info.config, "stage": stage, "kind": kind, "profile": info.profile},
            tags=[*info.tags, *self.options.get("tags", [])],
            dir=str(info.dir),
            mode=resolve_mode(self.options),
            reinit="create_new",
            # no system metadata: it records the command line, which may hold secrets in overrides;
            # the run directory's environment.json keeps a redacted copy instead
            settings=wandb.Settings(console="off", silent=True, x_disable_meta=True),
        )

    def log_file(self, path, name: str, kind: str) -> None:
        """A whole-run file (the HTML report) as a W&B artifact, in a short run of the run's group."""
        import wandb

        run = self._init(name, kind)
        info = self.run_info
        artifact = wandb.Artifact(f"{info.recipe}-{info.run_id}-{name}", type=kind)
        artifact.add_file(str(path))
        run.log_artifact(artifact)
        run.finish()

    def log(self, metrics: dict, step: int) -> None:
        if self._run is not None:
            self._run.log({"stage_step": step, **metrics})

    def log_table(self, name: str, columns: list[str], rows: list[list], step: int) -> None:
        """Each table goes under its own key with its step, so later tables never overwrite earlier ones."""
        import wandb

        if self._run is not None:
            self._run.log({"stage_step": step, f"{name}/step_{step}": wandb.Table(columns=columns, data=rows)})

    def log_rows(self, name: str, columns: list[str], rows: list[list], step: int) -> None:
        """One table per stage that grows: W&B's INCREMENTAL log mode sends only the new rows
        each time, and its UI shows them all (a plain table logged again would replace it)."""
        import wandb

        if self._run is None:
            return
        table = self._growing.get(name)
        if table is None:
            table = self._growing[name] = wandb.Table(columns=columns, log_mode="INCREMENTAL")
        for row in rows:
            table.add_data(*row)
        self._run.log({"stage_step": step, name: table})

    def end_stage(self, summary: dict) -> None:
        self._growing = {}
        final = self.run_info.dir / "stages" / self._stage / "final"
        trained = self._kind != "eval"  # an eval stage's final/ is the model it was handed
        if self._run is not None and self.options.get("log_model") and trained and final.is_dir():
            import wandb  # the stage's trained state (LoRA adapters, or all weights) as a model artifact

            artifact = wandb.Artifact(f"{self.run_info.recipe}-{self.run_info.run_id}-{self._stage}", type="model")
            artifact.add_dir(str(final))
            self._run.log_artifact(artifact)
        if self._run is not None:
            self._run.summary.update(summary)
            self._run.finish()
            self._run = None

    def close(self) -> None:
        if self._run is not None:
            self._run.finish(exit_code=1)
            self._run = None


@hookimpl
def register_trackers(register):
    register("wandb", WandbTracker)
