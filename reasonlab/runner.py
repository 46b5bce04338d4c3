"""The runner: a run directory, the stages in order, each stage's model feeding the next.

Run directory (``runs/<recipe>/<timestamp>/``)::

    recipe.toml        the resolved recipe (profile and overrides applied)
    environment.json   versions, platform, command line
    state.json         each stage's status; "resume" reads it
    metrics.jsonl      every metric record of every stage
    stages/<name>/     checkpoints/ (Tunix's orbax manager), final/ (trainable params), samples.jsonl
    summary.json       headline metrics per stage
    wandb/             W&B files when the wandb tracker is on
"""

from __future__ import annotations

import json
import platform
import sys
import time
from datetime import datetime
from pathlib import Path

from reasonlab import compile_cache, distributed, memory
from reasonlab.errors import ReasonlabError
from reasonlab.files import RunLock, write_json
from reasonlab.interrupt import StageInterrupted, StopSignal, parse_duration
from reasonlab.machine import cpu_kind, peak_rss_gb
from reasonlab.plugins import call_hook
from reasonlab.redaction import REDACTED, redact, secret_values
from reasonlab.runs import RUN_FORMAT, check_run_dir, load_run_model  # noqa: F401 - load_run_model: the old import path
from reasonlab.progress import RunProgress
from reasonlab.stage import StageContext
from reasonlab.tracking import MetricsHub, RunInfo
from reasonlab.validate import preflight

RECORDED_PACKAGES = ("reasonlab", "google-tunix", "jax", "jaxlib", "flax", "qwix", "optax", "orbax-checkpoint",
                     "grain", "wandb", "datasets", "pluggy")


def environment(secrets: set[str] = frozenset()) -> dict:
    from reasonlab.private_api import package_versions

    versions = package_versions(RECORDED_PACKAGES)
    argv = []
    for arg in redact(sys.argv):
        for secret in secrets:
            arg = arg.replace(secret, REDACTED)
        argv.append(arg)
    return {"python": sys.version.split()[0], "platform": platform.platform(), "cpu": cpu_kind(), "argv": argv,
            "packages": versions}


def new_run_dir(root: Path, recipe_name: str, suffix: str = "") -> Path:
    base = root / recipe_name
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S") + suffix
    for n in range(1000):
        candidate = base / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            candidate.mkdir(parents=True, exist_ok=False)
            return candidate
        except FileExistsError:
            continue
    raise ReasonlabError(f"could not create a run directory under {base}")


