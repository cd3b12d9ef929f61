"""Typed registries of layer types, pretrainers and backends.

Plugins never touch a :class:`Registry` directly: each registering hook gets a
:class:`Register` bound to the calling plugin.  What a plugin registers in one
hook call is staged and committed only when the whole call succeeded, so a
plugin that fails halfway leaves nothing behind and the other plugins keep
working.

A name that two plugins register fails closed: neither object is used, and
every lookup of the name raises :class:`NameClashError` naming both plugins
until one of them is blocked (``NEUROPLUG_DISABLE_PLUGINS``) or unregistered.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PluginError",
    "PluginLoadError",
    "RegistrationError",
    "DuplicateNameError",
    "NameClashError",
    "UnknownNameError",
    "ProvenanceError",
    "Entry",
    "Registry",
    "Register",
]

_NAME_RE = re.compile(r"^[a-z][a-z0-9_\-]*$")


class PluginError(RuntimeError):
    """A plugin could not be loaded or registered something invalid.

    ``plugin`` names the offending plugin; the original exception, when there
    is one, is chained as ``__cause__`` so its traceback is kept.
    """

    def __init__(self, message: str, *, plugin: str) -> None:
        super().__init__(message)
        self.plugin = plugin


class PluginLoadError(PluginError):
    """A plugin failed to import, or pluggy refused to register it."""


class RegistrationError(PluginError, ValueError):
    """A plugin registered an invalid name or object."""


class DuplicateNameError(RegistrationError):
    """Two plugins registered the same name for the same kind of thing."""


class NameClashError(DuplicateNameError):
    """Two or more plugins registered the same name: the name is unusable until one is blocked.

    Raised by every lookup of the contested name (and, in strict mode, when
    the clash arises).  ``name`` and ``kind`` say what is contested,
    ``plugins`` lists the contending plugins in registration order, and
    ``plugin`` is the one that registered the name last.
    """

    def __init__(self, kind: str, name: str, plugins: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.plugins = list(plugins)
        who = " and ".join(repr(p) for p in self.plugins)
        block = " or ".join(f"NEUROPLUG_DISABLE_PLUGINS={p}" for p in self.plugins)
        super().__init__(
            f"The {kind} name {name!r} is registered by more than one plugin ({who}), so neuroplug "
            f"refuses to guess which one you mean. Block one of them (for example {block}), or "
            f"uninstall one. Received: {kind}={name!r}",
            plugin=self.plugins[-1],
        )


class UnknownNameError(ValueError):
    """A layer, pretrainer or backend name that no loaded plugin registered."""


class ProvenanceError(ValueError):
    """A saved model names a layer or pretrainer that is now missing, blocked or provided by another plugin."""


def _worker_note(kind: str) -> str:
    """In a joblib/Dask worker: why a name registered at run time in the main process is unknown here."""
    import multiprocessing
    import sys

    in_worker = multiprocessing.parent_process() is not None
    if not in_worker and "distributed" in sys.modules:
        try:
            sys.modules["distributed"].get_worker()
            in_worker = True
        except Exception:  # noqa: BLE001 - not inside a Dask worker
            pass
    if not in_worker:
        return ""
    return (
        f" This is a worker process (joblib, Dask): it loads only the built-in plugins and those installed with a "
        f"'neuroplug' entry point. A {kind} registered at run time with get_plugin_manager().register(...) in the "
        "main process is unknown here: install its plugin with an entry point (neuroplug new-plugin writes one), "
        "or register it in every worker as well (a loky initializer, a Dask WorkerPlugin)"
        + (
            f", or pass a {kind} object instead of its name."
            if kind in ("layer", "pretrainer")
            else "."
        )
    )


@dataclass(frozen=True)
class Entry:
    """One registered object: its ``name``, the ``obj`` and the ``plugin`` that gave it."""

    name: str
    obj: Any
    plugin: str


class Registry:
    """Name → object table for one kind of thing (``"layer"``, ``"backend"``, ...).

    Parameters
    ----------
    kind : str
        Singular noun used in error messages.
    validate : callable, optional
        ``validate(name, obj)`` raises ``TypeError``/``ValueError`` describing
        what is wrong with ``obj``; the registry re-raises it as a
        :class:`RegistrationError` naming the plugin.
    """

    def __init__(
        self, kind: str, validate: Callable[[str, Any], None] | None = None
    ) -> None:
        self.kind = kind
        self._validate = validate
        self._entries: dict[str, Entry] = {}
        # Contested names: every contender, in registration order.
        self._clashes: dict[str, list[Entry]] = {}
        self._failed_plugins: dict[str, str] = {}

    # -- reading -----------------------------------------------------------
    def get(self, name: str) -> Any:
        """Return the object registered as ``name``.

        Raises
        ------
        UnknownNameError
            When no plugin registered ``name``; the message lists the known
            names and any plugin that failed to load.
        NameClashError
            When more than one plugin registered ``name``.
        """
        return self.entry(name).obj

    def entry(self, name: str) -> Entry:
        """Return the :class:`Entry` for ``name`` (see :meth:`get`)."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            pass
        if isinstance(name, str) and name in self._clashes:
            raise NameClashError(self.kind, name, self.contenders(name))
        known = ", ".join(sorted(self._entries)) or "(none)"
        msg = f"Unknown {self.kind} {name!r}. Known {self.kind}s: {known}."
        if self._failed_plugins:
            failed = "; ".join(
                f"{p}: {why}" for p, why in sorted(self._failed_plugins.items())
            )
            msg += (
                f" Plugins that failed to load (they may have provided it): {failed}."
            )
        if self._clashes:
            msg += f" Unusable because several plugins register them: {', '.join(sorted(self._clashes))}."
        msg += _worker_note(self.kind)
        msg += f" Received: {self.kind}={name!r}"
        raise UnknownNameError(msg)

    def names(self) -> list[str]:
        """Sorted list of usable registered names (contested names excluded)."""
        return sorted(self._entries)

    def by_plugin(self, plugin: str) -> list[str]:
        """Sorted usable names that ``plugin`` registered."""
        return sorted(n for n, e in self._entries.items() if e.plugin == plugin)

    def clashes(self) -> dict[str, list[str]]:
        """Contested names, each with the plugins that register it (in registration order)."""
        return {name: self.contenders(name) for name in sorted(self._clashes)}

    def contenders(self, name: str) -> list[str]:
        """The plugins that register ``name`` (one when usable, none when unknown)."""
        if name in self._clashes:
            return [e.plugin for e in self._clashes[name]]
        return [self._entries[name].plugin] if name in self._entries else []

    def __contains__(self, name: object) -> bool:
        """True for a usable name (a contested name is not usable)."""
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter([self._entries[n] for n in sorted(self._entries)])

    def __len__(self) -> int:
        return len(self._entries)

    # -- writing (used by the plugin manager) -------------------------------
    def check(
        self, name: str, obj: Any, plugin: str, staged: dict[str, Entry] | None = None
    ) -> None:
        """Raise :class:`RegistrationError` if ``obj`` cannot be registered as ``name``."""
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise RegistrationError(
                f"Plugin {plugin!r} registered an invalid {self.kind} name {name!r}: names "
                "must be lower-case, start with a letter and contain only letters, digits, "
                "'_' and '-'.",
                plugin=plugin,
            )
        # Another plugin's name is a clash, decided at commit; the same plugin twice is its own bug.
        previous = (staged or {}).get(name)
        if (
            previous is None
            and self._entries.get(name, None) is not None
            and self._entries[name].plugin == plugin
        ):
            previous = self._entries[name]
        if previous is not None:
            raise DuplicateNameError(
                f"Plugin {plugin!r} tried to register the {self.kind} {name!r}, which plugin "
                f"{previous.plugin!r} already registered. Register each name once.",
                plugin=plugin,
            )
        if self._validate is not None:
            try:
                self._validate(name, obj)
            except (TypeError, ValueError) as exc:
                raise RegistrationError(
                    f"Plugin {plugin!r} registered an invalid {self.kind} {name!r}: {exc}",
                    plugin=plugin,
                ) from exc

    def commit(self, entries: list[Entry]) -> list[str]:
        """Add already-checked entries; return the names that now clash (fail closed)."""
        clashed = []
        for entry in entries:
            if entry.name in self._clashes:
                self._clashes[entry.name].append(entry)
                clashed.append(entry.name)
            elif entry.name in self._entries:
                self._clashes[entry.name] = [self._entries.pop(entry.name), entry]
                clashed.append(entry.name)
            else:
                self._entries[entry.name] = entry
        return clashed

    def remove_plugin(self, plugin: str) -> None:
        """Forget everything ``plugin`` registered; a name it contested goes back to the other plugin."""
        for name in self.by_plugin(plugin):
            del self._entries[name]
        for name in list(self._clashes):
            left = [e for e in self._clashes[name] if e.plugin != plugin]
            if len(left) == 1:
                del self._clashes[name]
                self._entries[name] = left[0]
            elif not left:
                del self._clashes[name]
            else:
                self._clashes[name] = left
        self._failed_plugins.pop(plugin, None)

    def note_failure(self, plugin: str, why: str) -> None:
        """Remember that ``plugin`` failed, to mention it in unknown-name errors."""
        self._failed_plugins[plugin] = why


class Register:
    """The object a registering hook receives: ``register(name, obj)``.

    Bound to one plugin and one registry.  Registrations are checked at once
    (so the traceback points into the plugin) and staged; the plugin manager
    commits them after the hook returns.
    """

    def __init__(self, registry: Registry, plugin: str) -> None:
        self.registry = registry
        self.plugin = plugin
        self.kind = registry.kind
        self._staged: dict[str, Entry] = {}

    def __call__(self, name: str, obj: Any) -> None:
        """Register ``obj`` under ``name``; raises :class:`RegistrationError`.

        A name that another plugin already registered is accepted here and
        becomes contested when committed (see :class:`NameClashError`).
        """
        self.registry.check(name, obj, self.plugin, self._staged)
        self._staged[name] = Entry(name, obj, self.plugin)

    def __repr__(self) -> str:
        return f"<Register {self.kind}s for plugin {self.plugin!r}>"

    @property
    def staged(self) -> list[Entry]:
        """What has been registered through this object so far."""
        return list(self._staged.values())
