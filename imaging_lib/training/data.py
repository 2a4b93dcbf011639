"""From a training manifest to model-ready slices with labels, split by patient, checked first.

The manifest (:meth:`imaging_lib.store.catalog.Catalog.training_set`) holds each reviewed
study's accepted labels. A slice's label comes from, in order of precedence:

1. its own slice label (``slice_labels``, along the labels' slice axis);
2. the study's reviewed mask: slices the mask touches are ``lesion``, the others ``no_lesion``
   (a reviewed mask is a complete annotation of the study);
3. a ``no_lesion`` study label: every slice is ``no_lesion``.

A ``lesion`` study without mask or slice labels has no slice labels: it takes part in the
study-level validation and test only. Slices are windowed and resized exactly as
:func:`imaging_lib.science.inference.prepare_slices` does for prediction, one window per
volume. :func:`check_training_set` refuses, with the reason, a manifest that cannot train
a model (no labels, one class, a label whose study is gone) before anything is loaded.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidTrainingSet, MissingRecord, UnreadableImage
from ..limits import TRAINING_MAX_INPUT_BYTES
from ..science.preprocess import model_input, window_for
from .params import TrainingParams
from .split import SPLITS, split_by_group

__all__ = ["UNLABELLED", "StudySlices", "TrainingData", "check_training_set", "load_training_data", "slice_targets"]

UNLABELLED = -1
SOURCE = "training set"
_CACHE: dict[tuple[str, str, str], TrainingData] = {}
_CACHE_LOCK = threading.Lock()


@dataclass(frozen=True)
class StudySlices:
    """One study's model-ready slices.

    Attributes
    ----------
    study_uid, split_group, split : str
    study_label : int
        1 for lesion, 0 for no lesion.
    images : numpy.ndarray
        ``(n, h, w)`` float32 in ``[0, 1]``: every slice for validation and test studies,
        the labelled ones (at most ``max_slices_per_study``) for training studies.
    targets : numpy.ndarray
        ``(n,)`` int64: 1 lesion, 0 no lesion, :data:`UNLABELLED` unknown.
    """

    study_uid: str
    split_group: str
    split: str
    study_label: int
    images: np.ndarray
    targets: np.ndarray


@dataclass
class TrainingData:
    """The slices of every split, and what the model card says about them."""

    manifest_sha256: str
    studies: dict[str, list[StudySlices]] = field(default_factory=dict)

    def split(self, name: str) -> list[StudySlices]:
        """The studies of one split."""
        return self.studies.get(name, [])

    def labelled(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(images, targets)`` of the labelled slices of a split, concatenated."""
        chosen = [(s.images[s.targets != UNLABELLED], s.targets[s.targets != UNLABELLED]) for s in self.split(name)]
        if not chosen:
            return np.empty((0, 1, 1), np.float32), np.empty(0, np.int64)
        return np.concatenate([c[0] for c in chosen]), np.concatenate([c[1] for c in chosen])

    def summary(self) -> dict[str, Any]:
        """Splits (study UIDs), study counts and labelled slice counts per split (for the record and card)."""
        out: dict[str, Any] = {"manifest_sha256": self.manifest_sha256, "splits": {}, "study_counts": {}}
        out["slice_counts"] = {}
        for name in SPLITS:
            studies = self.split(name)
            _, targets = self.labelled(name)
            out["splits"][name] = [s.study_uid for s in studies]
            out["study_counts"][name] = {
                "lesion": sum(s.study_label for s in studies),
                "no_lesion": sum(1 - s.study_label for s in studies),
            }
            out["slice_counts"][name] = {"lesion": int((targets == 1).sum()), "no_lesion": int((targets == 0).sum())}
        return out


def check_training_set(manifest: Mapping[str, Any]) -> None:
    """Refuse a manifest that cannot train a model, naming why.

    Raises
    ------
    InvalidTrainingSet
        No accepted labels; labels of one class only; or an accepted label whose study,
        volume or mask is missing (the manifest's ``skipped``).
    """
    skipped = manifest.get("skipped") or []
    if skipped:
        reasons = "; ".join(f"{item['study_uid']} ({item['version']}): {item['reason']}" for item in skipped[:5])
        raise InvalidTrainingSet(
            SOURCE, f"{len(skipped)} accepted label(s) cannot be used: {reasons}. Fix or revert them first"
        )
    counts = {label: int(n) for label, n in (manifest.get("class_counts") or {}).items() if n}
    if not manifest.get("entries"):
        raise InvalidTrainingSet(
            SOURCE,
            "no accepted labels: label studies in the study browser's review panel (`imaging-lab labels export`)",
        )
    if set(counts) != {"lesion", "no_lesion"}:
        raise InvalidTrainingSet(
            SOURCE,
            f"the accepted labels have one class only ({counts}): a classifier needs lesion and no_lesion studies",
        )


def slice_targets(entry: Mapping[str, Any], mask: np.ndarray | None, count: int, axis: int) -> np.ndarray:
    """Each slice's label (1, 0 or :data:`UNLABELLED`) along ``axis`` from a manifest entry and its mask.

    Raises
    ------
    InvalidTrainingSet
        If slice labels are along another axis than the model's, or name a slice outside the study.
    """
    targets = np.full(count, UNLABELLED, np.int64)
    if entry.get("study_label") == "no_lesion":
        targets[:] = 0
    if mask is not None:
        touched = np.moveaxis(mask, axis, 0).reshape(count, -1).any(axis=1)
        targets[:] = touched.astype(np.int64)
    slice_labels = entry.get("slice_labels") or {}
    if slice_labels and entry.get("slice_axis", axis) not in (None, axis):
        raise InvalidTrainingSet(
            entry["study_uid"], f"slice labels are along axis {entry.get('slice_axis')}, the model slices along {axis}"
        )
    for index, label in slice_labels.items():
        if not 0 <= int(index) < count:
            raise InvalidTrainingSet(entry["study_uid"], f"slice label {index} is outside the study's {count} slices")
        targets[int(index)] = 1 if label == "lesion" else 0
    return targets


