"""A safe, versioned model format that never unpickles.

:func:`save` writes one ``.npz`` file (a zip archive written by NumPy) that
holds

* ``__model__``: UTF-8 JSON with the format version, the estimator class
  name, its hyper-parameters, its non-array fitted state, the layer and
  pretrainer names it uses together with the plugin (and distribution) that
  provided each, and an index of the arrays;
* the arrays of the fitted state, stored with ``allow_pickle=False``;
* ``__checksum__``: SHA-256 over the JSON and every array's dtype, shape and
  bytes, so a truncated or tampered file is refused.

:func:`load` reads the JSON, checks version and checksum, resolves the
estimator class among neuroplug's own estimators (never a name taken from the
file as code), checks that every layer and pretrainer name is installed, and
rebuilds the estimator.  Writing is atomic: a temporary file in the same
directory is renamed over the target only once it is complete, so an
interrupted save never leaves a corrupt model where a good one was.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT_VERSION", "ModelFormatError", "save", "load"]

FORMAT_NAME = "neuroplug-model"
FORMAT_VERSION = 1

_ARRAY = "__array__"
_TUPLE = "__tuple__"
_LAYER = "__layer__"
_PRETRAINER = "__pretrainer__"
_DICT = "__dict__"


class ModelFormatError(ValueError):
    """A model file is not a valid neuroplug model (truncated, tampered, too new, unknown names)."""


# ---------------------------------------------------------------------------
# Encoding: a restricted tree of JSON values, arrays and registered objects
# ---------------------------------------------------------------------------
class _Encoder:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.names: dict[str, dict[str, str]] = {"layer": {}, "pretrainer": {}}

    def _registered_name(self, kind: str, obj: Any) -> str:
        from .plugins import get_plugin_manager

        registry = get_plugin_manager().registries[kind]
        for entry in registry:
            if entry.obj is type(obj):
                self._note(kind, entry.name)
                return entry.name
        raise ModelFormatError(
            f"cannot save a {kind} object of class {type(obj).__qualname__}: it is not registered by any "
            "plugin, so it could not be rebuilt on load"
        )

    def _note(self, kind: str, name: str) -> None:
        from .plugins import get_plugin_manager

        registry = get_plugin_manager().registries[kind]
        if name in registry:
            plugin = registry.entry(name).plugin
            self.names[kind][name] = _plugin_origin(plugin)

    def encode(self, value: Any, path: str) -> Any:
        from .layers.base import Layer
        from .pretrain.base import Pretrainer

        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, (float, np.floating)):
            v = float(value)
            return v if np.isfinite(v) else {"__float__": repr(v)}
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                try:
                    value = value.astype(str)
                except Exception as exc:  # noqa: BLE001 - report any unconvertible content
                    raise ModelFormatError(f"cannot save object array at {path}") from exc
            key = f"a{len(self.arrays)}"
            self.arrays[key] = np.ascontiguousarray(value)
            return {_ARRAY: key}
        if isinstance(value, tuple):
            return {_TUPLE: [self.encode(v, f"{path}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.encode(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise ModelFormatError(f"cannot save a dict with non-string keys at {path}")
            return {_DICT: {k: self.encode(v, f"{path}.{k}") for k, v in value.items()}}
        if isinstance(value, Layer):
            name = self._registered_name("layer", value)
            return {_LAYER: name, "params": self.encode(value.get_params(deep=False), f"{path}.params")}
        if isinstance(value, Pretrainer):
            name = self._registered_name("pretrainer", value)
            return {_PRETRAINER: name, "params": self.encode(value.get_params(deep=False), f"{path}.params")}
        raise ModelFormatError(
            f"cannot save {path} of type {type(value).__qualname__}: the safe format stores only numbers, "
            "strings, lists, tuples, dicts, NumPy arrays and registered layers/pretrainers"
        )


def _plugin_origin(plugin: str) -> str:
    from .plugins import get_plugin_manager

    for info in get_plugin_manager().info():
        if info.name == plugin:
            return f"{plugin} ({info.source})"
    return plugin


class _Decoder:
    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays

    def decode(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        if _ARRAY in value:
            return self.arrays[value[_ARRAY]]
        if _TUPLE in value:
            return tuple(self.decode(v) for v in value[_TUPLE])
        if _DICT in value:
            return {k: self.decode(v) for k, v in value[_DICT].items()}
        if "__float__" in value:
            return float(value["__float__"])
        from .plugins import get_plugin_manager

        for marker, kind in ((_LAYER, "layer"), (_PRETRAINER, "pretrainer")):
            if marker in value:
                cls = get_plugin_manager().registries[kind].get(value[marker])
                return cls(**self.decode(value["params"]))
        raise ModelFormatError(f"unknown entry in model file: {sorted(value)}")


def _checksum(meta_bytes: bytes, arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    h.update(meta_bytes)
    for key in sorted(arrays):
        arr = arrays[key]
        h.update(f"{key}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _estimator_classes() -> dict[str, type]:
    from . import estimators

    return {name: getattr(estimators, name) for name in estimators.__all__}


def _layer_and_pretrainer_names(params: dict[str, Any]) -> dict[str, set[str]]:
    """Names of registered layers/pretrainers a parameter set refers to by string."""
    found: dict[str, set[str]] = {"layer": set(), "pretrainer": set()}
    layers = params.get("layers")
    if isinstance(layers, (list, tuple)):
        for spec in layers:
            if isinstance(spec, str):
                found["layer"].add(spec.split(":", 1)[0].strip())
    pretrainer = params.get("pretrainer")
    if isinstance(pretrainer, str):
        found["pretrainer"].add(pretrainer)
    return found


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------
def save(estimator: Any, path: str | os.PathLike) -> Path:
    """Save ``estimator`` (fitted or not) to ``path`` in the safe format; return the path.

    The file is written to a temporary file beside ``path`` and renamed over
    it only when complete.  ``.npz`` is appended when ``path`` has no suffix.

    Raises
    ------
    ModelFormatError
        When the estimator is not one of neuroplug's estimators or holds
        state the safe format cannot represent.
    """
    classes = _estimator_classes()
    cls_name = type(estimator).__name__
    if classes.get(cls_name) is not type(estimator):
        raise ModelFormatError(
            f"save() supports neuroplug's estimators ({', '.join(sorted(classes))}). "
            f"Received: an instance of {type(estimator).__qualname__}"
        )
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".npz")
    enc = _Encoder()
    params = estimator.get_params(deep=False)
    for kind, names in _layer_and_pretrainer_names(params).items():
        for name in names:
            enc._note(kind, name)
    state = estimator.__getstate__() if hasattr(estimator, "__getstate__") else dict(vars(estimator))
    state = {k: v for k, v in state.items() if k not in params and k != "_sklearn_version"}
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "estimator": cls_name,
        "neuroplug_version": _version(),
        "params": enc.encode(params, "params"),
        "state": enc.encode(state, "state"),
    }
    meta["plugins"] = {kind: dict(sorted(v.items())) for kind, v in enc.names.items()}
    meta_bytes = json.dumps(meta, sort_keys=True, allow_nan=False).encode("utf-8")
    arrays = dict(enc.arrays)
    payload = {
        "__model__": np.frombuffer(meta_bytes, dtype=np.uint8),
        "__checksum__": np.frombuffer(_checksum(meta_bytes, arrays).encode("ascii"), dtype=np.uint8),
        **arrays,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, allow_pickle=False, **payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _version() -> str:
    from ._version import __version__

    return __version__


def load(path: str | os.PathLike) -> Any:
    """Load an estimator saved by :func:`save`.  Executes no code from the file.

    Raises
    ------
    ModelFormatError
        When the file is not a neuroplug model, is truncated or was altered
        (checksum mismatch), comes from a newer format version, names an
        estimator neuroplug does not have, or uses layers/pretrainers that no
        installed plugin provides (the message lists the installed ones and
        the plugin the file was saved with).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {str(path)!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            files = set(data.files)
            if not {"__model__", "__checksum__"} <= files:
                raise ModelFormatError(f"{str(path)!r} is not a neuroplug model file (no __model__ entry)")
            meta_bytes = data["__model__"].tobytes()
            checksum = data["__checksum__"].tobytes().decode("ascii", "replace")
            arrays = {k: data[k] for k in files - {"__model__", "__checksum__"}}
    except ModelFormatError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        raise ModelFormatError(f"{str(path)!r} is not a readable neuroplug model (truncated or corrupt): {exc}") from exc
    if _checksum(meta_bytes, arrays) != checksum:
        raise ModelFormatError(f"{str(path)!r} failed its checksum: the file was altered or damaged")
    try:
        meta = json.loads(meta_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{str(path)!r} has an unreadable header: {exc}") from exc
    if meta.get("format") != FORMAT_NAME:
        raise ModelFormatError(f"{str(path)!r} is not a neuroplug model file")
    version = meta.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFormatError(
            f"{str(path)!r} uses model format version {version!r}; this neuroplug ({_version()}) reads "
            f"versions up to {FORMAT_VERSION}. Upgrade neuroplug to load it."
        )
    classes = _estimator_classes()
    cls = classes.get(meta.get("estimator"))
    if cls is None:
        raise ModelFormatError(
            f"{str(path)!r} holds an estimator {meta.get('estimator')!r} that neuroplug does not have; "
            f"known estimators: {', '.join(sorted(classes))}"
        )
    _check_names(meta, path)
    dec = _Decoder(arrays)
    params = dec.decode(meta["params"])
    state = dec.decode(meta["state"])
    estimator = cls(**params)
    if hasattr(estimator, "__setstate__"):
        estimator.__setstate__({**estimator.__dict__, **state})
    else:
        estimator.__dict__.update(state)
    return estimator


def _check_names(meta: dict[str, Any], path: Path) -> None:
    from .plugins import get_plugin_manager

    manager = get_plugin_manager()
    for kind, names in (meta.get("plugins") or {}).items():
        if kind not in ("layer", "pretrainer"):
            continue
        registry = manager.registries[kind]
        for name, origin in names.items():
            if name not in registry:
                raise ModelFormatError(
                    f"{str(path)!r} uses the {kind} {name!r}, which no installed plugin provides. "
                    f"It was saved with plugin {origin}; install that plugin to load this model. "
                    f"Installed {kind}s: {', '.join(registry.names()) or '(none)'}."
                )