class Runner:
    def __init__(self, recipe, plugins, run_dir: Path, progress: bool = True):
        self.recipe = recipe
        self.plugins = plugins
        self.shared: dict = {}  # StageContext.shared: what rewards and judges keep for the whole run
        self.dir = run_dir
        self.state_path = run_dir / "state.json"
        self.primary = distributed.is_primary()  # in a multi-process run only process 0 writes files and logs
        self.show_progress = progress and self.primary

    @classmethod
    def create(cls, recipe, plugins, runs_root: Path, progress: bool = True, suffix: str = "") -> "Runner":
        import tomli_w

        from reasonlab.mesh import run_meshes

        run_meshes(recipe)  # a mesh that does not fit the devices stops here, before the run directory exists
        run_dir = None
        if distributed.is_primary():
            run_dir = new_run_dir(Path(runs_root), recipe.name, suffix)
            (run_dir / "recipe.toml").write_text(tomli_w.dumps(redact(recipe.resolved)), encoding="utf-8")
            write_json(run_dir / "environment.json",
                       {**environment(secret_values(recipe.resolved)), "profile": recipe.profile,
                        "source": str(recipe.path), "processes": distributed.process_count(),
                        "compilation_cache": str(compile_cache.cache_path(recipe.info.compilation_cache))})
            write_json(run_dir / "state.json", {"status": "created", "format": RUN_FORMAT,
                                                "stages": {s.name: {"status": "pending"} for s in recipe.stages}})
        run_dir = Path(distributed.share_from_primary(str(run_dir or "")))  # after process 0 has written it
        return cls(recipe, plugins, run_dir, progress)

    # -- state ---------------------------------------------------------
    def read_state(self) -> dict:
        return json.loads(self.state_path.read_text(encoding="utf-8"))

    def _set_state(self, stage: str | None = None, **fields) -> None:
        """Update the run's fields, or one stage's when ``stage`` is given."""
        if not self.primary:
            return
        state = self.read_state()
        if stage:
            state["stages"].setdefault(stage, {}).update(fields)
        else:
            state.update(fields)
        write_json(self.state_path, state)

    # -- running -------------------------------------------------------
    def run(self, time_budget: str | None = None) -> dict:
        """Run (or continue) every stage. Returns the summary; a stop on request leaves the run resumable."""
        lock = RunLock(self.dir)
        if self.primary:
            lock.acquire()  # before any write: a second process on this run stops here
        try:
            return self._run_locked(time_budget)
        finally:
            lock.release()

    def _run_locked(self, time_budget: str | None) -> dict:
        from reasonlab.mesh import run_meshes
        from reasonlab.modeling import apply_lora, restore_trainable

        recipe = self.recipe
        budget = time_budget or recipe.info.time_budget
        self.stop = StopSignal(parse_duration(budget) if budget else None)
        self.stop.install()
        hook = self.plugins.pm.hook
        info = RunInfo(recipe=recipe.name, run_id=self.dir.name, dir=self.dir, config=redact(recipe.resolved),
                       tags=list(recipe.info.tags), profile=recipe.profile)
        trackers = [self.plugins.registry("trackers").get(name)(options, info)
                    for name, options in recipe.tracking.items() if self.primary]
        state = self.read_state()
        if state.get("status") == "running":  # we hold the lock, so its last writer is gone
            self._set_state(status="interrupted", resumable=True, reason="process gone")
            state = self.read_state()
        summary: dict = json.loads((self.dir / "summary.json").read_text()) if (self.dir / "summary.json").exists() else {}
        with RunProgress(self.show_progress) as progress:
            hub = MetricsHub(info, trackers, hook, progress, write=self.primary)
            try:
                self._set_state(status="running")
                self._notify("on_run_start", run=info)
                compile_cache.enable(recipe.info.compilation_cache,  # before the first compilation
                                     prefetch_as=self._prefetch_name())
                first = next((s.name for s in recipe.stages if s.enabled and not self._finished(state, s.name)), None)
                if first:
                    compile_cache.begin_stage(first)  # its programs load while the model does
                memory.release_after_compilations()
                self._preflight(state)  # a reward that cannot score, or unreadable data, stops here
                meshes = run_meshes(recipe)  # checked against the devices before the model loads
                bundle = self._load_model(next(iter(meshes.values())).main if meshes else None)
                if recipe.model.lora:
                    bundle = apply_lora(bundle, recipe.model.lora, recipe.info.seed)
                for index, stage in enumerate(recipe.stages):
                    if not stage.enabled:
                        self._set_state(stage=stage.name, status="skipped")
                        continue
                    if self._finished(state, stage.name):
                        bundle = restore_trainable(bundle, self.dir / "stages" / stage.name / "final")
                        continue  # finished in an earlier session
                    if _reads_earlier_stage(stage, self.plugins):
                        preflight(recipe, self.plugins, [stage], self.dir)  # its rows exist now
                    compile_cache.begin_stage(stage.name)
                    bundle, metrics = self._run_stage(index, stage, bundle, hub, progress, info, meshes[stage.name])
                    summary[stage.name] = metrics
                    if self.primary:
                        write_json(self.dir / "summary.json", summary)
                self._set_state(status="done", finished=time.time())
                self._notify("on_run_end", run=info, summary=summary)
            except StageInterrupted as exc:
                self._set_state(status="interrupted", resumable=True, reason=self.stop.reason, message=str(exc))
                progress.print(f"[yellow]stopped ({self.stop.reason}): {exc}. "
                               f"Checkpoint written; continue with: reasonlab resume {self.dir}")
                raise
            except BaseException as exc:
                # finished stages and checkpoints stay: `reasonlab resume` continues from them
                self._set_state(status="failed", error=f"{type(exc).__name__}: {exc}", resumable=True)
                raise
            finally:
                prefetched = compile_cache.finish_prefetch()
                if prefetched:  # which programs skipped their cache load on the critical path
                    self._set_state(compilation_cache={"prefetched": prefetched})
                try:
                    self._write_report(hub, progress)
                finally:
                    hub.close()
        return summary

    def _preflight(self, state: dict) -> None:
        """Read every unfinished stage's data and check its rewards before the first stage trains."""
        from reasonlab.private_api import check_versions

        check_versions()  # the private Tunix/JAX uses were checked on the pinned versions only
        todo = [s for s in self.recipe.stages
                if s.enabled and not self._finished(state, s.name) and not _reads_earlier_stage(s, self.plugins)]
        preflight(self.recipe, self.plugins, todo, self.dir)

    def _write_report(self, hub, progress) -> None:
        """RUN/report.html (``reasonlab.report``), also after a failure: what ran is worth seeing.
        The run's outcome stands whatever happens here, so a report that cannot be written says
        why and the run goes on to close."""
        if not self.primary:
            return
        from reasonlab.report import render

        hub.flush()
        try:
            path = render([self.dir])
        except Exception as exc:  # noqa: BLE001 - reported, and the run's own error (if any) is not masked
            progress.print(f"[yellow]report not written: {type(exc).__name__}: {exc} "
                           f"(try: reasonlab report {self.dir})")
            return
        hub.log_file(path, "report", "report")

    def _finished(self, state: dict, stage: str) -> bool:
        return (state["stages"].get(stage, {}).get("status") == "done"
                and (self.dir / "stages" / stage / "final").exists())

    def _prefetch_name(self) -> str | None:
        """Which earlier run's large programs to prefetch from the compilation cache: this recipe's,
        under this profile. Off in multi-process runs (each process would record its own devices)."""
        if distributed.process_count() > 1:
            return None
        return f"{self.recipe.name}.{self.recipe.profile or 'default'}"

    def _notify(self, hook_name: str, **kwargs) -> None:
        """Call a lifecycle hook once per run: on the primary process only."""
        if self.primary:
            call_hook(self.plugins.pm.hook, hook_name, **kwargs)

    def _load_model(self, mesh):
        from reasonlab.modeling import load_model

        return load_model(self.plugins, self.recipe.model, mesh)

    def _run_stage(self, index, stage, bundle, hub, progress, info, meshes):
        from reasonlab.mesh import place_bundle
        from reasonlab.modeling import save_trainable, share_backbone

        stage_dir = self.dir / "stages" / stage.name
        if self.primary:
            stage_dir.mkdir(parents=True, exist_ok=True)
        self._set_state(stage=stage.name, status="running", started=time.time())
        self._notify("on_stage_start", run=info, stage=stage)
        place_bundle(bundle, meshes.main)
        hub.start_stage(stage)
        progress.start_stage(f"{stage.name} ({stage.kind})", getattr(stage.config, "steps", None))
        ctx = StageContext(
            name=stage.name, kind=stage.kind, config=stage.config, recipe=self.recipe, model=bundle,
            dir=stage_dir, seed=self.recipe.info.seed + index, plugins=self.plugins, log=hub.log, progress=progress,
            should_stop=self.stop, log_table=hub.log_table, log_rows=hub.log_rows, meshes=meshes,
            history=lambda key: list(hub.history.get(key, [])),
            process_index=distributed.process_index(), process_count=distributed.process_count(),
            shared=self.shared,
        )
        runner_cls = self.plugins.registry("stages").get(stage.kind)
        try:
            with meshes.main:  # Tunix's trainers read the mesh from this context
                result = runner_cls().run(ctx)
        except StageInterrupted:
            self._set_state(stage=stage.name, status="interrupted")
            hub.end_stage({})
            raise
        progress.end_stage()
        if result.model.lora:  # the stage's train steps left the base model holding the old backbone arrays
            share_backbone(result.model.model, result.model.base)
        save_trainable(result.model, stage_dir / "final")  # every process: orbax writes each one's shards
        hub.end_stage(result.metrics)
        self._set_state(stage=stage.name, status="done", finished=time.time(), metrics=result.metrics,
                        peak_rss_gb=peak_rss_gb())
        self._notify("on_stage_end", run=info, stage=stage, result=result)
        return result.model, result.metrics


def _reads_earlier_stage(stage, plugins) -> bool:
    from reasonlab.data import needs_run

    data = getattr(stage.config, "data", None)
    return isinstance(getattr(data, "source", None), str) and needs_run(data.source, plugins)