def _training_rows(targets: np.ndarray, limit: int) -> np.ndarray:
    """The labelled slices a training study contributes: every lesion slice first, then evenly spaced others."""
    positives = np.flatnonzero(targets == 1)[:limit]
    negatives = np.flatnonzero(targets == 0)
    room = limit - len(positives)
    if len(negatives) > room:
        negatives = negatives[np.linspace(0, len(negatives) - 1, room).round().astype(int)] if room else negatives[:0]
    return np.sort(np.concatenate([positives, negatives]))


def _read(store: Any, key: str | None, study_uid: str, what: str) -> Any:
    try:
        return store.read_volume(key)
    except (MissingRecord, UnreadableImage, ValueError) as exc:
        raise InvalidTrainingSet(study_uid, f"its {what} {key} cannot be read: {exc}") from None


def _load_study(store: Any, entry: Mapping[str, Any], split: str, params: TrainingParams) -> StudySlices:
    study_uid = str(entry["study_uid"])
    axis = int(params.preprocessing.get("slice_axis", 2))
    volume = _read(store, entry.get("volume_key"), study_uid, "volume")
    if volume.array.ndim != 3:
        raise InvalidTrainingSet(study_uid, f"training needs 3D volumes, got shape {volume.array.shape}")
    mask = None
    if entry.get("mask_key"):
        mask = _read(store, entry["mask_key"], study_uid, "mask").array
        if mask.shape != volume.array.shape:
            raise InvalidTrainingSet(study_uid, f"its mask {mask.shape} and volume {volume.array.shape} differ")
    slices = np.moveaxis(volume.array, axis, 0)
    targets = slice_targets(entry, mask, len(slices), axis)
    rows = _training_rows(targets, params.max_slices_per_study) if split == "train" else np.arange(len(slices))
    window = window_for(slices, params.preprocessing, volume.metadata)
    images = np.stack([model_input(slices[i], window, params.input_size, study_uid)[..., 0] for i in rows])
    return StudySlices(
        study_uid,
        str(entry["split_group"]),
        split,
        int(entry.get("study_label") == "lesion"),
        images.astype(np.float32).reshape(len(rows), *params.input_size),
        targets[rows],
    )


def _check_size(entries: Sequence[Mapping[str, Any]], params: TrainingParams) -> None:
    axis = int(params.preprocessing.get("slice_axis", 2))
    slices = sum(int((entry.get("shape") or [0, 0, 0])[axis]) for entry in entries)
    needed = slices * params.input_size[0] * params.input_size[1] * 4
    if needed > TRAINING_MAX_INPUT_BYTES:
        raise InvalidTrainingSet(
            SOURCE, f"{slices} slices at {params.input_size} need {needed} bytes, over {TRAINING_MAX_INPUT_BYTES}"
        )


def _check_splits(data: TrainingData, params: TrainingParams) -> None:
    _, train = data.labelled("train")
    if not (train == 1).any() and not (params.synthetic_lesions > 0 and (train == 0).any()):
        raise InvalidTrainingSet(SOURCE, "the training split has no labelled lesion slice (masks or slice labels)")
    if not (train == 0).any():
        raise InvalidTrainingSet(SOURCE, "the training split has no slice labelled no_lesion")
    labels = {s.study_label for s in data.split("validation")}
    _, targets = data.labelled("validation")
    if labels != {0, 1} or set(np.unique(targets)) != {0, 1}:
        raise InvalidTrainingSet(
            SOURCE,
            "the validation split needs lesion and no_lesion studies with labelled slices of both kinds to choose "
            f"the study threshold; it has {len(data.split('validation'))} studies: label more patients",
        )


def load_training_data(store: Any, manifest: Mapping[str, Any], params: TrainingParams) -> TrainingData:
    """Check the manifest, split it by patient and load every study's slices (cached per process).

    Parameters
    ----------
    store : Store
    manifest : mapping
        :meth:`Catalog.training_set`.
    params : TrainingParams
        Split fractions and seed, slice axis, window, input size.

    Returns
    -------
    TrainingData

    Raises
    ------
    InvalidTrainingSet
        See :func:`check_training_set`; a volume or mask that cannot be read; a split
        without the classes it needs.
    """
    check_training_set(manifest)
    wanted = {k: v for k, v in params.to_dict().items() if k in _DATA_PARAMS}
    key = (store.url, str(manifest["manifest_sha256"]), repr(sorted(wanted.items())))
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return cached
    entries = list(manifest["entries"])
    _check_size(entries, params)
    splits = split_by_group(
        entries,
        validation_fraction=params.validation_fraction,
        test_fraction=params.test_fraction,
        seed=params.split_seed,
    )
    where = {uid: name for name, uids in splits.items() for uid in uids}
    data = TrainingData(str(manifest["manifest_sha256"]), {name: [] for name in SPLITS})
    for entry in entries:
        split = where[str(entry["study_uid"])]
        data.studies[split].append(_load_study(store, entry, split, params))
    _check_splits(data, params)
    with _CACHE_LOCK:
        _CACHE.clear()  # one training set per process at a time: a sweep's trials share it
        _CACHE[key] = data
    return data


_DATA_PARAMS = frozenset(
    {"input_size", "preprocessing", "validation_fraction", "test_fraction", "split_seed", "max_slices_per_study"}
)
