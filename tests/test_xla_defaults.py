"""reasonlab's XLA defaults add what is missing from XLA_FLAGS and never override the user."""

from __future__ import annotations

from reasonlab import xla_defaults


def test_defaults_are_added_to_existing_flags():
    environ = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    xla_defaults.apply(environ)
    flags = environ["XLA_FLAGS"].split()
    assert flags[0] == "--xla_force_host_platform_device_count=4"
    assert "--xla_cpu_enable_concurrency_optimized_scheduler=false" in flags


def test_a_flag_the_user_set_wins_and_is_not_repeated():
    environ = {"XLA_FLAGS": "--xla_cpu_enable_concurrency_optimized_scheduler=true"}
    assert xla_defaults.apply(environ) == "--xla_cpu_enable_concurrency_optimized_scheduler=true"
    assert xla_defaults.apply({}) == "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def test_every_command_sets_them_before_plugins_load(tmp_path):
    from conftest import reasonlab

    seen = tmp_path / "xla_flags.txt"
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "record_flags.py").write_text(
        f"import os\nopen({str(seen)!r}, 'w').write(os.environ.get('XLA_FLAGS', ''))\n")
    result = reasonlab("--plugins-dir", plugins, "plugins", env={"XLA_FLAGS": "--xla_cpu_use_thunk_runtime=true"})
    assert result.returncode == 0, result.stderr
    assert seen.read_text().split() == ["--xla_cpu_use_thunk_runtime=true",
                                        "--xla_cpu_enable_concurrency_optimized_scheduler=false"]
