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

Hooks are called through pluggy's hook callers, one plugin at a time
(:meth:`pluggy.PluginManager.subset_hook_caller` keeps only the plugin being
loaded), so the ``register`` object each call receives is bound to that
plugin.  ``tryfirst``/``trylast`` order a plugin's own implementations of a
hook (several functions can implement one hook with ``specname=``),
``wrapper=True`` and ``hookwrapper=True`` implementations wrap that plugin's
registrations, and ``manager.pm.enable_tracing()`` traces every call.

A plugin whose import raises anything but ``KeyboardInterrupt`` (a
``SystemExit`` from ``sys.exit()`` included) is reported as broken, with its
traceback, and neuroplug goes on without it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .registry import (
    Entry,
    NameClashError,
    PluginError,
    PluginLoadError,
    ProvenanceError,
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
    "get_callback",
    "parse_origin",
]

hookimpl = pluggy.HookimplMarker("neuroplug")
"""Decorator marking a plugin function as a neuroplug hook implementation."""

ENTRY_POINT_GROUP = "neuroplug"

#: Built-in plugin modules, registered first and in this order.
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("backends", "neuroplug._builtin.backends"),
    ("layers", "neuroplug._builtin.layers"),
    ("pretrainers", "neuroplug._builtin.pretrainers"),
    ("callbacks", "neuroplug._builtin.callbacks"),
)

DISABLE_ENV = "NEUROPLUG_DISABLE_PLUGINS"
NO_AUTOLOAD_ENV = "NEUROPLUG_DISABLE_PLUGIN_AUTOLOAD"
STRICT_ENV = "NEUROPLUG_STRICT_PLUGINS"

