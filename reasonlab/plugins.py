"""Plugin loading and the registries built from the ``register_*`` hooks.

Plugins come from three places, all through the same hooks:
- the ``reasonlab`` entry-point group: our builtins (distribution ``reasonlab``,
  always loaded) and third-party packages (filtered by ``REASONLAB_LOAD_PLUGINS``,
  a comma-separated list of distribution names; empty means none);
- ``--plugins-dir DIR``: every ``*.py`` file in DIR, for one-off plugins;
- ``register_plugin(obj)`` in Python (tests, notebooks).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pluggy

from reasonlab import hookspecs
from reasonlab.errors import PluginError

BUILTIN_DISTRIBUTION = "reasonlab"
LOAD_PLUGINS_ENV = "REASONLAB_LOAD_PLUGINS"

# The registry kinds and the hook that fills each one.
KINDS = {
    "stages": "register_stages",
    "rewards": "register_rewards",
    "losses": "register_losses",
    "judges": "register_judges",
    "datasets": "register_datasets",
    "models": "register_models",
    "trackers": "register_trackers",
}


@dataclass
class Entry:
    name: str
    obj: Any
    plugin: str
    info: dict = field(default_factory=dict)


class Registry:
    """Named things of one kind (e.g. rewards), each remembering its plugin."""

    def __init__(self, kind: str, broken: dict[str, str] | None = None):
        self.kind = kind
        self.entries: dict[str, Entry] = {}
        self.broken = broken or {}  # plugins that failed to import: they may be what a name was meant for

    def add(self, name: str, obj: Any, plugin: str, **info) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered {self.kind[:-1]} with an empty or non-string name")
        if name in self.entries:
            other = self.entries[name].plugin
            raise PluginError(
                f"two plugins register the {self.kind[:-1]} {name!r}: {other!r} and {plugin!r}",
                hint=f"uninstall one, or limit what loads with {LOAD_PLUGINS_ENV}",
            )
        self.entries[name] = Entry(name, obj, plugin, info)

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def names(self) -> list[str]:
        return sorted(self.entries)

    def suggest(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return hint + f"available {self.kind}: {', '.join(self.names()) or '(none)'}"

    def get(self, name: str) -> Any:
        if name not in self.entries:
            broken = "".join(f"; plugin {p!r} failed to import ({why})" for p, why in self.broken.items())
            raise PluginError(f"unknown {self.kind[:-1]} {name!r}", hint=self.suggest(name) + broken)
        return self.entries[name].obj

    def info(self, name: str) -> dict:
        """What the plugin registered beside the object (``register(name, obj, **info)``)."""
        self.get(name)  # an unknown name is the same clear error
        return self.entries[name].info


class PluginSystem:
    """The pluggy manager plus the registries built from it."""

    def __init__(self):
        self.pm = pluggy.PluginManager("reasonlab")
        self.pm.add_hookspecs(hookspecs)
        self.distributions: dict[str, str] = {}  # plugin name -> "dist version"
        self.broken: dict[str, str] = {}  # entry point -> why it failed to import (reported, then skipped)
        self._registries: dict[str, Registry] | None = None

    # -- loading -------------------------------------------------------
    def register_plugin(self, obj: Any, name: str | None = None, distribution: str = "") -> None:
        name = name or getattr(obj, "__name__", repr(obj))
        if self.pm.get_plugin(name) is not None:
            return
        self.pm.register(obj, name=name)
        self.distributions[name] = distribution
        self._registries = None

    def load_entry_points(self) -> None:
        allowed = os.environ.get(LOAD_PLUGINS_ENV)
        allowed_set = None if allowed is None else {d.strip() for d in allowed.split(",") if d.strip()}
        for ep in entry_points(group="reasonlab"):
            dist = ep.dist.name if ep.dist else "?"
            builtin = dist == BUILTIN_DISTRIBUTION
            if not builtin and allowed_set is not None and dist not in allowed_set:
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken third-party plugin must not look like our bug, nor stop --help
                if builtin:
                    raise PluginError(f"builtin plugin {ep.name!r} failed to import: {type(exc).__name__}: {exc}",
                                      hint="reinstall reasonlab (pip install -e .)") from exc
                self.broken[ep.name] = (f"package {dist!r}: {type(exc).__name__}: {exc}; reinstall or uninstall it, "
                                        f"or skip it with {LOAD_PLUGINS_ENV}")
                continue
            version = ep.dist.version if ep.dist else ""
            self.register_plugin(module, name=ep.name, distribution=f"{dist} {version}".strip())

    def load_directory(self, directory: str | os.PathLike) -> None:
        path = Path(directory)
        if not path.is_dir():
            raise PluginError(f"--plugins-dir {str(path)!r} is not a directory")
        for file in sorted(path.glob("*.py")):
            module_name = f"reasonlab_local_plugins.{file.stem}"
            spec = importlib.util.spec_from_file_location(module_name, file)
            module = importlib.util.module_from_spec(spec)
            try:
                sys.modules[module_name] = module
                spec.loader.exec_module(module)
            except Exception as exc:
                sys.modules.pop(module_name, None)
                raise PluginError(
                    f"plugin file failed to import: {type(exc).__name__}: {exc}", where=str(file)
                ) from exc
            self.register_plugin(module, name=file.stem, distribution=f"file {file}")

    # -- registries ----------------------------------------------------
    def registries(self) -> dict[str, Registry]:
        if self._registries is None:
            self._registries = {kind: self._collect(kind, hook) for kind, hook in KINDS.items()}
        return self._registries

    def _collect(self, kind: str, hook_name: str) -> Registry:
        registry = Registry(kind, self.broken)
        for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
            def register(name, obj, _plugin=impl.plugin_name, **info):
                registry.add(name, obj, _plugin, **info)

            impl.function(register=register)
        return registry

    def registry(self, kind: str) -> Registry:
        return self.registries()[kind]

    def describe(self) -> list[dict]:
        """Each plugin with its distribution and what it registers (for ``reasonlab plugins``)."""
        registries = self.registries()
        rows = []
        for name, plugin in sorted(self.pm.list_name_plugin()):
            registers = {
                kind: sorted(e.name for e in reg.entries.values() if e.plugin == name)
                for kind, reg in registries.items()
            }
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            rows.append({
                "name": name,
                "distribution": self.distributions.get(name, ""),
                "hooks": hooks,
                "registers": {k: v for k, v in registers.items() if v},
            })
        return rows


_system: PluginSystem | None = None


def get_plugins(plugins_dir: str | None = None) -> PluginSystem:
    """The process-wide plugin system, loading entry points on first use."""
    global _system
    if _system is None:
        _system = PluginSystem()
        _system.load_entry_points()
    if plugins_dir:
        _system.load_directory(plugins_dir)
    return _system


def reset_plugins() -> None:
    """Forget loaded plugins (tests)."""
    global _system
    _system = None


def _raised_at(exc: BaseException) -> str | None:
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else None


def call_hook(hook, name: str, **kwargs) -> None:
    """Call every implementation of lifecycle hook ``name`` (``hook`` is ``pm.hook``), in
    pluggy's order. An exception names the plugin, the hook and where it was raised: it stops
    the run, which stays resumable."""
    caller = getattr(hook, name)
    if not hasattr(caller, "get_hookimpls"):  # a stand-in without pluggy (tests)
        caller(**kwargs)
        return
    for impl in reversed(caller.get_hookimpls()):
        try:
            impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
        except Exception as exc:
            raise PluginError(f"plugin {impl.plugin_name!r} failed in its {name} hook: {type(exc).__name__}: {exc}",
                              where=_raised_at(exc),
                              hint="lifecycle hooks must not raise; fix or uninstall the plugin, then "
                                   "`reasonlab resume` the run") from exc


def call_tracker(tracker, method: str, *args) -> None:
    """One tracker call; an exception names the tracker and the method."""
    try:
        getattr(tracker, method)(*args)
    except Exception as exc:
        raise PluginError(f"tracker {type(tracker).__name__} failed in {method}(): {type(exc).__name__}: {exc}",
                          where=_raised_at(exc),
                          hint="fix the tracker's options or turn it off in [tracking], then `reasonlab resume` "
                               "the run") from exc


def takes_context(fn) -> bool:
    """Whether a plugin callable declares a ``context`` parameter (then the core passes one)."""
    import inspect

    try:
        return "context" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
