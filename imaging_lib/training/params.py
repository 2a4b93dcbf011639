"""The parameters of one training trial, checked, and the sweeps that make many trials from one.

:class:`TrainingParams` says what to train (a registered builder and its keywords, the
input size and windowing, so the spec of the model it registers), how (epochs, batch,
learning rate, early stopping, synthetic-lesion augmentation) and how the reviewed
studies are split (fractions and seed, by patient). :func:`grid` and :func:`random_search`
turn a base and a search space into the trials of a sweep, each trial one Dask task.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..limits import MODEL_INPUT_MAX_VALUES, TRAINING_MAX_EPOCHS, TRAINING_MAX_TRIALS

__all__ = ["TrainingParams", "grid", "random_search", "trial_ids"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,40}")
_DEFAULT_ARCHITECTURE_PARAMS = {"width": 8, "num_classes": 2}
_DEFAULT_PREPROCESSING = {"window": "percentile", "percentiles": [1.0, 99.0], "slice_axis": 2}


@dataclass(frozen=True)
class TrainingParams:
    """Everything one trial needs besides its data.

    Attributes
    ----------
    name : str
        The registered model's name (its id is ``<name>-<checksum[:12]>``).
    architecture : str
        A registered builder (:func:`imaging_lib.models.builder_names`).
    architecture_params : dict
        The builder's keywords.
    input_size : tuple of int
        ``(height, width)`` slices are resized to.
    preprocessing : dict
        Window rule and ``slice_axis`` (as a model spec's ``preprocessing``).
    epochs, batch_size : int
    learning_rate, weight_decay : float
        Adam's.
    patience : int
        Stop after this many epochs without a validation AUC gain above ``min_delta`` (0: never).
    min_delta : float
    seed : int
        Seeds the weights, the batch order and the augmentation.
    validation_fraction, test_fraction : float
        Share of patients (split groups) in the validation and test splits.
    split_seed : int
        Seeds the split; trials of one sweep share it, so they are compared on the same studies.
    synthetic_lesions : float
        Probability that a training slice without a lesion gets a synthetic one (the demo's
        augmentation; 0 for real data).
    augment : bool
        Random flips and quarter turns of training slices.
    decision_k : int
        The study score is the mean of the ``decision_k`` highest slice probabilities.
    max_slices_per_study : int
        Training slices kept per study (all labelled lesion slices first).
    parent_model : str or None
        A registered model id whose weights the trial starts from (same architecture).
    """

    name: str = "lesion_cnn"
    architecture: str = "lesion_cnn"
    architecture_params: dict[str, Any] = field(default_factory=lambda: dict(_DEFAULT_ARCHITECTURE_PARAMS))
    input_size: tuple[int, int] = (64, 64)
    preprocessing: dict[str, Any] = field(default_factory=lambda: dict(_DEFAULT_PREPROCESSING))
    epochs: int = 10
    batch_size: int = 16
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    patience: int = 3
    min_delta: float = 0.0
    seed: int = 0
    validation_fraction: float = 0.25
    test_fraction: float = 0.25
    split_seed: int = 0
    synthetic_lesions: float = 0.0
    augment: bool = True
    decision_k: int = 3
    max_slices_per_study: int = 64
    parent_model: str | None = None

    def __post_init__(self) -> None:
        self._check()

    def _check(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"name {self.name!r} must be a plain model name (letters, digits, '_', '.', '-')")
        height, width = self.input_size
        if min(height, width) < 16 or height % 16 or width % 16 or 3 * height * width > MODEL_INPUT_MAX_VALUES:
            raise ValueError(
                f"input_size {self.input_size} must be multiples of 16, at least 16, within the input limit"
            )
        for name, low, high in (
            ("epochs", 1, TRAINING_MAX_EPOCHS),
            ("batch_size", 1, 4096),
            ("patience", 0, TRAINING_MAX_EPOCHS),
            ("decision_k", 1, 64),
            ("max_slices_per_study", 1, 4096),
        ):
            value = getattr(self, name)
            if type(value) is not int or not low <= value <= high:
                raise ValueError(f"{name} must be an integer from {low} to {high}, not {value!r}")
        bounds: tuple[tuple[str, float, float], ...] = (
            ("learning_rate", 0.0, 10.0),
            ("weight_decay", 0.0, 1.0),
            ("min_delta", 0.0, 1.0),
            ("validation_fraction", 0.0, 0.5),
            ("test_fraction", 0.0, 0.5),
            ("synthetic_lesions", 0.0, 1.0),
        )
        for name, lowest, highest in bounds:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or not lowest <= value <= highest:
                raise ValueError(f"{name} must be a number from {lowest} to {highest}, not {value!r}")
        if self.learning_rate <= 0 or self.validation_fraction <= 0:
            raise ValueError("learning_rate and validation_fraction must be positive")

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any] | None = None, base: TrainingParams | None = None
    ) -> TrainingParams:
        """Parameters from JSON-like values (dotted keys set builder keywords: ``architecture_params.width``).

        Raises
        ------
        ValueError
            If a name is unknown or a value out of range.
        """
        merged = (base or cls()).to_dict()
        for key, value in (values or {}).items():
            head, _, tail = str(key).partition(".")
            if tail and head in ("architecture_params", "preprocessing"):
                merged[head] = {**merged[head], tail: value}
            elif head in merged and not tail:
                merged[head] = dict(value) if isinstance(merged[head], dict) else value
            else:
                raise ValueError(f"unknown training parameter {key!r}; known: {sorted(merged)}")
        merged["input_size"] = tuple(int(v) for v in merged["input_size"])
        return cls(**merged)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (recorded in job records, metrics and the model's lineage)."""
        values = dataclasses.asdict(self)
        values["input_size"] = list(self.input_size)
        return json.loads(json.dumps(values))


def trial_ids(count: int) -> list[str]:
    """``trial-00``, ``trial-01``... for ``count`` trials."""
    return [f"trial-{n:02d}" for n in range(count)]


def _check_count(count: int) -> None:
    if not 1 <= count <= TRAINING_MAX_TRIALS:
        raise ValueError(f"a sweep has 1 to {TRAINING_MAX_TRIALS} trials, not {count}")


def grid(base: TrainingParams, space: Mapping[str, Sequence[Any]]) -> list[TrainingParams]:
    """Every combination of ``space``'s values over ``base`` (a grid search).

    Parameters
    ----------
    base : TrainingParams
    space : mapping
        Parameter name (dotted for builder keywords) -> the values to try.

    Returns
    -------
    list of TrainingParams

    Raises
    ------
    ValueError
        If a value is invalid or the grid is larger than :data:`~imaging_lib.limits.TRAINING_MAX_TRIALS`.
    """
    names = list(space)
    _check_count(math.prod(len(space[name]) for name in names) if names else 1)
    combinations = itertools.product(*(list(space[name]) for name in names))
    return [TrainingParams.from_mapping(dict(zip(names, values, strict=True)), base) for values in combinations]


def _draw(spec: Any, rng: np.random.Generator) -> Any:
    if isinstance(spec, Mapping):
        low, high = spec["low"], spec["high"]
        if spec.get("log"):
            return float(math.exp(rng.uniform(math.log(low), math.log(high))))
        if isinstance(low, int) and isinstance(high, int):
            return int(rng.integers(low, high + 1))
        return float(rng.uniform(low, high))
    values = list(spec)
    return values[int(rng.integers(len(values)))]


def random_search(base: TrainingParams, space: Mapping[str, Any], count: int, seed: int = 0) -> list[TrainingParams]:
    """``count`` trials with values drawn from ``space`` (a random search).

    Parameters
    ----------
    base : TrainingParams
    space : mapping
        Name -> a list of choices, or ``{"low", "high", "log": bool}`` (integers when both
        bounds are integers; log-uniform when ``log``).
    count : int
    seed : int

    Returns
    -------
    list of TrainingParams
    """
    _check_count(count)
    rng = np.random.default_rng(seed)
    return [
        TrainingParams.from_mapping({name: _draw(spec, rng) for name, spec in space.items()}, base)
        for _ in range(count)
    ]
