"""Typed registries of layer types, pretrainers and backends.

Plugins never touch a :class:`Registry` directly: each registering hook gets a
:class:`Register` bound to the calling plugin.  What a plugin registers in one
hook call is staged and committed only when the whole call succeeded, so a
plugin that fails halfway leaves nothing behind and the other plugins keep
working.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator

__all__ = [
    "PluginError",
    "PluginLoadError",
    "RegistrationError",
    "DuplicateNameError",
    "UnknownNameError",
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


class UnknownNameError(ValueError):
    """A layer, pretrainer or backend name that no loaded plugin registered."""


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

    def __init__(self, kind: str, validate: Callable[[str, Any], None] | None = None) -> None:
        self.kind = kind
        self._validate = validate
        self._entries: dict[str, Entry] = {}
        self._failed_plugins: dict[str, str] = {}

    # -- reading -----------------------------------------------------------
    def get(self, name: str) -> Any:
        """Return the object registered as ``name``.

        Raises
        ------
        UnknownNameError
            When no plugin registered ``name``; the message lists the known
            names and any plugin that failed to load.
        """
        return self.entry(name).obj

    def entry(self, name: str) -> Entry:
        """Return the :class:`Entry` for ``name`` (see :meth:`get`)."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            pass
        known = ", ".join(sorted(self._entries)) or "(none)"
        msg = f"Unknown {self.kind} {name!r}. Known {self.kind}s: {known}."
        if self._failed_plugins:
            failed = "; ".join(f"{p}: {why}" for p, why in sorted(self._failed_plugins.items()))
            msg += f" Plugins that failed to load (they may have provided it): {failed}."
        msg += f" Received: {self.kind}={name!r}"
        raise UnknownNameError(msg)

    def names(self) -> list[str]:
        """Sorted list of registered names."""
        return sorted(self._entries)

    def by_plugin(self, plugin: str) -> list[str]:
        """Sorted names that ``plugin`` registered."""
        return sorted(n for n, e in self._entries.items() if e.plugin == plugin)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter([self._entries[n] for n in sorted(self._entries)])

    def __len__(self) -> int:
        return len(self._entries)

    # -- writing (used by the plugin manager) -------------------------------
    def check(self, name: str, obj: Any, plugin: str, staged: dict[str, Entry] | None = None) -> None:
        """Raise :class:`RegistrationError` if ``obj`` cannot be registered as ``name``."""
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise RegistrationError(
                f"Plugin {plugin!r} registered an invalid {self.kind} name {name!r}: names "
                "must be lower-case, start with a letter and contain only letters, digits, "
                "'_' and '-'.",
                plugin=plugin,
            )
        previous = self._entries.get(name) or (staged or {}).get(name)
        if previous is not None:
            raise DuplicateNameError(
                f"Plugin {plugin!r} tried to register the {self.kind} {name!r}, which plugin "
                f"{previous.plugin!r} already registered. Rename one of them, or block one "
                "with NEUROPLUG_DISABLE_PLUGINS.",
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

    def commit(self, entries: list[Entry]) -> None:
        """Add already-checked entries."""
        for entry in entries:
            self._entries[entry.name] = entry

    def remove_plugin(self, plugin: str) -> None:
        """Forget everything ``plugin`` registered."""
        for name in self.by_plugin(plugin):
            del self._entries[name]
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
        """Register ``obj`` under ``name``; raises :class:`RegistrationError`."""
        self.registry.check(name, obj, self.plugin, self._staged)
        self._staged[name] = Entry(name, obj, self.plugin)

    def __repr__(self) -> str:
        return f"<Register {self.kind}s for plugin {self.plugin!r}>"

    @property
    def staged(self) -> list[Entry]:
        """What has been registered through this object so far."""
        return list(self._staged.values())
