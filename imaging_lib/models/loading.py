"""Load a model named by URI, verify its checksum, and keep it once per process.

A model is two files: weights (a torch state dict, or a TorchScript archive) and a small
JSON spec beside them (:class:`~imaging_lib.models.spec.ModelSpec`). A URI names either file:

* ``package://NAME``: a model shipped inside this package (``imaging_lib/models/NAME.json``),
  e.g. :data:`DEMO_MODEL_URI`;
* a local path (``/models/my_model.json``, or ``/models/my_model.pt`` with
  ``my_model.json`` beside it), or a ``file://`` URL of one;
* any other fsspec URL: ``gs://bucket/models/my_model.json`` (gcsfs), ``memory://...``.

The spec is data, often from a store that others can write, so loading never runs code
it names:

* a state dict is read with ``torch.load(weights_only=True)`` into a module made by a
  registered builder (:mod:`imaging_lib.models.builders`); nothing is imported by name;
* a TorchScript archive is a program, so it loads only when the *caller* passes
  ``trust_torchscript=True`` (a spec cannot ask for it);
* the weights resolve inside the spec's folder only (no absolute path, URL or ``..``;
  for a local folder, no symlink leading out of it), and are read within
  :data:`~imaging_lib.limits.MODEL_WEIGHTS_MAX_BYTES`;
* the spec must pin the weights' SHA-256, and the model's identity,
  :attr:`LoadedModel.checksum`, covers the spec and the weights together
  (:func:`~imaging_lib.models.spec.model_checksum`).

A driver verifies a model once with :func:`load_model`; the workers get the pair
``(uri, checksum)`` (a :class:`LoadedModel` pickles as that pair) and
:func:`load_pinned_model` refuses a spec or weights that no longer have that checksum.
Models are cached per process and URI; :func:`load_counts` tells how many real loads
happened here.
"""

from __future__ import annotations

import io
import json
import posixpath
import threading
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import torch
from torch import nn

from ..errors import InvalidModelOutput, InvalidModelSpec, ModelChecksumMismatch, ModelNotFound
from ..limits import MODEL_SPEC_MAX_BYTES, MODEL_WEIGHTS_MAX_BYTES
from .builders import builder
from .spec import ModelSpec, is_sha256_hex, model_checksum, sha256_hex

__all__ = [
    "DEMO_MODEL_URI",
    "LoadedModel",
    "clear_model_cache",
    "load_counts",
    "load_model",
    "load_pinned_model",
    "read_model_files",
    "read_spec",
]

DEMO_MODEL_URI = "package://demo_lesion_cnn"
PACKAGE_SCHEME = "package://"


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A verified model ready for inference, with the facts that provenance records need.

    Attributes
    ----------
    uri : str
        The URI it was loaded from.
    module : torch.nn.Module
        The network, in eval mode (channels-last memory for state-dict models).
    spec : ModelSpec
        Its spec.
    checksum : str
        The model's identity: SHA-256 over its canonical spec and its weights' SHA-256.
    weights_sha256 : str
        SHA-256 of the weights file (as pinned in the spec).
    trust_torchscript : bool
        Whether the caller trusted a TorchScript archive (workers inherit that trust for
        exactly this checksum).
    """

    uri: str
    module: nn.Module
    spec: ModelSpec
    checksum: str
    weights_sha256: str
    trust_torchscript: bool = False

    @property
    def model_id(self) -> str:
        """Stable, store-key-safe id: ``<name>-<first 12 hex digits of the checksum>``."""
        return f"{self.spec.name}-{self.checksum[:12]}"

    def __reduce__(self):  # ship the verified pin; the receiver loads (once) and checks it
        return (load_pinned_model, (self.uri, self.checksum, self.trust_torchscript))

    def __repr__(self) -> str:
        return f"LoadedModel({self.model_id!r}, uri={self.uri!r})"


_CACHE: dict[str, LoadedModel] = {}
_LOAD_COUNTS: Counter[str] = Counter()
_LOCK = threading.Lock()


def _is_url(location: str) -> bool:
    return "://" in location or "::" in location


def _local_path(uri: str) -> str:
    """The local path of a ``file://`` URL; any other URI unchanged."""
    if not uri.startswith("file://"):
        return uri
    parsed = urlparse(uri)
    if parsed.netloc not in ("", "localhost"):
        raise ModelNotFound(uri, f"a file:// URL names a file on this machine, not on {parsed.netloc!r}")
    return unquote(parsed.path)


def _package_spec_path(uri: str) -> str:
    name = uri[len(PACKAGE_SCHEME) :]
    if not name or "/" in name or name.startswith("."):
        raise ModelNotFound(uri, "a package model URI is package://NAME with a plain name")
    path = resources.files(__package__) / f"{name}.json"
    if not path.is_file():
        raise ModelNotFound(uri, f"no model named {name!r} is shipped in imaging_lib/models")
    return str(path)