_HOOKS = (
    ("layer", "neuroplug_register_layers"),
    ("pretrainer", "neuroplug_register_pretrainers"),
    ("backend", "neuroplug_register_backends"),
    ("callback", "neuroplug_register_callbacks"),
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
    #: The distribution that ships the plugin (``"neuroplug"`` for built-ins;
    #: ``None`` for a plugin registered at run time).
    distribution: str | None = None
    version: str | None = None
    #: ``{kind: [names]}`` this plugin registers that another plugin registers too.
    clashes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        """``"name (source)"``: how a saved model records the plugin that provided a name."""
        return f"{self.name} ({self.source})"


_ORIGIN_RE = re.compile(r"^(?P<plugin>[^\s(]+)(?: \((?P<source>.*)\))?$", re.S)
_DIST_RE = re.compile(r" in (?P<dist>\S+) \S+$")


def parse_origin(origin: str) -> tuple[str, str | None]:
    """Split an origin string (see :attr:`PluginInfo.origin`) into ``(plugin, distribution)``.

    The distribution is ``"neuroplug"`` for built-in plugins, the
    distribution's name for entry-point plugins and ``None`` when the origin
    does not say.
    """
    match = _ORIGIN_RE.match(str(origin).strip())
    if match is None:
        return str(origin).strip(), None
    source = match.group("source") or ""
    if source.startswith("built-in"):
        return match.group("plugin"), "neuroplug"
    dist = _DIST_RE.search(source)
    return match.group("plugin"), (dist.group("dist") if dist else None)


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
            m
            for m in required
            if getattr(obj, m, None) is None
            or getattr(obj, m) is getattr(base, m, object())
        ]
        if missing:
            raise TypeError(
                f"{obj.__name__} does not implement required method(s) {', '.join(missing)}"
            )

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
        self.autoload = (
            (not _env_flag(NO_AUTOLOAD_ENV)) if autoload is None else autoload
        )
        self.disabled = set(_env_list(DISABLE_ENV) if disabled is None else disabled)
        self.strict = _env_flag(STRICT_ENV) if strict is None else strict
        self.registries: dict[str, Registry] = {
            "layer": Registry(
                "layer",
                _validate_class("neuroplug.layers.base.Layer", ("forward", "backward")),
            ),
            "pretrainer": Registry(
                "pretrainer",
                _validate_class("neuroplug.pretrain.base.Pretrainer", ("pretrain",)),
            ),
            "backend": Registry("backend", _validate_class("neuroplug.ops.Ops", ())),
            "callback": Registry(
                "callback", _validate_class("neuroplug.callbacks.Callback", ())
            ),
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
    def callbacks(self) -> Registry:
        """Registry of training callbacks."""
        self.load()
        return self.registries["callback"]

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
                    kind: reg.by_plugin(info.name)
                    for kind, reg in self.registries.items()
                }
                info.clashes = {
                    kind: names
                    for kind, reg in self.registries.items()
                    if (
                        names := [
                            n for n, who in reg.clashes().items() if info.name in who
                        ]
                    )
                }
        return list(self._info.values())

    def clashes(self) -> dict[str, dict[str, list[str]]]:
        """``{kind: {name: [plugins]}}`` for every name that more than one plugin registers."""
        self.load()
        return {
            kind: reg.clashes()
            for kind, reg in self.registries.items()
            if reg.clashes()
        }

    def plugin_info(self, name: str) -> PluginInfo | None:
        """The :class:`PluginInfo` of plugin ``name`` (loaded, blocked or failed), or ``None``."""
        self.load()
        return self._info.get(name)

    def provider(self, kind: str, name: str) -> PluginInfo:
        """The :class:`PluginInfo` of the plugin that provides the ``kind`` ``name``.

        Raises :class:`~neuroplug.registry.UnknownNameError` or
        :class:`~neuroplug.registry.NameClashError` as a lookup does.
        """
        entry = self._registry(kind).entry(name)
        return self._info[entry.plugin]

    def _registry(self, kind: str) -> Registry:
        self.load()
        try:
            return self.registries[kind]
        except KeyError:
            raise ValueError(
                f"kind must be one of {', '.join(sorted(self.registries))}. Received: kind={kind!r}"
            ) from None

    def check_provenance(self, kind: str, name: str, recorded: str | None) -> Entry:
        """Check that ``name`` is provided by the plugin (and distribution) a model file recorded.

        Parameters
        ----------
        kind : {"layer", "pretrainer", "backend"}
        name : str
            The registered name the file uses.
        recorded : str or None
            The origin the file recorded (:attr:`PluginInfo.origin`, as
            ``neuroplug.save`` writes it); ``None`` checks only that the name
            is usable.

        Returns
        -------
        Entry
            The registry entry that will be used.

        Raises
        ------
        NameClashError
            Several plugins register ``name``.
        ProvenanceError
            ``name`` is not provided (the message says whether the recorded
            plugin is blocked, failed to load or is not installed), or another
            plugin (or distribution) than the recorded one provides it now.
        """
        registry = self._registry(kind)
        plugin, dist = parse_origin(recorded) if recorded else (None, None)
        if name in registry.clashes():
            raise NameClashError(kind, name, registry.contenders(name))
        # Messages continue a subject ("'model.npz' uses ..."), as neuroplug.load writes them.
        if name not in registry:
            known = f" Installed {kind}s: {', '.join(registry.names()) or '(none)'}."
            saved = f" It was saved with plugin {recorded}." if recorded else ""
            for info in self._info.values():
                same = plugin is not None and (
                    info.name == plugin
                    or (dist not in (None, "neuroplug") and info.distribution == dist)
                )
                if same and info.blocked:
                    raise ProvenanceError(
                        f"the {kind} {name!r} of plugin {info.name!r}, which is installed but blocked by "
                        f"NEUROPLUG_DISABLE_PLUGINS.{saved} Remove {info.name!r} from NEUROPLUG_DISABLE_PLUGINS "
                        f"to load this model.{known}"
                    )
                if same and info.error is not None:
                    raise ProvenanceError(
                        f"the {kind} {name!r} of plugin {info.name!r}, which is installed but failed to load "
                        f"({info.error}).{saved} Fix or reinstall that plugin to load this model.{known}"
                    )
            hint = (
                f" It was saved with plugin {recorded}; install that plugin to load this model."
                if recorded
                else ""
            )
            raise ProvenanceError(
                f"the {kind} {name!r}, which no installed plugin provides.{hint}{known}"
            )
        entry = registry.entry(name)
        now = self._info[entry.plugin]
        if plugin is not None and (
            now.name != plugin
            or (
                dist is not None
                and now.distribution is not None
                and now.distribution != dist
            )
        ):
            raise ProvenanceError(
                f"the {kind} {name!r}, which was saved with plugin {recorded}, but plugin {now.origin} "
                f"provides that name now and may compute something else. Install (or unblock) the original "
                f"plugin and block the other one with NEUROPLUG_DISABLE_PLUGINS={now.name}."
            )
        return entry

    # -- loading ------------------------------------------------------------
    def load(self) -> PluginManager:
        """Load the built-in and entry-point plugins once; later calls do nothing."""
        if self._loaded:
            return self
        with self._lock:
            if self._loaded:
                return self
            for name, module_path in self.builtins:
                if self._seen(name):
                    continue
                self._load_one(
                    name,
                    f"built-in ({module_path})",
                    lambda m=module_path: importlib.import_module(m),
                    distribution=("neuroplug", _neuroplug_version()),
                )
            if self.autoload:
                for ep in sorted(
                    importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
                    key=lambda e: e.name,
                ):
                    if self._seen(ep.name):
                        continue
                    dist = getattr(ep, "dist", None)
                    where = f"entry point {ep.value}"
                    distribution = None
                    if dist is not None:
                        distribution = (dist.metadata["Name"], dist.version)
                        where += f" in {distribution[0]} {distribution[1]}"
                    self._load_one(ep.name, where, ep.load, distribution=distribution)
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

    def register(
        self,
        plugin: object,
        name: str | None = None,
        *,
        source: str = "registered at run time",
    ) -> str:
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
        warnings.warn(
            f"{error} (neuroplug goes on without plugin {info.name!r})",
            PluginWarning,
            stacklevel=4,
        )

    def _load_one(
        self,
        name: str,
        source: str,
        loader,
        distribution: tuple[str, str] | None = None,
    ) -> None:
        if name in self._info and self._info[name].error is None:
            raise PluginLoadError(
                f"A plugin named {name!r} is already registered ({self._info[name].source}).",
                plugin=name,
            )
        info = PluginInfo(name=name, source=source)
        if distribution is not None:
            info.distribution, info.version = distribution
        self._info[name] = info
        if name in self.disabled:
            info.blocked = True
            return
        try:
            plugin = loader()
        except KeyboardInterrupt:
            raise
        except (
            BaseException
        ) as exc:  # a plugin's sys.exit() must not end the host process
            err = PluginLoadError(
                f'Error importing plugin "{name}" ({source}): {type(exc).__name__}: {exc}',
                plugin=name,
            )
            err.__cause__ = exc
            self._fail(info, err)
            return
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:
            err = PluginLoadError(
                f'Plugin "{name}" ({source}) could not be registered: {exc}',
                plugin=name,
            )
            err.__cause__ = exc
            self._fail(info, err)
            return
        unknown = [
            hook
            for hook, caller in vars(self.pm.hook).items()
            if isinstance(caller, pluggy.HookCaller)
            and not caller.has_spec()
            and any(impl.plugin is plugin for impl in caller.get_hookimpls())
        ]
        if unknown:
            known = ", ".join(h for _, h in _HOOKS)
            self._fail(
                info,
                PluginLoadError(
                    f'Plugin "{name}" ({source}) implements unknown hook(s) {", ".join(sorted(unknown))}; '
                    f"known hooks: {known}.",
                    plugin=name,
                ),
            )
            return
        others = [p for p in self.pm.get_plugins() if p is not plugin]
        staged: list[tuple[Registry, list]] = []
        for kind, hook in _HOOKS:
            registry = self.registries[kind]
            if not any(
                impl.plugin is plugin
                for impl in getattr(self.pm.hook, hook).get_hookimpls()
            ):
                continue
            # pluggy's own caller, limited to this plugin: ordering, wrappers and tracing apply.
            caller = self.pm.subset_hook_caller(hook, remove_plugins=others)
            register = Register(registry, name)
            try:
                caller(register=register)
            except RegistrationError as exc:
                self._fail(info, exc)
                return
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                err = PluginLoadError(
                    f'Plugin "{name}" ({source}) raised in {hook}: {type(exc).__name__}: {exc}',
                    plugin=name,
                )
                err.__cause__ = exc
                self._fail(info, err)
                return
            staged.append((registry, register.staged))
        # Commit only once every hook of this plugin succeeded (all or nothing; we hold the lock).
        clashes = []
        for registry, entries in staged:
            for clashed in registry.commit(entries):
                clashes.append(
                    NameClashError(registry.kind, clashed, registry.contenders(clashed))
                )
        for error in clashes:
            if self.strict:
                raise error
            warnings.warn(
                f"{error} (plugin {name!r}, {source})", PluginWarning, stacklevel=4
            )


def _neuroplug_version() -> str:
    from ._version import __version__

    return __version__


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


def get_callback(name: str) -> type:
    """Return the callback class registered as ``name``."""
    return get_plugin_manager().callbacks.get(name)


def get_backend(name: str) -> type:
    """Return the backend (``Ops`` subclass) registered as ``name``."""
    return get_plugin_manager().backends.get(name)
