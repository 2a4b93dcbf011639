"""LIME explanations of a slice, exact to the ``lime`` package and as fast as the model allows.

:func:`explain_slice` runs ``lime``'s own ``LimeImageExplainer.explain_instance`` (its
segmentation call, mean-colour "fudged" image, cosine distances, kernel and
``LimeBase`` ridge fit with feature selection) and replaces only the slow part,
``data_labels``: lime builds each perturbed image in a Python loop (a deep copy and one
full pass per switched-off segment) and calls the classifier in batches of 10. Here the
same random draws build the perturbations one model batch at a time (the batch size
its spec found fastest), vectorised: each sample's keep-row is indexed with the segment
map repeated per channel (``np.take(..., axis=1)``) and ``torch.where`` picks image or
fudged values. When torch's intra-op threads leave a core idle (one thread per Dask
worker), a second thread builds batch n + 1 while the model runs batch n, so building
costs no wall time; when torch already uses every core the two would only contend, and
the batches run one after the other. Same image, segmentation, ``random_state`` and
``num_samples`` give the same sampled matrix, the same probabilities and the same
weights as ``lime_image.LimeImageExplainer(random_state=...).explain_instance``.

The result carries per-segment weights, a heat map on the slice's pixel grid and,
through :meth:`Explanation.to_volume`, a heat map on the study's geometry for the
viewer's overlay.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import InvalidInput
from ..models import LoadedModel
from ..store.records import provenance
from ..volume import Volume
from .inference import predict_probabilities, prepare_slices, resolve_model
from .preprocess import resize_labels

__all__ = ["SEGMENTATIONS", "Explanation", "explain_slice", "perturbed_predictions"]

#: Default parameters per segmentation; ``quickshift`` is lime's own default.
SEGMENTATIONS: dict[str, dict[str, Any]] = {
    "quickshift": {"kernel_size": 4, "max_dist": 200, "ratio": 0.2},
    "slic": {"n_segments": 50, "compactness": 10.0, "start_label": 0},
}


def _lime_image() -> Any:
    from lime import lime_image  # its tqdm-drawing data_labels is replaced by _fast_explainer's

    return lime_image


def _spare_core() -> bool:
    """Return whether torch's intra-op threads leave a core of this process idle."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return torch.get_num_threads() < cores


def _overlapped(
    starts: Sequence[int],
    build: Callable[[int, torch.Tensor], np.ndarray],
    classify: Callable[[np.ndarray], np.ndarray],
    buffers: Sequence[torch.Tensor],
) -> list[np.ndarray]:
    """Classify batch ``n`` while a second thread builds batch ``n + 1``.

    Both threads spend their time in numpy/torch kernels that release the GIL, so on a
    spare core the building costs no wall time. Batches alternate between the two buffers.

    Parameters
    ----------
    starts : sequence of int
        First row of every batch, in order (at least one).
    build : callable
        ``build(start, buffer)`` writes the batch starting at ``start`` into ``buffer`` and
        returns it as images.
    classify : callable
        Maps a batch of images to its probabilities (a new array).
    buffers : sequence of torch.Tensor
        Two buffers, each large enough for one batch.

    Returns
    -------
    list of numpy.ndarray
        The probabilities of every batch, in the order of ``starts``.
    """
    outputs = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lime-perturbations") as builder:
        pending = builder.submit(build, starts[0], buffers[0])
        for n in range(len(starts)):
            images = pending.result()
            if n + 1 < len(starts):
                pending = builder.submit(build, starts[n + 1], buffers[(n + 1) % 2])
            outputs.append(classify(images))
    return outputs


