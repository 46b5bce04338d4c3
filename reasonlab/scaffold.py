"""``reasonlab plugins new NAME``: a ready-to-install plugin package that passes its own tests."""

from __future__ import annotations

import re
from pathlib import Path

from reasonlab.errors import ReasonlabError

PYPROJECT = '''[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "reasonlab-{slug}"
version = "0.1.0"
description = "A reasonlab plugin."
requires-python = ">=3.11"
dependencies = ["reasonlab"]

[project.optional-dependencies]
test = ["pytest"]

[project.entry-points.reasonlab]
{module} = "{module}.plugin"

[tool.setuptools]
packages = ["{module}"]
'''

PLUGIN = '''"""The {slug} plugin: registers a reward through reasonlab's hooks.

Add more with register_losses, register_stages, register_datasets, ... (docs/plugins.md).
"""

from reasonlab import hookimpl
from reasonlab.format import parse_completion


def {func}(prompts, completions, **columns):
    """1.0 when the completion has a non-empty <answer>, else 0.0. Replace with your scoring."""
    return [1.0 if parse_completion(c).answer else 0.0 for c in completions]


@hookimpl
def register_rewards(register):
    register("{name}", {func})
'''

TEST = '''from reasonlab.plugins import PluginSystem

from {module} import plugin


def test_reward_scores_completions():
    completions = ["<reasoning>1 + 1 = 2</reasoning><answer>2</answer>", "no tags"]
    assert plugin.{func}(["q", "q"], completions) == [1.0, 0.0]


def test_plugin_registers_its_reward():
    system = PluginSystem()
    system.register_plugin(plugin, name="{module}")
    assert system.registry("rewards").get("{name}") is plugin.{func}
'''

README = '''# reasonlab-{slug}

A reasonlab plugin. Install it next to reasonlab and it is found through the
`reasonlab` entry point:

```bash
pip install -e .
reasonlab plugins            # lists {module}
python -m pytest tests
```

Use its reward in a recipe: `rewards = [{{ name = "{name}", weight = 1.0 }}]`.
'''


def create(name: str, parent: Path) -> Path:
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
        raise ReasonlabError(f"plugin name {name!r} must be lowercase letters, digits, '-' or '_'",
                             hint="e.g. reasonlab plugins new my-reward")
    slug = name.replace("_", "-")
    module = "reasonlab_" + name.replace("-", "_")
    func = name.replace("-", "_")
    root = parent / f"reasonlab-{slug}"
    if root.exists():
        raise ReasonlabError(f"{root} already exists", hint="choose another name or folder")
    values = {"slug": slug, "module": module, "func": func, "name": func}
    files = {"pyproject.toml": PYPROJECT, "README.md": README, f"{module}/__init__.py": '"""A reasonlab plugin."""\n',
             f"{module}/plugin.py": PLUGIN, "tests/test_plugin.py": TEST}
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**values), encoding="utf-8")
    return root
