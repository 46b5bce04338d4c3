"""No recompilation between steps: each heavy program compiles once per stage (JAX's compile log).

A step that recompiles (a shape that changes with the data, a new closure per step) costs
seconds to minutes on the embedded model every step; this catches it on the tiny one.
"""

from __future__ import annotations

import re
from collections import Counter

from conftest import REPO, reasonlab

RECIPE = REPO / "tests" / "recipes" / "mesh_tiny.toml"


def test_heavy_programs_compile_once(tmp_path):
    result = reasonlab("run", RECIPE, "--no-progress", "--runs-dir", tmp_path, "stages.grpo.steps=3",
                       'recipe.compilation_cache=false', env={"JAX_LOG_COMPILES": "1", "JAX_PLATFORMS": "cpu"})
    assert result.returncode == 0, result.stderr[-3000:]
    compiled = Counter(re.findall(r"Compiling jit\(([A-Za-z_0-9]+)\)", result.stderr))
    assert compiled["_train_step"] == 2  # SFT's (4 steps) and GRPO's (3 steps) trainers, once each
    # rollouts of every step; each prompt of a group prefilled once (GRPOConfig.shared_prefill)
    assert compiled["_prefill_once_per_group"] == 1 and compiled["_prefill_fn"] == 0
    assert compiled["_decode_fn"] == 1
    assert compiled["reference_logps"] == 1  # the reference log-probs of every step (reasonlab.logprobs)
    assert compiled["compute_per_token_logps"] == 0  # Tunix's full-vocabulary path is not used
