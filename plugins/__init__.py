"""reasonlab's builtin plugins, installed as the package ``reasonlab_plugins``.

Each module registers through the public hooks only, exactly like a third-party
plugin; pyproject.toml lists each one under ``[project.entry-points.reasonlab]``.
"""