def perturbed_predictions(
    image: np.ndarray,
    fudged_image: np.ndarray,
    segments: np.ndarray,
    data: np.ndarray,
    classifier_fn: Callable[[np.ndarray], np.ndarray],
    batch_size: int,
    *,
    overlap: bool | None = None,
) -> np.ndarray:
    """Classify every perturbation of ``image`` that the rows of ``data`` describe.

    Row ``r`` keeps the pixels of segment ``z`` where ``data[r, z] == 1`` and shows
    ``fudged_image`` where it is 0, exactly as lime's ``data_labels`` does (a label
    outside the columns of ``data`` is always kept, as in lime). The images are built
    one classifier batch at a time into a reused buffer (still in cache when the model
    reads it, and no page faults).

    Parameters
    ----------
    image, fudged_image : numpy.ndarray
        ``(h, w, c)`` images of one dtype.
    segments : numpy.ndarray
        ``(h, w)`` non-negative integer segment labels.
    data : numpy.ndarray
        ``(num_samples, n_features)`` 0/1 matrix, at least one row.
    classifier_fn : callable
        Maps ``(n, h, w, c)`` images to ``(n, classes)`` probabilities.
    batch_size : int
        Images per classifier call (and per perturbation batch).
    overlap : bool, optional
        Build the next batch in a second thread while the classifier runs (default: when
        torch's intra-op threads leave a core idle, e.g. one thread in a Dask worker;
        with every core in torch's pool the two threads would only contend). Either way
        the probabilities are the same.

    Returns
    -------
    numpy.ndarray
        ``(num_samples, classes)`` probabilities, in the order of ``data``.
    """
    labels = np.asarray(segments).ravel()
    table = np.ones((len(data), int(labels.max()) + 1), dtype=bool)
    columns = min(table.shape[1], data.shape[1])
    table[:, :columns] = data[:, :columns] == 1
    # one keep flag per pixel and channel: torch.where then runs on contiguous rows without
    # broadcasting, and picks the same values as lime's masked assignment
    channel_labels = np.repeat(labels, image.size // labels.size)
    flat_image = torch.from_numpy(np.ascontiguousarray(image).reshape(1, -1))
    flat_fudged = torch.from_numpy(np.ascontiguousarray(fudged_image).reshape(1, -1))
    step = max(1, int(batch_size))
    overlap = _spare_core() if overlap is None else overlap
    rows = min(step, len(data))
    buffers = [torch.empty((rows, image.size), dtype=flat_image.dtype) for _ in range(2 if overlap else 1)]

    def build(start: int, buffer: torch.Tensor) -> np.ndarray:
        keep = torch.from_numpy(np.take(table[start : start + step], channel_labels, axis=1))
        images = torch.where(keep, flat_image, flat_fudged, out=buffer[: len(keep)])
        return images.numpy().reshape(len(keep), *image.shape)

    def classify(images: np.ndarray) -> np.ndarray:
        return np.array(classifier_fn(images))

    starts = range(0, len(data), step)
    if overlap:
        return np.concatenate(_overlapped(starts, build, classify, buffers))
    return np.concatenate([classify(build(start, buffers[0])) for start in starts])


def _fast_explainer(kernel_width: float, feature_selection: str, random_state: Any):
    explainer: Any = _lime_image().LimeImageExplainer

    class FastLimeImageExplainer(explainer):
        """lime's image explainer with a vectorised ``data_labels`` (same draws, same result)."""

        def data_labels(self, image, fudged_image, segments, classifier_fn, num_samples, batch_size=10):
            n_features = np.unique(segments).shape[0]
            data = self.random_state.randint(0, 2, num_samples * n_features).reshape((num_samples, n_features))
            data[0, :] = 1
            labels = perturbed_predictions(image, fudged_image, segments, data, classifier_fn, batch_size)
            self.last_data, self.last_labels = data, labels  # explain_instance does not return them
            return data, labels

    return FastLimeImageExplainer(
        kernel_width=kernel_width, feature_selection=feature_selection, random_state=random_state
    )


def _segmentation_fn(segmentation: str, params: Mapping[str, Any] | None):
    if segmentation not in SEGMENTATIONS:
        raise ValueError(f"segmentation must be one of {sorted(SEGMENTATIONS)}, got {segmentation!r}")
    if segmentation == "quickshift" and not params:
        return None  # lime's own default (quickshift with kernel_size=4, max_dist=200, ratio=0.2)
    from lime.wrappers.scikit_image import SegmentationAlgorithm

    return SegmentationAlgorithm(segmentation, **{**SEGMENTATIONS[segmentation], **(params or {})})


@dataclass(frozen=True)
class Explanation:
    """A LIME explanation of one slice for one class.

    Attributes
    ----------
    slice_index, slice_axis : int
        Which slice of the volume was explained.
    label : str
        The class explained.
    weights : dict
        Segment id -> weight of the local linear model (positive: evidence for ``label``).
    segments : numpy.ndarray
        Segment ids on the slice's pixel grid (the volume's plane at ``slice_index``).
    heatmap : numpy.ndarray
        Float32 weight of each pixel's segment, on the slice's pixel grid.
    model_segments : numpy.ndarray
        The segmentation lime worked on, on the model's input grid.
    samples : numpy.ndarray
        LIME's sampled 0/1 matrix ``(num_samples, n_segments)``.
    sample_probabilities : numpy.ndarray
        Model probabilities of every sample ``(num_samples, classes)``.
    intercept, local_prediction, score : float
        The local model's intercept, its prediction for the unperturbed image and its R².
    probability : float
        The model's probability of ``label`` for the unperturbed slice.
    provenance : dict
        Model id and checksum, parameters, library version, time.
    """

    slice_index: int
    slice_axis: int
    label: str
    weights: dict[int, float]
    segments: np.ndarray
    heatmap: np.ndarray
    model_segments: np.ndarray
    samples: np.ndarray
    sample_probabilities: np.ndarray
    intercept: float
    local_prediction: float
    score: float
    probability: float
    provenance: dict[str, Any] = field(default_factory=dict)

    def top_segments(self, count: int = 5) -> list[int]:
        """Return the ``count`` segments with the largest (most positive) weights, best first."""
        return sorted(self.weights, key=lambda s: self.weights[s], reverse=True)[:count]

    def to_volume(self, volume: Volume) -> Volume:
        """Return the heat map on ``volume``'s geometry: zeros off the explained slice.

        Raises
        ------
        InvalidInput
            If the volume's plane at the explained slice does not match the heat map's shape.
        """
        shape = volume.shape[:3]
        plane = tuple(n for axis, n in enumerate(shape) if axis != self.slice_axis)
        if plane != self.heatmap.shape or not 0 <= self.slice_index < shape[self.slice_axis]:
            raise InvalidInput(
                str(volume.metadata.get("source", "<volume>")),
                f"the heat map ({self.heatmap.shape}, slice {self.slice_index} on axis {self.slice_axis}) "
                f"does not fit a volume of shape {shape}",
            )
        array = np.zeros(shape, np.float32)
        index: list[slice | int] = [slice(None)] * 3
        index[self.slice_axis] = self.slice_index
        array[tuple(index)] = self.heatmap
        return Volume(array, volume.affine, {**volume.metadata, "description": f"LIME heat map, {self.label}"})

    def to_record(self) -> dict[str, Any]:
        """Return a JSON-able summary: weights, top segments, local fit and provenance."""
        return {
            "slice_index": self.slice_index,
            "slice_axis": self.slice_axis,
            "label": self.label,
            "weights": {str(k): float(v) for k, v in self.weights.items()},
            "top_segments": self.top_segments(),
            "intercept": self.intercept,
            "local_prediction": self.local_prediction,
            "score": self.score,
            "probability": self.probability,
            "provenance": self.provenance,
        }


@dataclass(frozen=True)
class _LimeResult:
    segments: np.ndarray
    samples: np.ndarray
    sample_probabilities: np.ndarray
    weights: dict[int, float]
    intercept: float
    local_prediction: float
    score: float


def _explain_image(
    image: np.ndarray,
    model: LoadedModel,
    label_index: int,
    *,
    num_samples: int = 1000,
    random_state: int | np.random.RandomState | None = 0,
    segmentation: str = "quickshift",
    segmentation_params: Mapping[str, Any] | None = None,
    batch_size: int | None = None,
    kernel_width: float = 0.25,
    feature_selection: str = "auto",
) -> _LimeResult:
    """Explain one model-ready ``(h, w, c)`` image for class ``label_index`` with fast, exact LIME."""
    explainer = _fast_explainer(kernel_width, feature_selection, random_state)
    batch_size = batch_size or model.spec.batch_size

    def classifier_fn(images: np.ndarray) -> np.ndarray:  # perturbations of a checked image: no NaN scan
        return predict_probabilities(model, images, batch_size, check_input=False)

    result = explainer.explain_instance(
        image,
        classifier_fn,
        labels=(label_index,),
        top_labels=None,
        num_samples=num_samples,
        batch_size=batch_size,
        segmentation_fn=_segmentation_fn(segmentation, segmentation_params),
    )
    return _LimeResult(
        segments=result.segments,
        samples=explainer.last_data,
        sample_probabilities=explainer.last_labels,
        weights={int(k): float(v) for k, v in result.local_exp[label_index]},
        intercept=float(result.intercept[label_index]),
        local_prediction=float(np.ravel(result.local_pred)[0]),
        score=float(result.score),
    )


def explain_slice(
    volume: Volume,
    slice_index: int,
    model: LoadedModel | str,
    *,
    num_samples: int = 1000,
    random_state: int | np.random.RandomState | None = 0,
    segmentation: str = "quickshift",
    segmentation_params: Mapping[str, Any] | None = None,
    label: str | None = None,
    batch_size: int | None = None,
    kernel_width: float = 0.25,
    feature_selection: str = "auto",
) -> Explanation:
    """Explain the model's answer for one slice of a volume with LIME.

    Parameters
    ----------
    volume : Volume
        The study, 3D.
    slice_index : int
        The slice along the model's ``slice_axis`` (default 2), e.g. the prediction's
        ``most_suspicious_slice``.
    model : LoadedModel or str
        A loaded model or a model URI.
    num_samples : int
        Perturbed samples (lime's ``num_samples``).
    random_state : int, numpy.random.RandomState or None
        As lime's ``LimeImageExplainer(random_state=...)``: seeds the segmentation seed
        draw and the samples.
    segmentation : {"quickshift", "slic"}
        Superpixel algorithm; quickshift without ``segmentation_params`` is lime's default.
    segmentation_params : mapping, optional
        Overrides of :data:`SEGMENTATIONS` for the chosen algorithm.
    label : str, optional
        Class to explain (default: the model's positive class).
    batch_size : int, optional
        Images per forward pass (default: the model spec's).
    kernel_width : float
        lime's kernel width.
    feature_selection : str
        lime's feature selection (``"auto"``, ``"highest_weights"``, ``"none"``, ...).

    Returns
    -------
    Explanation

    Raises
    ------
    InvalidInput
        If the slice index is outside the volume, or the volume is not 3D or holds NaN/inf.
    ValueError
        If ``segmentation`` or ``label`` is unknown, or ``num_samples`` is below 2.
    """
    model = resolve_model(model)
    spec = model.spec
    axis = int(spec.preprocessing.get("slice_axis", 2))
    source = str(volume.metadata.get("source", "<volume>"))
    if volume.array.ndim != 3:
        raise InvalidInput(source, f"explanation needs a 3D volume, got shape {volume.shape}")
    if not 0 <= slice_index < volume.shape[axis]:
        raise InvalidInput(source, f"slice {slice_index} is outside axis {axis} of length {volume.shape[axis]}")
    if num_samples < 2:
        raise ValueError(f"num_samples must be at least 2, got {num_samples}")
    label = label or spec.positive_class
    if label not in spec.class_names:
        raise ValueError(f"label {label!r} is not one of the model's classes {list(spec.class_names)}")
    label_index = spec.class_names.index(label)
    # the whole volume sets the window, as in predict; only the explained slice is prepared
    image = prepare_slices(volume, model, indices=[slice_index])[0]
    lime_result = _explain_image(
        image,
        model,
        label_index,
        num_samples=num_samples,
        random_state=random_state,
        segmentation=segmentation,
        segmentation_params=segmentation_params,
        batch_size=batch_size,
        kernel_width=kernel_width,
        feature_selection=feature_selection,
    )
    height, width = (n for a, n in enumerate(volume.shape[:3]) if a != axis)
    segments = resize_labels(lime_result.segments, (height, width))
    lookup = np.zeros(int(lime_result.segments.max()) + 1, np.float32)
    for segment, weight in lime_result.weights.items():
        lookup[segment] = weight
    return Explanation(
        slice_index=int(slice_index),
        slice_axis=axis,
        label=label,
        weights=lime_result.weights,
        segments=segments,
        heatmap=lookup[segments],
        model_segments=lime_result.segments,
        samples=lime_result.samples,
        sample_probabilities=lime_result.sample_probabilities,
        intercept=lime_result.intercept,
        local_prediction=lime_result.local_prediction,
        score=lime_result.score,
        probability=float(lime_result.sample_probabilities[0, label_index]),
        provenance=provenance(
            {
                "num_samples": num_samples,
                "random_state": random_state if isinstance(random_state, (int, type(None))) else "RandomState",
                "segmentation": segmentation,
                "segmentation_params": {**SEGMENTATIONS[segmentation], **(segmentation_params or {})},
            },
            model_id=model.model_id,
            model_checksum=model.checksum,
        ),
    )
