"""A model's JSON spec, checked as untrusted data, and the checksum that identifies a model.

A spec comes from wherever the model lives, often a store anyone with write access can
change, so :meth:`ModelSpec.from_dict` accepts only plain values: a store-key-safe name,
weights named relative to the spec's folder, an architecture *name* (see
:mod:`imaging_lib.models.builders`), and sizes within :mod:`imaging_lib.limits`.

:func:`model_checksum` is a model's identity: one SHA-256 over the canonical JSON of its
spec and the SHA-256 of its weights, so changing either changes the model's checksum
and its id.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidModelSpec
from ..limits import MODEL_INPUT_MAX_VALUES
from .decision import DEFAULT_RULE, DecisionRule

__all__ = ["FORMATS", "ModelSpec", "model_checksum", "sha256_hex"]

FORMATS = ("state_dict", "torchscript")
"""Weights formats: a torch state dict (data) or a TorchScript archive (a program)."""

_REQUIRED = ("name", "format", "weights", "sha256", "input_size", "channels", "class_names")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_WEIGHTS_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def sha256_hex(data: bytes) -> str:
    """Return the SHA-256 of ``data`` as 64 hex digits."""
    return hashlib.sha256(data).hexdigest()


def is_sha256_hex(value: object) -> bool:
    """Return whether ``value`` is 64 lower-case hex digits."""
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None


def _name(value: Any, source: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value) or ".." in value:
        raise InvalidModelSpec(source, f"name {value!r} is not a plain model name (letters, digits, '_', '.', '-')")
    return value


def _weights(value: Any, source: str) -> str:
    parts = value.split("/") if isinstance(value, str) else []
    if not parts or not all(_WEIGHTS_PART.fullmatch(part) for part in parts):
        shown = repr(value)[:80]
        raise InvalidModelSpec(
            source,
            f"weights {shown} must name a file inside the spec's folder (a relative path: no absolute path, "
            "no URL, no '..', no hidden parts)",
        )
    return value


def _positive_ints(values: Any, count: int, what: str, source: str) -> tuple[int, ...]:
    items = values if isinstance(values, list) else [values]
    if len(items) != count or not all(type(v) is int and v >= 1 for v in items):
        raise InvalidModelSpec(source, f"{what} must be {count} positive integer(s), got {values!r}"[:200])
    return tuple(items)


def _mapping(value: Any, what: str, source: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidModelSpec(source, f"{what} must be a JSON object, got {type(value).__name__}")
    return dict(value)


@dataclass(frozen=True)
class ModelSpec:
    """What a model expects and returns, read from its JSON spec.

    Attributes
    ----------
    name : str
        Short, store-key-safe name, used in the model id.
    format : str
        ``"state_dict"`` or ``"torchscript"`` (see :data:`FORMATS`).
    weights : str
        The weights file, relative to the spec's folder.
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
    sha256 : str
        SHA-256 of the weights file (64 hex digits).
    architecture : str or None
        For a state dict: the name of a builder (:func:`imaging_lib.models.builders.builder`).
    architecture_params : dict
        Keyword arguments of the builder.
    batch_size : int
        Slices per forward pass that ran fastest on CPU.
    metrics : dict
        Held-out metrics recorded at training time (informative only).
    decision : dict
        The study-level decision rule (:class:`~imaging_lib.models.decision.DecisionRule`),
        empty for specs that state none (they get :data:`~imaging_lib.models.decision.DEFAULT_RULE`).
    """

    name: str
    format: str
    weights: str
    input_size: tuple[int, int]
    channels: int
    class_names: tuple[str, ...]
    positive_class: str
    sha256: str
    preprocessing: dict[str, Any] = field(default_factory=dict)
    architecture: str | None = None
    architecture_params: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 10
    metrics: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<spec>") -> ModelSpec:
        """Build a spec from its JSON form, checking every value.

        Raises
        ------
        InvalidModelSpec
            If a required field is missing or a value has the wrong form or size.
        """
        missing = [key for key in _REQUIRED if key not in data]
        if missing:
            raise InvalidModelSpec(source, f"the model spec lacks {', '.join(missing)}")
        if data["format"] not in FORMATS:
            raise InvalidModelSpec(source, f"format must be 'state_dict' or 'torchscript', not {data['format']!r}")
        architecture = data.get("architecture")
        if data["format"] == "state_dict" and not architecture:
            raise InvalidModelSpec(source, "a state-dict model needs an 'architecture' in its spec")
        if architecture is not None and not isinstance(architecture, str):
            raise InvalidModelSpec(source, f"architecture must be a builder name, not {architecture!r}")
        sha256 = str(data["sha256"]).lower()
        if not is_sha256_hex(sha256):
            raise InvalidModelSpec(source, "sha256 must be the weights' SHA-256 as 64 hex digits")
        height, width = _positive_ints(data["input_size"], 2, "input_size", source)
        (channels,) = _positive_ints(data["channels"], 1, "channels", source)
        if channels * height * width > MODEL_INPUT_MAX_VALUES:
            raise InvalidModelSpec(
                source, f"an input of {channels}x{height}x{width} exceeds {MODEL_INPUT_MAX_VALUES} values"
            )
        if not isinstance(data["class_names"], list) or not 2 <= len(data["class_names"]) <= 1000:
            raise InvalidModelSpec(source, f"a classifier needs 2 to 1000 class names, got {data['class_names']!r}")
        classes = tuple(str(c) for c in data["class_names"])
        positive = str(data.get("positive_class", classes[-1]))
        if positive not in classes:
            raise InvalidModelSpec(source, f"positive_class {positive!r} is not one of {list(classes)}")
        return cls(
            name=_name(data["name"], source),
            format=str(data["format"]),
            weights=_weights(data["weights"], source),
            input_size=(height, width),
            channels=channels,
            class_names=classes,
            positive_class=positive,
            sha256=sha256,
            preprocessing=_mapping(data.get("preprocessing", {}), "preprocessing", source),
            architecture=architecture,
            architecture_params=_mapping(data.get("architecture_params", {}), "architecture_params", source),
            batch_size=_positive_ints(data.get("batch_size", 10), 1, "batch_size", source)[0],
            metrics=_mapping(data.get("metrics", {}), "metrics", source),
            decision=DecisionRule.from_dict(data["decision"], source).to_dict() if "decision" in data else {},
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
            # only when stated, so the checksum of a spec without a rule is what it always was
            **({"decision": self.decision} if self.decision else {}),
        }

    def __getitem__(self, key: str) -> Any:
        """Mapping-style access by the JSON field name, e.g. ``spec["input_size"]``."""
        return self.to_dict()[key]

    @property
    def decision_rule(self) -> DecisionRule:
        """How a study is labelled from its slice probabilities (the spec's, else the default rule)."""
        return DecisionRule.from_dict(self.decision) if self.decision else DEFAULT_RULE

    @property
    def positive_index(self) -> int:
        """Index of :attr:`positive_class` among the outputs."""
        return self.class_names.index(self.positive_class)


def model_checksum(spec: ModelSpec, weights_sha256: str) -> str:
    """Return a model's identity: the SHA-256 of its canonical spec and its weights' SHA-256.

    The canonical form is the JSON of :meth:`ModelSpec.to_dict` with sorted keys and no
    spaces, so a change of any field that affects the model (architecture, its
    parameters, preprocessing, classes) or of one byte of the weights changes it.

    Parameters
    ----------
    spec : ModelSpec
    weights_sha256 : str
        SHA-256 of the weights file as read.

    Returns
    -------
    str
        64 hex digits.

    Raises
    ------
    InvalidModelSpec
        If the spec holds a value JSON cannot represent canonically (NaN, infinity).
    """
    content = {"spec": spec.to_dict(), "weights_sha256": weights_sha256}
    try:
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except ValueError as exc:
        raise InvalidModelSpec(spec.name, f"the spec has no canonical JSON form: {exc}") from exc
    return sha256_hex(canonical.encode("ascii"))
