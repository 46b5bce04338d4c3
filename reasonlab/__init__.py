"""reasonlab: recipes of post-training stages that teach small LLMs to reason in
``<reasoning>…</reasoning><answer>…</answer>`` format, trained on Google's Tunix.

The core (this package) knows recipes, plugins, runs and tracking. Every concrete
stage, reward, loss, dataset, model and tracker is a plugin (see ``plugins/``).
Nothing here imports JAX at import time, so ``show``/``validate``/``plugins`` stay fast.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("reasonlab")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

from reasonlab.hookspecs import hookimpl

__all__ = ["__version__", "hookimpl"]
