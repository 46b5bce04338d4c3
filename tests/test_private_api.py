"""Every private Tunix/JAX attribute reasonlab uses still exists in the installed versions
(reasonlab/private_api.py lists them); and a run refuses versions nobody checked them on."""

from __future__ import annotations

import importlib
import inspect

import pytest

from reasonlab.private_api import USES, WRITTEN_FOR, check_versions, installed_versions


@pytest.mark.parametrize("use", USES, ids=lambda u: f"{u.owner}.{u.name}")
def test_private_attribute_still_exists(use):
    module_name, _, class_name = use.owner.partition(":")
    owner = importlib.import_module(module_name)
    if class_name:
        owner = getattr(owner, class_name)
    if use.instance:  # assigned in the class's own code: look for the assignment or use
        source = inspect.getsource(owner)
        assert f"self.{use.name}" in source, f"{use.owner} no longer sets {use.name} ({use.where})"
    else:
        assert hasattr(owner, use.name), f"{use.owner} has no {use.name} any more ({use.where})"


def test_every_private_use_in_the_code_is_listed():
    """A new private JAX import anywhere in the package must be added to the list."""
    from pathlib import Path

    listed = {u.owner.partition(":")[0] for u in USES}
    root = Path(__file__).parents[1]
    for path in [*root.glob("reasonlab/*.py"), *root.glob("plugins/*.py")]:
        for line in path.read_text().splitlines():
            stripped = line.split("#")[0].strip()
            if stripped.startswith("from jax._src") and " import " in stripped:
                package, _, names = stripped.removeprefix("from ").partition(" import ")
                for name in (n.strip() for n in names.split(",")):
                    assert f"{package}.{name}" in listed or package in listed, f"{path.name}: {stripped}"


def test_the_pinned_versions_pass_and_others_stop(monkeypatch):
    assert installed_versions() == WRITTEN_FOR  # this checkout's environment is the pinned one
    check_versions()
    import reasonlab.private_api as private_api
    from reasonlab.errors import ReasonlabError

    monkeypatch.setattr(private_api, "installed_versions", lambda: {**WRITTEN_FOR, "google-tunix": "0.2.0"})
    with pytest.raises(ReasonlabError, match=r"google-tunix 0.2.0 \(written for 0.1.7\)"):
        check_versions()
    monkeypatch.setenv(private_api.ALLOW_ENV, "1")
    check_versions()


def test_no_other_module_touches_a_private_name():
    """private_api is the one module that spells them: the rest of the core and every plugin
    go through its functions and base classes (so an upgrade is re-checked in one file)."""
    import re
    from pathlib import Path

    from reasonlab.private_api import PRIVATE_NAMES

    root = Path(__file__).parents[1]
    pattern = re.compile("|".join(rf"(?<!\w){re.escape(name)}\b" for name in PRIVATE_NAMES if name != "jax._src")
                         + r"|\bjax\._src\b|\.__class__\s*=")
    offenders = [f"{path.relative_to(root)}:{number}: {line.strip()}"
                 for path in [*root.glob("reasonlab/**/*.py"), *root.glob("plugins/**/*.py")]
                 if path.name != "private_api.py"
                 for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not offenders, "\n".join(offenders)
