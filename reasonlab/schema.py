"""Typed recipe sections shared by the core and by stage plugins.

Fields that name a plugin are annotated with ``PluginRef(kind)``; the recipe loader
checks every such field against the registries, wherever it sits in a stage's options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveFloat, PositiveInt, field_validator

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


@dataclass(frozen=True)
class PluginRef:
    """Marks a string field as naming a plugin of ``kind`` (text before ':' when ``prefix``)."""

    kind: str
    prefix: bool = False

    def plugin_name(self, value: str) -> str:
        return value.split(":", 1)[0] if self.prefix else value


class Strict(BaseModel):
    """Base for recipe sections: unknown keys are errors, never silently ignored."""

    # strict: a bool is not a number and "no" is not a bool; NaN and inf are never a setting
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class RecipeInfo(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    seed: int = 0
    source: str = ""
    tags: list[str] = []
    time_budget: str | None = None  # e.g. "8h30m": stop cleanly before it runs out; resume later
    compilation_cache: bool | str = True  # JAX's persistent cache: true = ~/.cache/reasonlab/xla, a path, or false

    @field_validator("time_budget")
    @classmethod
    def _duration(cls, value):
        if value is not None:
            from reasonlab.interrupt import parse_duration

            parse_duration(value)  # ValueError -> a recipe error at recipe.time_budget
        return value


class LoraSpec(Strict):
    rank: PositiveInt = 8
    alpha: PositiveFloat = 16.0
    modules: str | None = None  # a regex of module paths; None: the model preset's own (ModelBundle.lora_modules)


class ModelSpec(Strict):
    preset: Annotated[str, PluginRef("models")]
    lora: LoraSpec | Literal[False] | None = None  # false: train all parameters (lets a profile turn LoRA off)
    # parameters' dtype; "auto" (the embedded preset's default): reasonlab.machine.auto_dtype picks per CPU
    dtype: Literal["float32", "bfloat16", "auto"] | None = None
    path: str | None = None  # local checkpoint directory, for presets that load one


class DataSpec(Strict):
    """Where a stage's rows come from and which columns hold what."""

    source: Annotated[str, PluginRef("datasets", prefix=True)]
    split: str = "train"
    limit: PositiveInt | None = None
    question_field: str = "question"
    answer_field: str = "answer"
    reasoning_field: str = "reasoning"
    completion_field: str | None = None  # a ready-made target; else built from reasoning + answer
    template: str | None = None  # prompt template with {question}; default asks for the tags
    system_prompt: str | None = None  # put before the prompt (inside the user turn for chat models)
    chat: bool | None = None  # wrap prompts in the model's chat turns: None = when the model has them
    options: dict[str, Any] = {}  # passed to the loader (e.g. n, seed of a generator)
    order: Literal["shuffle", "as_is"] = "shuffle"  # as_is keeps the loader's order (curricula)
    # the columns the rows have, for sources that cannot say before they are read (hf:); checked against them
    columns: list[str] | None = None

    @field_validator("template")
    @classmethod
    def _template_fields(cls, template):
        """A template may name only {question} (and {{ }} for literal braces): caught at validate."""
        import string

        if template is None:
            return template
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
        except ValueError as exc:
            raise ValueError(f"template is not a format string ({exc}); write literal braces as {{{{ }}}}") from None
        if fields - {"question"}:
            raise ValueError(f"template names {', '.join('{' + f + '}' for f in sorted(fields - {'question'}))}; "
                             "only {question} "
                             "is filled in (write literal braces as {{ }})")
        return template


class RewardSpec(Strict):
    """One reward of a stage: its plugin, weight, options and a per-call time limit."""

    name: Annotated[str, PluginRef("rewards")]
    weight: float = Field(1.0, allow_inf_nan=False)
    options: dict[str, Any] = {}
    timeout: PositiveFloat | None = None  # seconds per call; default: what the reward registered (600 s, judges less)


class DeviceSlice(Strict):
    """Devices (indices into ``jax.devices()``, default all) arranged as named mesh axes.

    ``shape`` maps axis names to sizes in order, e.g. ``{ fsdp = 2, tp = 2 }``; the default
    puts every device of the slice on ``fsdp``. The models shard their weights over
    ``fsdp`` and ``tp``: an axis the shape leaves out has size 1.
    """

    shape: dict[str, PositiveInt] | None = None
    devices: list[NonNegativeInt] | None = Field(None, min_length=1)


MeshRole = Annotated[str, Field(pattern=NAME_PATTERN)]


class MeshSpec(DeviceSlice):
    """``[mesh]``: the devices a run (or ``mesh = {...}`` in one stage) trains on.

    ``roles`` places a stage's models on their own slices ("split mesh"), e.g. GRPO's
    ``roles.rollout = { devices = [2, 3] }``; a role left out uses the main mesh. Which role
    names exist is for the stage kinds to say (their ``mesh_roles``), checked at validate.
    """

    roles: dict[MeshRole, DeviceSlice] = {}


class StageSpec(BaseModel):
    """``[[stages]]`` before its kind's options are validated by the stage plugin."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)
    name: str = Field(pattern=NAME_PATTERN)
    kind: Annotated[str, PluginRef("stages")]
    enabled: bool = True  # a profile can switch a stage off (e.g. a teacher stage on a machine without the teacher)


class RecipeModel(Strict):
    recipe: RecipeInfo
    model: ModelSpec
    stages: list[StageSpec] = Field(min_length=1)
    tracking: dict[str, dict[str, Any]] = {}
    mesh: MeshSpec = MeshSpec()
