"""A safe, versioned model format that never unpickles.

:func:`save` writes one ``.npz`` file (a zip archive written by NumPy) that
holds

* ``__model__``: UTF-8 JSON with the format version, the estimator class
  name, its hyper-parameters, its non-array fitted state, the layer and
  pretrainer names it uses together with the plugin (and distribution) that
  provided each, and an index of the arrays;
* the arrays of the fitted state, stored with ``allow_pickle=False``;
  nested neuroplug estimators (the RBMs of a ``DBN``), NumPy random
  generators (as their plain state, for a whitelisted bit generator) and
  neuroplug's own parameter objects (optimisers, schedules, augmenters) are
  stored as tagged JSON trees, never as code;
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
_ITEMS = "__items__"  # a dict whose keys are not all strings, as [key, value] pairs
_ESTIMATOR = "__estimator__"
_OBJECT = "__object__"
_GENERATOR = "__generator__"

#: NumPy bit generators a model file may name (looked up in this table, never by ``getattr``).
_BIT_GENERATORS: dict[str, type] = {
    cls.__name__: cls
    for cls in (np.random.PCG64, np.random.PCG64DXSM, np.random.MT19937, np.random.Philox, np.random.SFC64)
}


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
        if isinstance(value, np.bool_):
            return bool(value)
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
            if all(isinstance(k, str) for k in value):
                return {_DICT: {k: self.encode(v, f"{path}.{k}") for k, v in value.items()}}
            # Caches keyed by tuples (an RBM's log Z per method) keep their keys as JSON values.
            return {_ITEMS: [[self.encode(k, f"{path}.key"), self.encode(v, f"{path}[{k!r}]")]
                             for k, v in value.items()]}
        if isinstance(value, np.random.Generator):
            state = value.bit_generator.state
            if state.get("bit_generator") not in _BIT_GENERATORS:
                raise ModelFormatError(
                    f"cannot save the random generator at {path}: its bit generator "
                    f"{state.get('bit_generator')!r} is not one of {', '.join(_BIT_GENERATORS)}"
                )
            return {_GENERATOR: self.encode(state, f"{path}.state")}
        estimator_name = _estimator_name(value)
        if estimator_name is not None:
            params, state = _split_state(value)
            return {
                _ESTIMATOR: estimator_name,
                "params": self.encode(params, f"{path}.params"),
                "state": self.encode(state, f"{path}.state"),
            }
        object_name = _object_name(value)
        if object_name is not None:
            return {_OBJECT: object_name, "params": self.encode(value.get_params(deep=False), f"{path}.params")}
        if isinstance(value, Layer):
            name = self._registered_name("layer", value)
            return {_LAYER: name, "params": self.encode(value.get_params(deep=False), f"{path}.params")}
        if isinstance(value, Pretrainer):
            name = self._registered_name("pretrainer", value)
            return {_PRETRAINER: name, "params": self.encode(value.get_params(deep=False), f"{path}.params")}
        raise ModelFormatError(
            f"cannot save {path} of type {type(value).__qualname__}: the safe format stores only numbers, "
            "strings, lists, tuples, dicts, NumPy arrays, NumPy random generators, neuroplug estimators, "
            "optimisers, schedules and augmenters, and registered layers/pretrainers"
        )


def _plugin_origin(plugin: str) -> str:
    from .plugins import get_plugin_manager

    for info in get_plugin_manager().info():
        if info.name == plugin:
            return f"{plugin} ({info.source})"
    return plugin


class _Decoder:
    """Rebuild the tree :class:`_Encoder` wrote.

    Every tag resolves through a fixed table (neuroplug's estimators and
    parameter classes, the whitelist of bit generators) or a plugin registry; no name
    from the file is ever imported or looked up as an attribute, so a model
    file cannot make ``load`` run code that is not already installed.
    Malformed trees raise :class:`ModelFormatError`.
    """

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays

    def decode(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (tag, inner), = value.items()
            if tag == _ARRAY:
                if not isinstance(inner, str) or inner not in self.arrays:
                    raise ModelFormatError(f"the model file refers to a missing array {inner!r}")
                return self.arrays[inner]
            if tag == _TUPLE:
                return tuple(self.decode(v) for v in _expect(inner, list, tag))
            if tag == _DICT:
                return {k: self.decode(v) for k, v in _expect(inner, dict, tag).items()}
            if tag == _ITEMS:
                out = {}
                for pair in _expect(inner, list, tag):
                    if not isinstance(pair, list) or len(pair) != 2:
                        raise ModelFormatError(f"malformed {tag} entry in the model file: {pair!r}")
                    key = self.decode(pair[0])
                    try:
                        out[key] = self.decode(pair[1])
                    except TypeError as exc:  # an unhashable key
                        raise ModelFormatError(f"malformed {tag} key in the model file: {pair[0]!r}") from exc
                return out
            if tag == "__float__":
                if inner not in ("nan", "inf", "-inf"):
                    raise ModelFormatError(f"malformed __float__ entry in the model file: {inner!r}")
                return float(inner)
            if tag == _GENERATOR:
                return _make_generator(self.decode(inner))
        if _ESTIMATOR in value and set(value) == {_ESTIMATOR, "params", "state"}:
            classes = _estimator_classes()
            cls = classes.get(value[_ESTIMATOR]) if isinstance(value[_ESTIMATOR], str) else None
            if cls is None:
                raise ModelFormatError(
                    f"the model file holds an estimator {value[_ESTIMATOR]!r} that neuroplug does not have; "
                    f"known estimators: {', '.join(sorted(classes))}"
                )
            return _rebuild(cls, self.decode(value["params"]), self.decode(value["state"]))
        if _OBJECT in value and set(value) == {_OBJECT, "params"}:
            classes = _object_classes()
            cls = classes.get(value[_OBJECT]) if isinstance(value[_OBJECT], str) else None
            if cls is None:
                raise ModelFormatError(
                    f"the model file holds an object {value[_OBJECT]!r} that is not one of neuroplug's "
                    f"parameter classes ({', '.join(sorted(classes))})"
                )
            return _construct(cls, self.decode(value["params"]), value[_OBJECT])
        for marker, kind in ((_LAYER, "layer"), (_PRETRAINER, "pretrainer")):
            if marker in value and set(value) == {marker, "params"}:
                from .plugins import get_plugin_manager

                registry = get_plugin_manager().registries[kind]
                name = value[marker]
                if not isinstance(name, str) or name not in registry:
                    raise ModelFormatError(
                        f"the model file uses the {kind} {name!r}, which no installed plugin provides. "
                        f"Installed {kind}s: {', '.join(registry.names()) or '(none)'}."
                    )
                return _construct(registry.get(name), self.decode(value["params"]), f"{kind} {name!r}")
        raise ModelFormatError(f"unknown entry in model file: {sorted(value)}")


def _expect(value: Any, kind: type, tag: str) -> Any:
    if not isinstance(value, kind):
        raise ModelFormatError(f"malformed {tag} entry in the model file: expected a {kind.__name__}, got {value!r:.80}")
    return value


def _construct(cls: type, params: Any, what: str) -> Any:
    """``cls(**params)`` for parameters read from a file, with file errors as :class:`ModelFormatError`."""
    if not isinstance(params, dict):
        raise ModelFormatError(f"malformed parameters of {what} in the model file: {params!r:.80}")
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise ModelFormatError(f"the model file holds parameters that {what} does not accept: {exc}") from exc


def _make_generator(state: Any) -> np.random.Generator:
    """A NumPy Generator restored from a bit generator state dict, for a whitelisted bit generator only."""
    name = state.get("bit_generator") if isinstance(state, dict) else None
    cls = _BIT_GENERATORS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ModelFormatError(
            f"the model file holds a random generator state for {name!r}; supported bit generators: "
            f"{', '.join(_BIT_GENERATORS)}"
        )
    bit_generator = cls()
    try:
        bit_generator.state = state
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelFormatError(f"the model file holds an invalid {name} state: {exc}") from exc
    return np.random.Generator(bit_generator)


def _split_state(estimator: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(hyper-parameters, fitted state)`` of an estimator, as its pickle would hold them."""
    params = estimator.get_params(deep=False)
    state = estimator.__getstate__() if hasattr(estimator, "__getstate__") else dict(vars(estimator))
    if not isinstance(state, dict):  # pragma: no cover - every neuroplug estimator pickles a dict
        raise ModelFormatError(f"cannot save {type(estimator).__qualname__}: its state is not a dict")
    state = {k: v for k, v in state.items() if k not in params and k != "_sklearn_version"}
    return params, state


