"""show / validate / plugins answer without importing JAX."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import QUICKSTART, reasonlab

PROBE = """
import sys
from reasonlab.cli import main
try:
    main({args!r})
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
heavy = sorted(m for m in ("jax", "flax", "tunix", "orbax", "wandb", "datasets", "tensorflow") if m in sys.modules)
assert not heavy, heavy
"""


@pytest.mark.parametrize("args", [
    ["show", str(QUICKSTART), "--profile", "tiny"],
    ["validate", str(QUICKSTART)],
    ["plugins", "--json"],
    ["recipes"],
    ["--help"],
])
def test_light_commands_do_not_import_jax(args):
    result = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_version():
    result = reasonlab("--version")
    assert result.returncode == 0 and "reasonlab, version" in result.stdout


def test_validate_every_shipped_recipe():
    from pathlib import Path

    repo = Path(QUICKSTART).parents[1]
    recipes = sorted(repo.glob("recipes/*.toml")) + sorted(repo.glob("examples/*.toml"))
    result = reasonlab("validate", *recipes)
    # every base and profile validates (G-RaR's base too: its GRPO rows come with the rubrics its
    # rubrics stage writes)
    assert result.returncode == 0 and "✗" not in result.stderr, result.stderr
    assert all(f"✓ {recipe}\n" in result.stdout for recipe in recipes)
    assert result.stdout.count("--profile cpu") == result.stdout.count("--profile tiny") == 8


def test_show_redacts_secrets_like_the_run_directory():
    options = ('{ judge = "openai", judge_options = { api_key = "sk-live-1", auth_token = "tok-2", passwd = "hunter2", '
               'client_secret = "s3", api_key_env = "MY_KEY", base_url = "https://user:pa55@judge.example/v1" } }')
    result = reasonlab("show", QUICKSTART, f'stages.grpo.rewards=[{{ name = "criteria_judge", options = {options} }}]')
    assert result.returncode == 0, result.stderr
    for secret in ("sk-live-1", "tok-2", "hunter2", '"s3"', "pa55"):
        assert secret not in result.stdout, secret
    assert 'api_key_env = "MY_KEY"' in result.stdout
    assert "https://user:***redacted***@judge.example/v1" in result.stdout


def test_redaction_spares_settings_that_only_look_like_secrets():
    from reasonlab.redaction import redact

    settings = {"max_prompt_tokens": 96, "max_completion_tokens": 64, "max_tokens": 8, "tokens_per_step": 3,
                "api_key_env": "MY_KEY", "keys": ["a"]}
    assert redact(settings) == settings
    secrets = {"token": "t", "hf_token": "t", "token_value": "t", "api_key": "k", "openai_key": "k",
               "client_secret": "s", "password": "p", "passwd": "p", "Authorization": "a", "credentials": "c"}
    assert set(redact(secrets).values()) == {"***redacted***"}


def test_recipes_lists_and_copies_the_bundled_recipes(tmp_path):
    from pathlib import Path

    repo = Path(QUICKSTART).parents[1]
    listed = reasonlab("recipes")
    assert listed.returncode == 0
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert names == sorted(p.stem for p in (repo / "recipes").glob("*.toml")) and len(names) == 8
    assert "quickstart" in names and "[tiny, cpu]" in listed.stdout
    copied = reasonlab("recipes", "cp", "quickstart", str(tmp_path))
    assert copied.returncode == 0 and (tmp_path / "quickstart.toml").read_text() == Path(QUICKSTART).read_text()
    again = reasonlab("recipes", "cp", "quickstart", str(tmp_path))
    assert again.returncode == 2 and "not overwriting" in again.stderr
    typo = reasonlab("recipes", "cp", "quikstart", str(tmp_path / "x.toml"))
    assert typo.returncode == 2 and "did you mean 'quickstart'" in typo.stderr


def test_validate_takes_the_overrides_run_and_show_take():
    good = reasonlab("validate", QUICKSTART, "stages.grpo.algorithm=dapo", "--profile", "cpu")
    assert good.returncode == 0 and "✓" in good.stdout, good.stderr
    bad = reasonlab("validate", QUICKSTART, "stages.grpo.algorithm=dapoo", "--profile", "cpu")
    assert bad.returncode == 2 and "stages.grpo.algorithm" in bad.stderr and "'dapoo'" in bad.stderr
    alone = reasonlab("validate", "stages.grpo.algorithm=dapo")
    assert alone.returncode == 2 and "no recipe to validate" in alone.stderr
