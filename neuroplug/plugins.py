"""The plugin manager: built-in plugins first, then the ``neuroplug`` entry points.

Built-in layers, pretrainers and backends are registered by built-in plugin
modules through exactly the same hooks as third-party plugins (as pytest does
with its default plugins).  Loading is lazy (on the first lookup), idempotent
and thread-safe, so a fresh joblib or Dask worker process loads its plugins by
itself the first time it needs one.

Environment variables
---------------------
NEUROPLUG_DISABLE_PLUGINS
    Comma-separated plugin names to block (built-in or entry-point names).
NEUROPLUG_DISABLE_PLUGIN_AUTOLOAD
    Set to ``1`` to load no entry-point plugins at all (built-ins still load).
NEUROPLUG_STRICT_PLUGINS
    Set to ``1`` to raise the first plugin error instead of warning and going
    on without the broken plugin.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import threading
import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Iterable

import pluggy

from . import hookspecs
from .registry import (
    PluginError,
    PluginLoadError,
    Register,
    RegistrationError,
    Registry,
)

__all__ = [
    "hookimpl",
    "ENTRY_POINT_GROUP",
    "BUILTIN_PLUGINS",
    "PluginWarning",
    "PluginInfo",
    "PluginManager",
    "get_plugin_manager",
    "reset_plugin_manager",
    "get_layer",
    "get_pretrainer",
    "get_backend",
]

hookimpl = pluggy.HookimplMarker("neuroplug")
"""Decorator marking a plugin function as a neuroplug hook implementation."""

ENTRY_POINT_GROUP = "neuroplug"

#: Built-in plugin modules, registered first and in this order.
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("backends", "neuroplug._builtin.backends"),
    ("layers", "neuroplug._builtin.layers"),
    ("pretrainers", "neuroplug._builtin.pretrainers"),
)

DISABLE_ENV = "NEUROPLUG_DISABLE_PLUGINS"
NO_AUTOLOAD_ENV = "NEUROPLUG_DISABLE_PLUGIN_AUTOLOAD"
STRICT_ENV = "NEUROPLUG_STRICT_PLUGINS"

_HOOKS = (
    ("layer", "neuroplug_register_layers"),
    ("pretrainer", "neuroplug_register_pretrainers"),
    ("backend", "neuroplug_register_backends"),
)


class PluginWarning(UserWarning):
    """A plugin failed to load; neuroplug goes on without it."""


@dataclass
class PluginInfo:
    """What :meth:`PluginManager.info` reports about one plugin."""

    name: str
    source: str
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: PluginError | None = None
    blocked: bool = False


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _env_list(name: str) -> set[str]:
    return {p.strip() for p in os.environ.get(name, "").split(",") if p.strip()}


def _validate_class(base_path: str, required: tuple[str, ...]):
    def validate(name: str, obj: Any) -> None:
        module, _, cls_name = base_path.rpartition(".")
        base = getattr(importlib.import_module(module), cls_name)
        if not (isinstance(obj, type) and issubclass(obj, base)):
            raise TypeError(f"expected a subclass of {base_path}, got {obj!r}")
        missing = [
            m for m in required
            if getattr(obj, m, None) is None or getattr(obj, m) is getattr(base, m, object())
        ]
        if missing:
            raise TypeError(f"{obj.__name__} does not implement required method(s) {', '.join(missing)}")
    return validate


class PluginManager:
    """Loads plugins and holds the layer, pretrainer and backend registries.

    Parameters
    ----------
    builtins : iterable of (name, module path)
        Built-in plugin modules; default :data:`BUILTIN_PLUGINS`.
    autoload : bool, optional
        Load entry-point plugins; default unless
        ``NEUROPLUG_DISABLE_PLUGIN_AUTOLOAD`` is set.
    disabled : iterable of str, optional
        Plugin names to block; default from ``NEUROPLUG_DISABLE_PLUGINS``.
    strict : bool, optional
        Raise the first plugin error instead of warning; default from
        ``NEUROPLUG_STRICT_PLUGINS``.
    """

    def __init__(
        self,
        builtins: Iterable[tuple[str, str]] = BUILTIN_PLUGINS,
        *,
        autoload: bool | None = None,
        disabled: Iterable[str] | None = None,
        strict: bool | None = None,
    ) -> None:
        self.pm = pluggy.PluginManager("neuroplug")
        self.pm.add_hookspecs(hookspecs)
        self.builtins = tuple(builtins)
        self.autoload = (not _env_flag(NO_AUTOLOAD_ENV)) if autoload is None else autoload
        self.disabled = set(_env_list(DISABLE_ENV) if disabled is None else disabled)
        self.strict = _env_flag(STRICT_ENV) if strict is None else strict
        self.registries: dict[str, Registry] = {
            "layer": Registry("layer", _validate_class("neuroplug.layers.base.Layer", ("forward", "backward"))),
            "pretrainer": Registry(
                "pretrainer", _validate_class("neuroplug.pretrain.base.Pretrainer", ("pretrain",))
            ),
            "backend": Registry("backend", _validate_class("neuroplug.ops.Ops", ())),
        }
        self._info: dict[str, PluginInfo] = {}
        self._lock = threading.RLock()
        self._loaded = False

    # -- registries ---------------------------------------------------------
    @property
    def layers(self) -> Registry:
        """Registry of layer types."""
        self.load()
        return self.registries["layer"]

    @property
    def pretrainers(self) -> Registry:
        """Registry of pretrainers."""
        self.load()
        return self.registries["pretrainer"]

    @property
    def backends(self) -> Registry:
        """Registry of backends (``Ops`` subclasses)."""
        self.load()
        return self.registries["backend"]

    @property
    def errors(self) -> list[PluginError]:
        """Errors of plugins that failed to load or register."""
        self.load()
        return [i.error for i in self._info.values() if i.error is not None]

    def info(self) -> list[PluginInfo]:
        """One :class:`PluginInfo` per known plugin, in load order."""
        self.load()
        for info in self._info.values():
            if info.error is None and not info.blocked:
                info.registered = {
                    kind: reg.by_plugin(info.name) for kind, reg in self.registries.items()
                }
        return list(self._info.values())

    # -- loading ------------------------------------------------------------
    def load(self) -> "PluginManager":
        """Load the built-in and entry-point plugins once; later calls do nothing."""
        if self._loaded:
            return self
        with self._lock:
            if self._loaded:
                return self
            for name, module_path in self.builtins:
                if self._seen(name):
                    continue
                self._load_one(name, f"built-in ({module_path})", lambda m=module_path: importlib.import_module(m))
            if self.autoload:
                for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
                    if self._seen(ep.name):
                        continue
                    dist = getattr(ep, "dist", None)
                    where = f"entry point {ep.value}"
                    if dist is not None:
                        where += f" in {dist.metadata['Name']} {dist.version}"
                    self._load_one(ep.name, where, ep.load)
            self._loaded = True
        return self

    def _seen(self, name: str) -> bool:
        """True when an earlier :meth:`load` that a strict-mode error interrupted handled ``name``.

        Such a load resumes where it stopped instead of reporting the plugins
        it already loaded as duplicates; in strict mode the broken plugin's
        own error is raised again, so every lookup names the real culprit.
        """
        info = self._info.get(name)
        if info is None:
            return False
        if info.error is not None and self.strict:
            raise info.error
        return True

    def register(self, plugin: object, name: str | None = None, *, source: str = "registered at run time") -> str:
        """Register a plugin object (module or instance) now and run its hooks.

        Returns the plugin name.  Errors follow the manager's ``strict`` rule.
        """
        self.load()
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        with self._lock:
            self._load_one(name, source, lambda: plugin)
        return name

    def unregister(self, name: str) -> None:
        """Remove plugin ``name`` and everything it registered."""
        with self._lock:
            if self.pm.has_plugin(name):
                self.pm.unregister(name=name)
            for reg in self.registries.values():
                reg.remove_plugin(name)
            self._info.pop(name, None)

    def _fail(self, info: PluginInfo, error: PluginError) -> None:
        info.error = error
        for reg in self.registries.values():
            reg.remove_plugin(info.name)
            reg.note_failure(info.name, str(error))
        if self.pm.has_plugin(info.name):
            self.pm.unregister(name=info.name)
        if self.strict:
            raise error
        warnings.warn(f"{error} (neuroplug goes on without plugin {info.name!r})", PluginWarning, stacklevel=4)

    def _load_one(self, name: str, source: str, loader) -> None:
        if name in self._info and self._info[name].error is None:
            raise PluginLoadError(f"A plugin named {name!r} is already registered ({self._info[name].source}).", plugin=name)
        info = PluginInfo(name=name, source=source)
        self._info[name] = info
        if name in self.disabled:
            info.blocked = True
            return
        try:
            plugin = loader()
        except Exception as exc:
            err = PluginLoadError(f'Error importing plugin "{name}" ({source}): {type(exc).__name__}: {exc}', plugin=name)
            err.__cause__ = exc
            self._fail(info, err)
            return
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:
            err = PluginLoadError(f'Plugin "{name}" ({source}) could not be registered: {exc}', plugin=name)
            err.__cause__ = exc
            self._fail(info, err)
            return
        unknown = [
            hook for hook, caller in vars(self.pm.hook).items()
            if isinstance(caller, pluggy.HookCaller) and not caller.has_spec()
            and any(impl.plugin is plugin for impl in caller.get_hookimpls())
        ]
        if unknown:
            known = ", ".join(h for _, h in _HOOKS)
            self._fail(info, PluginLoadError(
                f'Plugin "{name}" ({source}) implements unknown hook(s) {", ".join(sorted(unknown))}; '
                f"known hooks: {known}.", plugin=name))
            return
        staged: list[tuple[Registry, list]] = []
        for kind, hook in _HOOKS:
            registry = self.registries[kind]
            for impl in getattr(self.pm.hook, hook).get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                register = Register(registry, name)
                try:
                    impl.function(**{arg: register for arg in impl.argnames})
                except RegistrationError as exc:
                    self._fail(info, exc)
                    return
                except Exception as exc:
                    err = PluginLoadError(
                        f'Plugin "{name}" ({source}) raised in {hook}: {type(exc).__name__}: {exc}', plugin=name)
                    err.__cause__ = exc
                    self._fail(info, err)
                    return
                staged.append((registry, register.staged))
        # Check the staged names against each other across hooks of this plugin
        # once more (another plugin may not have changed them meanwhile: we hold the lock).
        for registry, entries in staged:
            registry.commit(entries)


_manager: PluginManager | None = None
_manager_lock = threading.Lock()


def get_plugin_manager() -> PluginManager:
    """Return the process-wide :class:`PluginManager`, loading plugins on first use."""
    global _manager
    if _manager is None:
        with _manager_lock:
            if _manager is None:
                _manager = PluginManager()
    return _manager.load()


def reset_plugin_manager(manager: PluginManager | None = None) -> PluginManager | None:
    """Replace the process-wide manager (``None``: rebuild lazily); return the old one.

    Meant for tests and for applications that change the environment
    variables above after import.
    """
    global _manager
    with _manager_lock:
        old, _manager = _manager, manager
    return old


def get_layer(name: str) -> type:
    """Return the layer class registered as ``name``."""
    return get_plugin_manager().layers.get(name)


def get_pretrainer(name: str) -> type:
    """Return the pretrainer class registered as ``name``."""
    return get_plugin_manager().pretrainers.get(name)


def get_backend(name: str) -> type:
    """Return the backend (``Ops`` subclass) registered as ``name``."""
    return get_plugin_manager().backends.get(name)