def _spec_location(uri: str) -> str:
    location = _package_spec_path(uri) if uri.startswith(PACKAGE_SCHEME) else _local_path(uri)
    if location.endswith(".json"):
        return location
    stem = location.rsplit(".", 1)[0] if "." in posixpath.basename(location) else location
    return stem + ".json"


def _weights_location(spec_location: str, weights: str, uri: str) -> str:
    """Where the weights are: inside the spec's folder, whatever symlinks say."""
    if _is_url(spec_location):
        return posixpath.join(posixpath.dirname(spec_location), weights)
    folder = Path(spec_location).parent.resolve()
    path = (folder / weights).resolve()
    if not path.is_relative_to(folder):
        raise InvalidModelSpec(uri, f"weights {weights!r} lead out of the model's folder (through a symlink)")
    return str(path)


def _read(location: str, uri: str, limit: int, what: str) -> bytes:
    try:
        if _is_url(location):  # through the store's own opener: gs:// gets its emulator and credentials rules
            from ..store.objects import open_filesystem

            filesystem, path = open_filesystem(location)
            with filesystem.open(path, "rb") as handle:
                data = handle.read(limit + 1)
        else:
            with open(location, "rb") as handle:
                data = handle.read(limit + 1)
    except FileNotFoundError as exc:
        raise ModelNotFound(uri, f"no {what} at {location}") from exc
    except OSError as exc:
        raise ModelNotFound(uri, f"cannot read the {what} at {location}: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise InvalidModelSpec(uri, f"the {what} at {location} is larger than {limit} bytes")
    return data


def read_spec(uri: str) -> tuple[ModelSpec, str]:
    """Read the spec a model URI names and return it with the location of its weights.

    Raises
    ------
    ModelNotFound
        If the spec file does not exist.
    InvalidModelSpec
        If it is not JSON, lacks fields, or names weights outside its folder.
    """
    location = _spec_location(uri)
    raw = _read(location, uri, MODEL_SPEC_MAX_BYTES, "model spec")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidModelSpec(uri, f"the model spec {location} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidModelSpec(uri, f"the model spec {location} is not a JSON object")
    spec = ModelSpec.from_dict(data, uri)
    return spec, _weights_location(location, spec.weights, uri)


def _state_dict_module(spec: ModelSpec, weights: bytes, uri: str) -> nn.Module:
    try:
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file that is not a state dict
        raise InvalidModelSpec(uri, f"the weights are not a torch state dict: {exc}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InvalidModelSpec(uri, "the weights are not a state dict of tensors")
    make = builder(str(spec.architecture), uri)
    try:
        # Build on the meta device first: the spec's parameters cannot make us allocate
        # more than the weights hold, since shapes are checked before the real build.
        with torch.device("meta"):
            skeleton = make(**spec.architecture_params)
        _check_module(skeleton, spec, uri)
        skeleton.load_state_dict(state, strict=True, assign=True)
        module = make(**spec.architecture_params)
        module.load_state_dict(state, strict=True)
    except InvalidModelSpec:
        raise
    except (RuntimeError, TypeError, ValueError) as exc:
        raise InvalidModelSpec(uri, f"the weights do not fit architecture {spec.architecture!r}: {exc}") from exc
    return module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch stubs lack it


def _check_module(module: object, spec: ModelSpec, uri: str) -> None:
    if not isinstance(module, nn.Module):
        raise InvalidModelSpec(uri, f"the builder of {spec.architecture!r} returned {type(module).__name__}")


def _build(spec: ModelSpec, weights: bytes, uri: str) -> nn.Module:
    if spec.format == "state_dict":
        return _state_dict_module(spec, weights, uri)
    try:
        return torch.jit.load(io.BytesIO(weights), map_location="cpu")
    except RuntimeError as exc:
        raise InvalidModelSpec(uri, f"the weights are not a TorchScript archive: {exc}") from exc


def _check_outputs(module: nn.Module, spec: ModelSpec, uri: str) -> None:
    probe = torch.zeros(1, spec.channels, *spec.input_size).contiguous(memory_format=torch.channels_last)
    try:
        with torch.inference_mode():
            out = module(probe)
    except Exception as exc:  # any failure of the model's forward on a well-formed input
        raise InvalidModelSpec(uri, f"the model fails on a {tuple(probe.shape)} input: {exc}") from exc
    expected = (1, len(spec.class_names))
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InvalidModelOutput(
            uri, f"the model returns {shape} for one image but its spec names {len(spec.class_names)} classes"
        )


def read_model_files(uri: str) -> tuple[ModelSpec, bytes]:
    """Read a model's spec and its weights (inside the spec's folder, bounded), checked against the pinned SHA-256.

    Nothing is built or run: this is what :func:`load_model` and the registry's copy of a
    shipped model read.

    Raises
    ------
    ModelNotFound
        If the spec or the weights are missing.
    InvalidModelSpec
        If the spec is malformed or names weights outside its folder.
    ModelChecksumMismatch
        If the weights differ from the SHA-256 the spec pins.
    """
    spec, weights_location = read_spec(uri)
    return spec, _read_weights(spec, weights_location, uri)


def _read_weights(spec: ModelSpec, location: str, uri: str) -> bytes:
    weights = _read(location, uri, MODEL_WEIGHTS_MAX_BYTES, "weights")
    if sha256_hex(weights) != spec.sha256:
        raise ModelChecksumMismatch(
            uri, f"the weights {spec.weights} do not have the SHA-256 their spec pins ({spec.sha256})"
        )
    return weights


def _load_uncached(uri: str, checksum: str | None, trust_torchscript: bool) -> LoadedModel:
    spec, weights_location = read_spec(uri)
    if spec.format == "torchscript" and not trust_torchscript:
        raise InvalidModelSpec(
            uri,
            "the spec names a TorchScript archive, which is a program; it loads only when the caller "
            "vouches for it with trust_torchscript=True (a spec cannot)",
        )
    weights = _read_weights(spec, weights_location, uri)
    identity = model_checksum(spec, spec.sha256)
    if checksum is not None and identity != checksum:
        raise ModelChecksumMismatch(
            uri, f"the model's spec or weights changed since it was verified: its checksum is no longer {checksum}"
        )
    module = _build(spec, weights, uri).eval()
    _check_outputs(module, spec, uri)
    return LoadedModel(uri, module, spec, identity, spec.sha256, spec.format == "torchscript")


def _expected(checksum: Any, uri: str) -> str:
    value = checksum.lower() if isinstance(checksum, str) else checksum
    if not is_sha256_hex(value):
        raise ModelChecksumMismatch(uri, "the expected model checksum must be 64 hex digits")
    return str(value)


def load_model(
    uri: str = DEMO_MODEL_URI, checksum: str | None = None, *, trust_torchscript: bool = False
) -> LoadedModel:
    """Return the model at ``uri``, verified, loading it only the first time in this process.

    Parameters
    ----------
    uri : str
        ``package://NAME``, a local path or ``file://`` URL, or an fsspec URL (``gs://``,
        ``memory://``) naming the spec (``.json``) or the weights with the spec beside.
    checksum : str, optional
        The model's expected :attr:`LoadedModel.checksum` (spec and weights). Given, a
        model whose spec or weights differ is refused; a cached model with another
        checksum is not returned: the files are read and checked again.
    trust_torchscript : bool
        Allow a TorchScript archive. It is a program: pass True only for archives you
        would run as code. A spec cannot grant this.

    Returns
    -------
    LoadedModel

    Raises
    ------
    ModelNotFound
        If the spec or the weights are missing.
    ModelChecksumMismatch
        If the weights differ from the SHA-256 their spec pins, or the model from ``checksum``.
    InvalidModelSpec
        If the spec is malformed, names weights outside its folder, an unknown
        architecture, or an untrusted TorchScript archive, or the weights do not fit it.
    InvalidModelOutput
        If the model does not return one logit per class name.
    """
    expected = None if checksum is None else _expected(checksum, uri)
    with _LOCK:
        cached = _CACHE.get(uri)
        if (
            cached is None
            or (expected is not None and cached.checksum != expected)
            or (cached.trust_torchscript and not trust_torchscript)
        ):
            cached = _CACHE[uri] = _load_uncached(uri, expected, trust_torchscript)
            _LOAD_COUNTS[uri] += 1
        return cached


def load_pinned_model(uri: str, checksum: str, trust_torchscript: bool = False) -> LoadedModel:
    """Return the model at ``uri`` only if it still has the ``checksum`` a driver verified.

    This is how a worker loads: it never decides by itself what to trust.

    Parameters
    ----------
    uri : str
        As for :func:`load_model`.
    checksum : str
        :attr:`LoadedModel.checksum` of the model as the driver verified it.
    trust_torchscript : bool
        Whether the driver's caller trusted this (TorchScript) model.

    Returns
    -------
    LoadedModel

    Raises
    ------
    ModelChecksumMismatch
        If no checksum is given, or the model's spec or weights no longer match it.
    ModelNotFound, InvalidModelSpec, InvalidModelOutput
        As for :func:`load_model`.
    """
    if not checksum:
        raise ModelChecksumMismatch(
            uri, "a worker loads only a model pinned by the checksum the driver verified, and none was given"
        )
    return load_model(uri, checksum, trust_torchscript=trust_torchscript)


def load_counts() -> dict[str, int]:
    """Return how many times each URI was loaded (not served from cache) in this process."""
    with _LOCK:
        return dict(_LOAD_COUNTS)


def clear_model_cache() -> None:
    """Forget every cached model (the load counts stay, so they keep counting real loads)."""
    with _LOCK:
        _CACHE.clear()
