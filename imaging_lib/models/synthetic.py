"""Synthetic lesions in whole volumes: studies whose ground truth is known, made from real scans.

:func:`insert_study_lesion` puts one focal lesion into a few consecutive slices of a real
volume with :func:`imaging_lib.models.training.insert_lesion` (the same blobs the demo model
was trained on): one centre inside the anatomy, the same shape on every slice, drawn in
the volume's own intensity window and written back in its intensity units. Voxels outside
the lesion keep their exact values. It returns the lesion mask, so a study made from it
has a known answer: the demo's lesion studies (:mod:`imaging_lib.demo_data`), the
validation studies that choose the demo model's threshold, and test sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..science.preprocess import apply_window, percentile_window

__all__ = ["StudyLesion", "insert_study_lesion"]


@dataclass(frozen=True)
class StudyLesion:
    """A volume with one inserted lesion.

    Attributes
    ----------
    array : numpy.ndarray
        The volume's voxels with the lesion, in the input's dtype.
    mask : numpy.ndarray
        ``uint8`` lesion mask, 1 inside the lesion.
    slices : tuple of int
        The slices (along the slice axis) the lesion spans.
    """

    array: np.ndarray
    mask: np.ndarray
    slices: tuple[int, ...]


def _write_back(
    original: np.ndarray, windowed: np.ndarray, lesioned: np.ndarray, low: float, width: float
) -> np.ndarray:
    changed = np.abs(lesioned - windowed) > 1e-6
    raw = np.where(changed, low + lesioned.astype(np.float64) * width, original)
    if np.issubdtype(original.dtype, np.integer):
        info = np.iinfo(original.dtype)
        raw = np.clip(np.rint(raw), info.min, info.max)
    return raw.astype(original.dtype)


def insert_study_lesion(
    array: np.ndarray, rng: np.random.Generator, *, slice_axis: int = 2, depth: int | None = None
) -> StudyLesion:
    """Insert one lesion spanning ``depth`` consecutive slices of a 3D volume.

    Parameters
    ----------
    array : numpy.ndarray
        3D voxels of a real scan (any numeric dtype).
    rng : numpy.random.Generator
        Every random choice (slices, centre, shape, contrast) comes from it.
    slice_axis : int
        The axis slices are taken along (the models' ``slice_axis``).
    depth : int, optional
        Slices the lesion spans; default an eighth of the slices, at least 3 (all of them
        in a thinner volume).

    Returns
    -------
    StudyLesion

    Raises
    ------
    ValueError
        If the volume is not 3D or no slice has enough anatomy for a lesion.
    """
    from .training import anatomy_mask, insert_lesion

    if array.ndim != 3:
        raise ValueError(f"a study lesion needs a 3D volume, got shape {array.shape}")
    stack = np.moveaxis(array, slice_axis, 0)
    count = stack.shape[0]
    span = min(count, depth if depth is not None else max(3, round(count / 8)))
    window = percentile_window(stack, 1.0, 99.0)
    windowed = [apply_window(plane, window) for plane in stack]
    anatomy = [anatomy_mask(plane) for plane in windowed]
    starts = [s for s in range(count - span + 1) if np.logical_and.reduce(anatomy[s : s + span]).any()]
    if not starts:
        raise ValueError("no run of slices has enough anatomy to hold a lesion")
    middle = [s for s in starts if count / 4 <= s + span / 2 <= 3 * count / 4] or starts
    start = int(middle[rng.integers(len(middle))])
    shared = np.logical_and.reduce(anatomy[start : start + span])
    centre = np.argwhere(shared)[rng.integers(int(shared.sum()))]
    only_centre = np.zeros_like(shared)
    only_centre[tuple(centre)] = True
    seed = int(rng.integers(2**32))
    out = stack.copy()
    mask = np.zeros(stack.shape, np.uint8)
    for index in range(start, start + span):
        lesioned, lesion = insert_lesion(windowed[index], only_centre, np.random.default_rng(seed))
        out[index] = _write_back(stack[index], windowed[index], lesioned, window.low, window.width)
        mask[index] = lesion
    return StudyLesion(
        np.moveaxis(out, 0, slice_axis), np.moveaxis(mask, 0, slice_axis), tuple(range(start, start + span))
    )
