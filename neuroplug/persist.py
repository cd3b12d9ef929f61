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
import math
import os
import struct
import tempfile
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from . import _schema

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
    for cls in (
        np.random.PCG64,
        np.random.PCG64DXSM,
        np.random.MT19937,
        np.random.Philox,
        np.random.SFC64,
    )
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
                    raise ModelFormatError(
                        f"cannot save object array at {path}"
                    ) from exc
            key = f"a{len(self.arrays)}"
            self.arrays[key] = np.ascontiguousarray(value)
            return {_ARRAY: key}
        if isinstance(value, tuple):
            return {
                _TUPLE: [self.encode(v, f"{path}[{i}]") for i, v in enumerate(value)]
            }
        if isinstance(value, list):
            return [self.encode(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            if all(isinstance(k, str) for k in value):
                return {
                    _DICT: {k: self.encode(v, f"{path}.{k}") for k, v in value.items()}
                }
            # Caches keyed by tuples (an RBM's log Z per method) keep their keys as JSON values.
            return {
                _ITEMS: [
                    [self.encode(k, f"{path}.key"), self.encode(v, f"{path}[{k!r}]")]
                    for k, v in value.items()
                ]
            }
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
            return {
                _OBJECT: object_name,
                "params": self.encode(value.get_params(deep=False), f"{path}.params"),
            }
        if isinstance(value, Layer):
            name = self._registered_name("layer", value)
            return {
                _LAYER: name,
                "params": self.encode(value.get_params(deep=False), f"{path}.params"),
            }
        if isinstance(value, Pretrainer):
            name = self._registered_name("pretrainer", value)
            return {
                _PRETRAINER: name,
                "params": self.encode(value.get_params(deep=False), f"{path}.params"),
            }
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
            ((tag, inner),) = value.items()
            if tag == _ARRAY:
                if not isinstance(inner, str) or inner not in self.arrays:
                    raise ModelFormatError(
                        f"the model file refers to a missing array {inner!r}"
                    )
                return self.arrays[inner]
            if tag == _TUPLE:
                return tuple(self.decode(v) for v in _expect(inner, list, tag))
            if tag == _DICT:
                return {k: self.decode(v) for k, v in _expect(inner, dict, tag).items()}
            if tag == _ITEMS:
                out = {}
                for pair in _expect(inner, list, tag):
                    if not isinstance(pair, list) or len(pair) != 2:
                        raise ModelFormatError(
                            f"malformed {tag} entry in the model file: {pair!r}"
                        )
                    key = self.decode(pair[0])
                    try:
                        out[key] = self.decode(pair[1])
                    except TypeError as exc:  # an unhashable key
                        raise ModelFormatError(
                            f"malformed {tag} key in the model file: {pair[0]!r}"
                        ) from exc
                return out
            if tag == "__float__":
                if inner not in ("nan", "inf", "-inf"):
                    raise ModelFormatError(
                        f"malformed __float__ entry in the model file: {inner!r}"
                    )
                return float(inner)
            if tag == _GENERATOR:
                return _make_generator(self.decode(inner))
        if _ESTIMATOR in value and set(value) == {_ESTIMATOR, "params", "state"}:
            classes = _estimator_classes()
            cls = (
                classes.get(value[_ESTIMATOR])
                if isinstance(value[_ESTIMATOR], str)
                else None
            )
            if cls is None:
                raise ModelFormatError(
                    f"the model file holds an estimator {value[_ESTIMATOR]!r} that neuroplug does not have; "
                    f"known estimators: {', '.join(sorted(classes))}"
                )
            return _rebuild(
                cls, self.decode(value["params"]), self.decode(value["state"])
            )
        if _OBJECT in value and set(value) == {_OBJECT, "params"}:
            classes = _object_classes()
            cls = (
                classes.get(value[_OBJECT]) if isinstance(value[_OBJECT], str) else None
            )
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
                return _construct(
                    registry.get(name), self.decode(value["params"]), f"{kind} {name!r}"
                )
        raise ModelFormatError(f"unknown entry in model file: {sorted(value)}")


def _expect(value: Any, kind: type, tag: str) -> Any:
    if not isinstance(value, kind):
        raise ModelFormatError(
            f"malformed {tag} entry in the model file: expected a {kind.__name__}, got {value!r:.80}"
        )
    return value


def _construct(cls: type, params: Any, what: str) -> Any:
    """``cls(**params)`` for parameters read from a file, with file errors as :class:`ModelFormatError`."""
    if not isinstance(params, dict):
        raise ModelFormatError(
            f"malformed parameters of {what} in the model file: {params!r:.80}"
        )
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise ModelFormatError(
            f"the model file holds parameters that {what} does not accept: {exc}"
        ) from exc


def _make_generator(state: Any) -> np.random.Generator:
    """A NumPy Generator restored from a bit generator state dict, for a whitelisted bit generator only."""
    name = state.get("bit_generator") if isinstance(state, dict) else None
    cls = _BIT_GENERATORS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ModelFormatError(
            f"the model file holds a random generator state for {name!r}; supported bit generators: "
            f"{', '.join(_BIT_GENERATORS)}"
        )
    try:
        state = _schema.check_generator_state(state)
        bit_generator = cls()
        bit_generator.state = state
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:
        raise ModelFormatError(
            f"the model file holds an invalid {name} state: {exc}"
        ) from exc
    return np.random.Generator(bit_generator)


def _split_state(estimator: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(hyper-parameters, fitted state)`` of an estimator, as its pickle would hold them."""
    params = estimator.get_params(deep=False)
    state = (
        estimator.__getstate__()
        if hasattr(estimator, "__getstate__")
        else dict(vars(estimator))
    )
    if not isinstance(
        state, dict
    ):  # pragma: no cover - every neuroplug estimator pickles a dict
        raise ModelFormatError(
            f"cannot save {type(estimator).__qualname__}: its state is not a dict"
        )
    state = {
        k: v for k, v in state.items() if k not in params and k != "_sklearn_version"
    }
    return params, state


def _rebuild(cls: type, params: Any, state: Any) -> Any:
    """An estimator of class ``cls`` with hyper-parameters ``params`` and fitted ``state``."""
    estimator = _construct(cls, params, cls.__name__)
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ModelFormatError(f"malformed state of {cls.__name__} in the model file")
    if "_rng_state" in state:
        # A generator kept as its plain state (the CNNs'): NumPy trusts its positions, so check them first.
        try:
            state = {
                **state,
                "_rng_state": _schema.check_generator_state(state["_rng_state"]),
            }
        except ValueError as exc:
            raise ModelFormatError(
                f"the model file holds an invalid random generator state: {exc}"
            ) from exc
    try:
        estimator.__setstate__({**estimator.__dict__, **state})
    except (
        TypeError,
        ValueError,
        KeyError,
        IndexError,
        OverflowError,
        AttributeError,
    ) as exc:
        raise ModelFormatError(
            f"the model file holds a state that {cls.__name__} cannot restore: {exc}"
        ) from exc
    try:
        _schema.check_state(estimator)
    except ValueError as exc:
        raise ModelFormatError(
            f"the model file holds an invalid fitted {cls.__name__}: {exc}"
        ) from exc
    except (
        TypeError
    ) as exc:  # a layer whose own shape arithmetic refuses the stored shapes
        raise ModelFormatError(
            f"the model file holds an invalid fitted {cls.__name__}: {exc}"
        ) from exc
    return estimator


def _checksum(meta_bytes: bytes, arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    h.update(meta_bytes)
    for key in sorted(arrays):
        arr = arrays[key]
        h.update(_array_tag(key, arr.dtype, arr.shape))
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _array_tag(key: str, dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """What the checksum hashes before an array's bytes."""
    return f"{key}|{dtype.str}|{tuple(shape)}|".encode()


# ---------------------------------------------------------------------------
# Reading: a zip of .npy members, every declared size checked before reading
# ---------------------------------------------------------------------------
_CHUNK = 1 << 20  # bytes read at a time: the checksum pass holds no more than this
_MAX_DEFLATE_RATIO = (
    1100  # deflate cannot expand more than ~1032:1; a larger claim is a forged header
)
_NPY_MAGIC = b"\x93NUMPY"
_ARRAY_KINDS = (
    "biufcSU"  # what save() writes: numbers and strings, never objects or records
)
# What the standard library and NumPy raise on a malformed zip or .npy header.
_READ_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    OverflowError,
    SyntaxError,
    NotImplementedError,
    RuntimeError,
    struct.error,
    zlib.error,
)


def _default_max_bytes() -> int | None:
    """The machine's physical memory: a model that declares more cannot be loaded anyway."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (
        AttributeError,
        ValueError,
        OSError,
    ):  # pragma: no cover - platforms without sysconf
        return None


class _Member:
    """One ``.npy`` member of a model file: its zip entry and its parsed header."""

    def __init__(
        self,
        info: zipfile.ZipInfo,
        key: str,
        dtype: np.dtype,
        shape: tuple[int, ...],
        nbytes: int,
    ):
        self.info, self.key, self.dtype, self.shape, self.nbytes = (
            info,
            key,
            dtype,
            shape,
            nbytes,
        )


def _npy_header(fh: Any, name: str) -> tuple[np.dtype, tuple[int, ...]]:
    """Parse the ``.npy`` header at the start of ``fh``; refuse what save() never writes."""
    magic = fh.read(len(_NPY_MAGIC) + 2)
    if len(magic) != len(_NPY_MAGIC) + 2 or not magic.startswith(_NPY_MAGIC):
        raise ModelFormatError(
            f"member {name!r} is not a .npy array (bad magic {magic[:8]!r})"
        )
    version = tuple(magic[len(_NPY_MAGIC) :])
    if version not in ((1, 0), (2, 0)):
        raise ModelFormatError(
            f"member {name!r} uses .npy format version {version}; expected 1.0 or 2.0"
        )
    read = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    try:
        shape, fortran, dtype = read(fh)
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error):
        raise  # the container's errors, reported as such by load
    except Exception as exc:  # NumPy parses the header text with ast/tokenize: any error there means a bad header
        raise ModelFormatError(
            f"member {name!r} has an unreadable .npy header: {type(exc).__name__}: {exc}"
        ) from exc
    if (
        dtype.hasobject
        or dtype.kind not in _ARRAY_KINDS
        or dtype.fields is not None
        or dtype.subdtype is not None
    ):
        raise ModelFormatError(
            f"member {name!r} holds an array of dtype {dtype}; a model file holds only numbers and strings "
            "(object arrays would need pickle)"
        )
    if any(d < 0 for d in shape):
        raise ModelFormatError(
            f"member {name!r} declares a negative dimension: shape {shape}"
        )
    if fortran and sum(d > 1 for d in shape) > 1:
        raise ModelFormatError(
            f"member {name!r} is stored in Fortran order; save() writes C order"
        )
    return dtype, tuple(int(d) for d in shape)


def _scan(
    zf: zipfile.ZipFile, archive_size: int, max_bytes: int | None
) -> dict[str, _Member]:
    """Check every member's declared sizes against the archive, its .npy header and ``max_bytes``."""
    members: dict[str, _Member] = {}
    total = 0
    for info in zf.infolist():
        name = info.filename
        if not name.endswith(".npy") or info.is_dir():
            raise ModelFormatError(
                f"member {name!r} is not a .npy array; a model file holds only .npy members"
            )
        key = name[:-4]
        if key in members:
            raise ModelFormatError(f"member {name!r} appears twice")
        if info.flag_bits & 0x1:
            raise ModelFormatError(f"member {name!r} is encrypted; model files are not")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ModelFormatError(
                f"member {name!r} uses zip compression method {info.compress_type}; expected stored (0) or deflated (8)"
            )
        if info.header_offset + info.compress_size > archive_size:
            raise ModelFormatError(
                f"member {name!r} declares {info.compress_size} bytes at offset {info.header_offset}, past the end "
                f"of the {archive_size}-byte file (truncated)"
            )
        if (
            info.compress_type == zipfile.ZIP_STORED
            and info.file_size != info.compress_size
        ):
            raise ModelFormatError(
                f"member {name!r} is stored uncompressed but declares {info.file_size} bytes for "
                f"{info.compress_size} bytes of data"
            )
        if info.file_size > _MAX_DEFLATE_RATIO * max(info.compress_size, 1) + 1024:
            raise ModelFormatError(
                f"member {name!r} declares {info.file_size} bytes from {info.compress_size} compressed bytes, more "
                f"than deflate can expand (at most ~{_MAX_DEFLATE_RATIO}:1)"
            )
        with zf.open(info) as fh:
            dtype, shape = _npy_header(fh, name)
            header_size = fh.tell()
        nbytes = math.prod(shape) * dtype.itemsize
        if header_size + nbytes != info.file_size:
            raise ModelFormatError(
                f"member {name!r} declares shape {shape} of {dtype} ({nbytes} bytes) but holds "
                f"{info.file_size - header_size} bytes of data"
            )
        total += nbytes
        if max_bytes is not None and total > max_bytes:
            raise ModelFormatError(
                f"the arrays declare more than {max_bytes} bytes in all (member {name!r} brings them to {total}), "
                f"over the limit max_bytes={max_bytes}"
            )
        members[key] = _Member(info, key, dtype, shape, nbytes)
    for key in ("__model__", "__checksum__"):
        member = members.get(key)
        if member is None:
            raise ModelFormatError(f"not a neuroplug model file (no {key} entry)")
        if member.dtype != np.uint8 or len(member.shape) != 1:
            raise ModelFormatError(
                f"its {key} entry must be a 1-D uint8 array; it is {member.dtype} of shape {member.shape}"
            )
    return members


def _read_member(
    zf: zipfile.ZipFile, member: _Member, h: Any, keep: bool
) -> np.ndarray | None:
    """Stream a member's data through ``h`` in chunks; return it as an array when ``keep``."""
    out = np.empty(member.shape, dtype=member.dtype) if keep else None
    view = (
        memoryview(out.reshape(-1).view(np.uint8)) if keep and member.nbytes else None
    )
    with zf.open(member.info) as fh:
        _npy_header(fh, member.info.filename)
        done = 0
        while done < member.nbytes:
            chunk = fh.read(min(_CHUNK, member.nbytes - done))
            if not chunk:
                raise ModelFormatError(
                    f"member {member.info.filename!r} ends after {done} of {member.nbytes} bytes"
                )
            h.update(chunk)
            if view is not None:
                view[done : done + len(chunk)] = chunk
            done += len(chunk)
        if fh.read(1):  # also makes zipfile check the member's CRC at its end
            raise ModelFormatError(
                f"member {member.info.filename!r} holds more than its declared {member.nbytes} bytes"
            )
    return out


def _read_archive(
    path: Path, where: str, max_bytes: int | None
) -> tuple[bytes, str, dict[str, np.ndarray]]:
    """``(header JSON bytes, stored checksum, arrays)`` of a model file, checksum verified.

    Two passes: the first streams every member through SHA-256 holding one
    chunk at a time, so a damaged or forged file is refused before any array
    is allocated; the second reads the arrays (their sizes checked against
    the file and ``max_bytes`` already) and checks the checksum again.
    """
    with open(path, "rb") as raw:
        if raw.read(len(_NPY_MAGIC)) == _NPY_MAGIC:
            raise ModelFormatError(
                f"{where!r} is not a neuroplug model file (a plain .npy array)"
            )
        raw.seek(0, os.SEEK_END)
        archive_size = raw.tell()
        raw.seek(0)
        with zipfile.ZipFile(raw) as zf:
            members = _scan(zf, archive_size, max_bytes)
            small = hashlib.sha256()
            meta = _read_member(zf, members["__model__"], small, keep=True)
            stored = _read_member(zf, members["__checksum__"], small, keep=True)
            meta_bytes = meta.tobytes()
            checksum = stored.tobytes().decode("ascii", "replace")
            keys = sorted(k for k in members if k not in ("__model__", "__checksum__"))
            for keep in (False, True):
                h = hashlib.sha256(meta_bytes)
                arrays: dict[str, np.ndarray] = {}
                for key in keys:
                    member = members[key]
                    h.update(_array_tag(key, member.dtype, member.shape))
                    arr = _read_member(zf, member, h, keep)
                    if keep:
                        arrays[key] = arr
                if h.hexdigest() != checksum:
                    raise ModelFormatError(
                        f"{where!r} failed its checksum: the file was altered or damaged"
                    )
    return meta_bytes, checksum, arrays


def _estimator_classes() -> dict[str, type]:
    from . import estimators

    return {name: getattr(estimators, name) for name in estimators.__all__}


def _object_classes() -> dict[str, type]:
    """neuroplug's own parameter classes a model file may hold as objects (by fixed name)."""
    from . import augment, callbacks, optimizers

    classes: dict[str, type] = {"augment.RandomAffine": augment.RandomAffine}
    for name in (
        "SGD",
        "Adam",
        "ConstantLR",
        "StepLR",
        "ExponentialLR",
        "InverseTimeLR",
    ):
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
    leaves any previous file at ``path`` untouched.  Temporary files that a
    killed save to the same path left behind (their process is gone, or
    they are a day old) are removed.  ``.npz`` is appended when ``path`` has
    no suffix.

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
        raise IsADirectoryError(
            f"cannot save a model over a directory. Received: path={str(path)!r}"
        )
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
        "__checksum__": np.frombuffer(
            _checksum(meta_bytes, arrays).encode("ascii"), dtype=np.uint8
        ),
        **arrays,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    # The writer's pid in the name lets a later save tell a dead writer's leftover from a live one's file.
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
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


#: A temporary file this old is a leftover whatever its pid says (pids are reused, or it came from another host).
STALE_TEMPORARY_SECONDS = 24 * 3600


def _remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete the temporary files that killed saves to ``path`` left behind; return them.

    A temporary file ``.<name>.<pid>.<random>.tmp`` is stale when process
    ``pid`` no longer runs (POSIX) or when it is older than
    :data:`STALE_TEMPORARY_SECONDS`; a live writer's file (another process
    saving to the same path right now) is left alone.
    """
    removed = []
    prefix = f".{path.name}."
    try:
        candidates = [
            p
            for p in path.parent.iterdir()
            if p.name.startswith(prefix) and p.name.endswith(".tmp")
        ]
    except (
        OSError
    ):  # an unreadable directory: the save itself will report what is wrong
        return removed
    now = time.time()
    for tmp in candidates:
        pid_text = tmp.name[len(prefix) :].split(".", 1)[0]
        try:
            old = now - tmp.lstat().st_mtime > STALE_TEMPORARY_SECONDS
        except OSError:
            continue
        dead = (
            pid_text.isdigit()
            and int(pid_text) != os.getpid()
            and not _pid_alive(int(pid_text))
        )
        if dead or old:
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:  # removed by another save meanwhile, or not ours to remove
                pass
    return removed


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (POSIX); elsewhere assume it does and let the age decide."""
    if os.name != "posix" or pid <= 0:
        return True
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, under another user
        return True
    return True


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


def load(path: str | os.PathLike, *, max_bytes: int | None = None) -> Any:
    """Load an estimator saved by :func:`save`.  Executes no code from the file.

    The file is read with ``allow_pickle=False``; its JSON header may only
    name neuroplug's own estimators and parameter classes, whitelisted NumPy
    bit generators, and layers/pretrainers of installed plugins.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save`.
    max_bytes : int or None, default=None
        Most bytes the arrays may declare in all; ``None`` means the
        machine's physical memory.  Every member's declared size (zip
        entry, compression ratio, ``.npy`` header) is checked against the
        file and this limit before anything is read, and the checksum is
        verified in a streaming pass before any array is allocated.

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
        (checksum mismatch), declares more than ``max_bytes`` or sizes its
        contents cannot hold, comes from a newer format version, names an
        estimator neuroplug does not have, holds a fitted state that does not
        match its estimator's schema (:mod:`neuroplug._schema`), or uses
        layers/pretrainers that no installed plugin provides (the message
        lists the installed ones and the plugin the file was saved with).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {str(path)!r}")
    where = str(path)
    if max_bytes is None:
        max_bytes = _default_max_bytes()
    elif not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0:
        raise ValueError(
            f"max_bytes must be an int >= 0 or None. Received: max_bytes={max_bytes!r}"
        )
    try:
        meta_bytes, _, arrays = _read_archive(path, where, max_bytes)
    except ModelFormatError as exc:
        if where in str(exc):
            raise
        raise ModelFormatError(f"{where!r}: {exc}") from exc.__cause__
    except _READ_ERRORS as exc:
        raise ModelFormatError(
            f"{where!r} is not a readable neuroplug model (truncated or corrupt): {exc}"
        ) from exc
    try:
        meta = json.loads(meta_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelFormatError(f"{where!r} has an unreadable header: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ModelFormatError(f"{where!r} is not a neuroplug model file")
    version = meta.get("version")
    if (
        not isinstance(version, int)
        or isinstance(version, bool)
        or version < 1
        or version > FORMAT_VERSION
    ):
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
        raise ModelFormatError(
            f"{where!r} is not a complete neuroplug model file (no params or state)"
        )
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


def _check_provenance(
    manager: Any, kind: str, name: str, origin: str | None, where: str
) -> None:
    """The plugin (and distribution) the file recorded must provide ``name`` now, unblocked and unique."""
    from .registry import NameClashError, ProvenanceError

    try:
        manager.check_provenance(kind, name, origin)
    except ProvenanceError as exc:
        raise ModelFormatError(f"{where!r} uses {exc}") from None
    except NameClashError as exc:
        raise ModelFormatError(f"{where!r}: {exc}") from None


def _check_spec_names(
    params: dict[str, Any], origins: dict[str, dict[str, str]], where: str
) -> None:
    """Refuse layer specs / pretrainer names in the hyper-parameters that no installed plugin provides."""
    from .plugins import get_plugin_manager

    manager = get_plugin_manager()
    for kind, names in _layer_and_pretrainer_names(params).items():
        for name in sorted(names):
            _check_provenance(
                manager, kind, name, origins.get(kind, {}).get(name), where
            )