def _rebuild(cls: type, params: Any, state: Any) -> Any:
    """An estimator of class ``cls`` with hyper-parameters ``params`` and fitted ``state``."""
    estimator = _construct(cls, params, cls.__name__)
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ModelFormatError(f"malformed state of {cls.__name__} in the model file")
    try:
        estimator.__setstate__({**estimator.__dict__, **state})
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelFormatError(f"the model file holds a state that {cls.__name__} cannot restore: {exc}") from exc
    return estimator


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


def _object_classes() -> dict[str, type]:
    """neuroplug's own parameter classes a model file may hold as objects (by fixed name)."""
    from . import augment, callbacks, optimizers

    classes: dict[str, type] = {"augment.RandomAffine": augment.RandomAffine}
    for name in ("SGD", "Adam", "ConstantLR", "StepLR", "ExponentialLR", "InverseTimeLR"):
        classes[f"optimizers.{name}"] = getattr(optimizers, name)
    for name in ("Checkpoint", "CSVLogger", "EarlyStopping", "ReduceLROnPlateau"):
        classes[f"callbacks.{name}"] = getattr(callbacks, name)
    return classes


def _estimator_name(value: Any) -> str | None:
    name = type(value).__name__
    return name if _estimator_classes().get(name) is type(value) else None


def _object_name(value: Any) -> str | None:
    for name, cls in _object_classes().items():
        if type(value) is cls:
            return name
    return None


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

    The file is written to a temporary file beside ``path``, flushed to disk
    and renamed over ``path`` only when complete, so an interrupted save
    leaves any previous file at ``path`` untouched.  ``.npz`` is appended
    when ``path`` has no suffix.

    Parameters
    ----------
    estimator : estimator
        One of :mod:`neuroplug.estimators`, fitted or not.
    path : str or path-like
        Target file.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ModelFormatError
        When the estimator is not one of neuroplug's estimators or holds
        state the safe format cannot represent (for example an ``Ops``
        instance as ``backend``).

    Examples
    --------
    >>> import numpy as np, neuroplug, tempfile, os
    >>> from neuroplug.estimators import RBM
    >>> X = (np.random.default_rng(0).random((30, 8)) > 0.5).astype(np.float32)
    >>> rbm = RBM(4, max_iter=2, random_state=0).fit(X)
    >>> path = neuroplug.save(rbm, os.path.join(tempfile.mkdtemp(), "rbm"))
    >>> path.name
    'rbm.npz'
    >>> bool(np.array_equal(neuroplug.load(path).transform(X), rbm.transform(X)))
    True
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
    if path.is_dir():
        raise IsADirectoryError(f"cannot save a model over a directory. Received: path={str(path)!r}")
    enc = _Encoder()
    params, state = _split_state(estimator)
    for kind, names in _layer_and_pretrainer_names(params).items():
        for name in names:
            enc._note(kind, name)
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
        # Whatever stopped the save (an error, Ctrl-C), the target keeps its old content.
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(path.parent)
    return path


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable where the platform allows it (POSIX); best effort."""
    if os.name != "posix":  # pragma: no cover - Windows cannot open directories
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. a directory without read permission
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def _version() -> str:
    from ._version import __version__

    return __version__


def load(path: str | os.PathLike) -> Any:
    """Load an estimator saved by :func:`save`.  Executes no code from the file.

    The file is read with ``allow_pickle=False``; its JSON header may only
    name neuroplug's own estimators and parameter classes, whitelisted NumPy
    bit generators, and layers/pretrainers of installed plugins.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save`.

    Returns
    -------
    estimator
        The estimator, fitted if it was saved fitted; its predictions equal
        the saved one's.

    Raises
    ------
    FileNotFoundError
        When ``path`` is not a file.
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
    where = str(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ModelFormatError(f"{where!r} is not a neuroplug model file (a plain .npy array)")
            files = set(data.files)
            if not {"__model__", "__checksum__"} <= files:
                raise ModelFormatError(f"{where!r} is not a neuroplug model file (no __model__ entry)")
            meta_bytes = data["__model__"].tobytes()
            checksum = data["__checksum__"].tobytes().decode("ascii", "replace")
            arrays = {k: data[k] for k in files - {"__model__", "__checksum__"}}
    except ModelFormatError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError, AttributeError, TypeError) as exc:
        # np.load of a .npy file returns an array (no context manager): AttributeError/TypeError.
        raise ModelFormatError(f"{where!r} is not a readable neuroplug model (truncated or corrupt): {exc}") from exc
    if _checksum(meta_bytes, arrays) != checksum:
        raise ModelFormatError(f"{where!r} failed its checksum: the file was altered or damaged")
    try:
        meta = json.loads(meta_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelFormatError(f"{where!r} has an unreadable header: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ModelFormatError(f"{where!r} is not a neuroplug model file")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1 or version > FORMAT_VERSION:
        raise ModelFormatError(
            f"{where!r} uses model format version {version!r}; this neuroplug ({_version()}) reads "
            f"versions 1 to {FORMAT_VERSION}. Upgrade neuroplug to load it."
        )
    classes = _estimator_classes()
    name = meta.get("estimator")
    cls = classes.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ModelFormatError(
            f"{where!r} holds an estimator {name!r} that neuroplug does not have; "
            f"known estimators: {', '.join(sorted(classes))}"
        )
    if "params" not in meta or "state" not in meta:
        raise ModelFormatError(f"{where!r} is not a complete neuroplug model file (no params or state)")
    origins = _check_names(meta, where)
    dec = _Decoder(arrays)
    try:
        params = dec.decode(meta["params"])
        if isinstance(params, dict):
            _check_spec_names(params, origins, where)
        state = dec.decode(meta["state"])
        return _rebuild(cls, params, state)
    except ModelFormatError as exc:
        if where in str(exc):
            raise
        raise ModelFormatError(f"{where!r}: {exc}") from exc.__cause__
    except RecursionError as exc:
        raise ModelFormatError(f"{where!r} has a header nested too deeply") from exc


def _check_names(meta: dict[str, Any], where: str) -> dict[str, dict[str, str]]:
    """Refuse names of layers/pretrainers the file lists that no installed plugin registers.

    Returns the file's ``{kind: {name: plugin it was saved with}}`` table.
    """
    from .plugins import get_plugin_manager

    manager = get_plugin_manager()
    table = meta.get("plugins") or {}
    if not isinstance(table, dict):
        raise ModelFormatError(f"{where!r} has a malformed plugin table")
    origins: dict[str, dict[str, str]] = {"layer": {}, "pretrainer": {}}
    for kind, names in table.items():
        if kind not in origins:
            continue
        if not isinstance(names, dict):
            raise ModelFormatError(f"{where!r} has a malformed plugin table")
        for name, origin in names.items():
            origins[kind][name] = str(origin)
            _check_provenance(manager, kind, name, str(origin), where)
    return origins


def _check_provenance(manager: Any, kind: str, name: str, origin: str | None, where: str) -> None:
    """The plugin (and distribution) the file recorded must provide ``name`` now, unblocked and unique."""
    from .registry import NameClashError, ProvenanceError

    try:
        manager.check_provenance(kind, name, origin)
    except ProvenanceError as exc:
        raise ModelFormatError(f"{where!r} uses {exc}") from None
    except NameClashError as exc:
        raise ModelFormatError(f"{where!r}: {exc}") from None


def _check_spec_names(params: dict[str, Any], origins: dict[str, dict[str, str]], where: str) -> None:
    """Refuse layer specs / pretrainer names in the hyper-parameters that no installed plugin provides."""
    from .plugins import get_plugin_manager

    manager = get_plugin_manager()
    for kind, names in _layer_and_pretrainer_names(params).items():
        for name in sorted(names):
            _check_provenance(manager, kind, name, origins.get(kind, {}).get(name), where)
