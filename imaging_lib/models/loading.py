"""Load a model named by URI, check its SHA-256, and keep it once per process.

A model is two files: weights (a torch state dict or a TorchScript archive) and a small
JSON spec beside them (input size, channels, class names, preprocessing, the weights'
SHA-256, and for a state dict the architecture to build). A URI names either file:

* ``package://NAME``: a model shipped inside this package (``imaging_lib/models/NAME.json``),
  e.g. :data:`DEMO_MODEL_URI`;
* a local path (``/models/my_model.json``, or ``/models/my_model.pt`` with
  ``my_model.json`` beside it);
* any fsspec URL: ``gs://bucket/models/my_model.json`` (gcsfs), ``file://...``, ``memory://...``.

:func:`load_model` caches per process and per URI, so a Dask worker that runs a
thousand tasks loads once; :func:`load_counts` tells how many loads happened here.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import posixpath
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import InvalidModelOutput, InvalidModelSpec, ModelChecksumMismatch, ModelNotFound
from .lesion_cnn import LesionCNN

__all__ = [
    "ARCHITECTURES",
    "DEMO_MODEL_URI",
    "LoadedModel",
    "ModelSpec",
    "clear_model_cache",
    "load_counts",
    "load_model",
    "read_spec",
    "sha256_hex",
]

DEMO_MODEL_URI = "package://demo_lesion_cnn"
PACKAGE_SCHEME = "package://"

#: Architectures a state-dict spec can name by short name; any other name is read as
#: ``"package.module:ClassName"`` and imported.
ARCHITECTURES: dict[str, type[nn.Module]] = {"lesion_cnn": LesionCNN}

_REQUIRED = ("name", "format", "weights", "input_size", "channels", "class_names")


@dataclass(frozen=True)
class ModelSpec:
    """What a model expects and returns, read from its JSON spec.

    Attributes
    ----------
    name : str
        Short name, used in the model id.
    format : str
        ``"state_dict"`` or ``"torchscript"``.
    weights : str
        The weights file, relative to the spec's folder or an absolute path/URL.
    input_size : tuple of int
        ``(height, width)`` of the model input.
    channels : int
        Input channels (3 for grey replicated to RGB).
    class_names : tuple of str
        One name per output logit.
    positive_class : str
        The class whose probability is the study's score (default: the last).
    preprocessing : dict
        Arguments of :func:`imaging_lib.science.preprocess.window_for` plus ``slice_axis``.
    sha256 : str or None
        Expected SHA-256 of the weights file (hex).
    architecture : str or None
        For a state dict: a key of :data:`ARCHITECTURES` or ``"module:Class"``.
    architecture_params : dict
        Keyword arguments of the architecture.
    batch_size : int
        Slices per forward pass that ran fastest on CPU.
    metrics : dict
        Held-out metrics recorded at training time (informative only).
    """

    name: str
    format: str
    weights: str
    input_size: tuple[int, int]
    channels: int
    class_names: tuple[str, ...]
    positive_class: str
    preprocessing: dict[str, Any] = field(default_factory=dict)
    sha256: str | None = None
    architecture: str | None = None
    architecture_params: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 10
    metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<spec>") -> ModelSpec:
        """Build a spec from its JSON form.

        Raises
        ------
        InvalidModelSpec
            If a required field is missing or a value has the wrong form.
        """
        missing = [key for key in _REQUIRED if key not in data]
        if missing:
            raise InvalidModelSpec(source, f"the model spec lacks {', '.join(missing)}")
        if data["format"] not in ("state_dict", "torchscript"):
            raise InvalidModelSpec(source, f"format must be 'state_dict' or 'torchscript', not {data['format']!r}")
        if data["format"] == "state_dict" and not data.get("architecture"):
            raise InvalidModelSpec(source, "a state-dict model needs an 'architecture' in its spec")
        size = tuple(int(v) for v in data["input_size"])
        classes = tuple(str(c) for c in data["class_names"])
        if len(size) != 2 or min(size) < 1:
            raise InvalidModelSpec(source, f"input_size must be [height, width], got {data['input_size']}")
        if len(classes) < 2:
            raise InvalidModelSpec(source, f"a classifier needs at least 2 class names, got {list(classes)}")
        positive = str(data.get("positive_class", classes[-1]))
        if positive not in classes:
            raise InvalidModelSpec(source, f"positive_class {positive!r} is not one of {list(classes)}")
        return cls(
            name=str(data["name"]),
            format=str(data["format"]),
            weights=str(data["weights"]),
            input_size=(size[0], size[1]),
            channels=int(data["channels"]),
            class_names=classes,
            positive_class=positive,
            preprocessing=dict(data.get("preprocessing", {})),
            sha256=data.get("sha256"),
            architecture=data.get("architecture"),
            architecture_params=dict(data.get("architecture_params", {})),
            batch_size=int(data.get("batch_size", 10)),
            metrics=dict(data.get("metrics", {})),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form of the spec."""
        return {
            "name": self.name,
            "format": self.format,
            "weights": self.weights,
            "sha256": self.sha256,
            "architecture": self.architecture,
            "architecture_params": self.architecture_params,
            "input_size": list(self.input_size),
            "channels": self.channels,
            "class_names": list(self.class_names),
            "positive_class": self.positive_class,
            "preprocessing": self.preprocessing,
            "batch_size": self.batch_size,
            "metrics": self.metrics,
        }

    def __getitem__(self, key: str) -> Any:
        """Mapping-style access by the JSON field name, e.g. ``spec["input_size"]``."""
        return self.to_dict()[key]

    @property
    def positive_index(self) -> int:
        """Index of :attr:`positive_class` among the outputs."""
        return self.class_names.index(self.positive_class)


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model ready for inference, with the facts that provenance records need.

    Attributes
    ----------
    uri : str
        The URI it was loaded from.
    module : torch.nn.Module
        The network, in eval mode (channels-last memory for state-dict models).
    spec : ModelSpec
        Its spec.
    sha256 : str
        SHA-256 of the weights file as read.
    """

    uri: str
    module: nn.Module
    spec: ModelSpec
    sha256: str

    @property
    def model_id(self) -> str:
        """Stable, store-key-safe id: ``<name>-<first 12 hex digits of the SHA-256>``."""
        return f"{self.spec.name}-{self.sha256[:12]}"

    def __reduce__(self):  # ship by URI: the receiving process loads (once) from its own cache
        return (load_model, (self.uri, self.sha256))

    def __repr__(self) -> str:
        return f"LoadedModel({self.model_id!r}, uri={self.uri!r})"


_CACHE: dict[str, LoadedModel] = {}
_LOAD_COUNTS: Counter[str] = Counter()
_LOCK = threading.Lock()


def sha256_hex(data: bytes) -> str:
    """Return the SHA-256 of ``data`` as 64 hex digits."""
    return hashlib.sha256(data).hexdigest()


def _is_url(uri: str) -> bool:
    return "://" in uri and not uri.startswith(PACKAGE_SCHEME)


def _package_spec_path(uri: str) -> str:
    name = uri[len(PACKAGE_SCHEME) :]
    if not name or "/" in name or name.startswith("."):
        raise ModelNotFound(uri, "a package model URI is package://NAME with a plain name")
    path = resources.files(__package__) / f"{name}.json"
    if not path.is_file():
        raise ModelNotFound(uri, f"no model named {name!r} is shipped in imaging_lib/models")
    return str(path)


def _read(location: str, uri: str) -> bytes:
    try:
        if _is_url(location):
            import fsspec

            with fsspec.open(location, "rb") as handle:
                return handle.read()
        return Path(location).read_bytes()
    except FileNotFoundError as exc:
        raise ModelNotFound(uri, f"nothing at {location}") from exc
    except OSError as exc:
        raise ModelNotFound(uri, f"cannot read {location}: {exc}") from exc


def _sibling(location: str, name: str) -> str:
    if _is_url(name) or posixpath.isabs(name) or Path(name).is_absolute():
        return name
    if _is_url(location):
        return posixpath.join(posixpath.dirname(location), name)
    return str(Path(location).parent / name)


def _spec_location(uri: str) -> str:
    location = _package_spec_path(uri) if uri.startswith(PACKAGE_SCHEME) else uri
    if location.endswith(".json"):
        return location
    stem = location.rsplit(".", 1)[0] if "." in posixpath.basename(location) else location
    return stem + ".json"


def read_spec(uri: str) -> tuple[ModelSpec, str]:
    """Read the spec a model URI names and return it with the location of its weights.

    Raises
    ------
    ModelNotFound
        If the spec file does not exist.
    InvalidModelSpec
        If it is not JSON or lacks fields.
    """
    location = _spec_location(uri)
    raw = _read(location, uri)
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidModelSpec(uri, f"the model spec {location} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidModelSpec(uri, f"the model spec {location} is not a JSON object")
    spec = ModelSpec.from_dict(data, uri)
    return spec, _sibling(location, spec.weights)


def _architecture(name: str, uri: str) -> type[nn.Module]:
    if name in ARCHITECTURES:
        return ARCHITECTURES[name]
    module_name, _, class_name = name.partition(":")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise InvalidModelSpec(
            uri, f"architecture {name!r} is neither built in nor importable as module:Class"
        ) from exc


def _build(spec: ModelSpec, weights: bytes, uri: str) -> nn.Module:
    if spec.format == "torchscript":
        try:
            return torch.jit.load(io.BytesIO(weights), map_location="cpu")
        except RuntimeError as exc:
            raise InvalidModelSpec(uri, f"the weights are not a TorchScript archive: {exc}") from exc
    try:
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file that is not a state dict
        raise InvalidModelSpec(uri, f"the weights are not a torch state dict: {exc}") from exc
    module = _architecture(str(spec.architecture), uri)(**spec.architecture_params)
    try:
        module.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as exc:
        raise InvalidModelSpec(uri, f"the weights do not fit architecture {spec.architecture!r}: {exc}") from exc
    return module.to(memory_format=torch.channels_last)


def _check_outputs(module: nn.Module, spec: ModelSpec, uri: str) -> None:
    probe = torch.zeros(1, spec.channels, *spec.input_size).contiguous(memory_format=torch.channels_last)
    try:
        with torch.inference_mode():
            out = module(probe)
    except Exception as exc:  # any failure of the user's forward on a well-formed input
        raise InvalidModelSpec(uri, f"the model fails on a {tuple(probe.shape)} input: {exc}") from exc
    expected = (1, len(spec.class_names))
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InvalidModelOutput(
            uri, f"the model returns {shape} for one image but its spec names {len(spec.class_names)} classes"
        )


def _load_uncached(uri: str, sha256: str | None) -> LoadedModel:
    spec, weights_location = read_spec(uri)
    expected = sha256 or spec.sha256
    if not expected:
        raise InvalidModelSpec(uri, "no SHA-256 to check the weights against (give one in the spec or the call)")
    weights = _read(weights_location, uri)
    actual = sha256_hex(weights)
    if actual != expected.lower():
        raise ModelChecksumMismatch(
            uri, f"weights {weights_location} have SHA-256 {actual}, expected {expected.lower()}"
        )
    module = _build(spec, weights, uri).eval()
    _check_outputs(module, spec, uri)
    return LoadedModel(uri=uri, module=module, spec=spec, sha256=actual)


def load_model(uri: str = DEMO_MODEL_URI, sha256: str | None = None) -> LoadedModel:
    """Return the model at ``uri``, loading it only the first time in this process.

    Parameters
    ----------
    uri : str
        ``package://NAME``, a local path, or an fsspec URL (``gs://``, ``file://``,
        ``memory://``) naming the spec (``.json``) or the weights with the spec beside.
    sha256 : str, optional
        Expected SHA-256 of the weights; overrides the spec's. A cached model with another
        checksum is not returned: the file is read and checked again.

    Returns
    -------
    LoadedModel

    Raises
    ------
    ModelNotFound
        If the spec or the weights are missing.
    ModelChecksumMismatch
        If the weights' SHA-256 differs from the expected one.
    InvalidModelSpec
        If the spec is malformed or the weights do not fit it.
    InvalidModelOutput
        If the model does not return one logit per class name.
    """
    with _LOCK:
        cached = _CACHE.get(uri)
        if cached is None or (sha256 is not None and cached.sha256 != sha256.lower()):
            cached = _CACHE[uri] = _load_uncached(uri, sha256)
            _LOAD_COUNTS[uri] += 1
        return cached


def load_counts() -> dict[str, int]:
    """Return how many times each URI was loaded (not served from cache) in this process."""
    with _LOCK:
        return dict(_LOAD_COUNTS)


def clear_model_cache() -> None:
    """Forget every cached model (the load counts stay, so they keep counting real loads)."""
    with _LOCK:
        _CACHE.clear()
