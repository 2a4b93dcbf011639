"""Label masks: checked against their study's geometry, hashed by their voxels, patched by voxel diffs.

A label mask is a ``uint8`` array on its study's voxel grid (0 = background; 1-255 =
labels). :func:`label_mask_array` refuses a mask of another shape or affine, or with
values that are not integers in 0-255, before anything is written. :func:`mask_sha256`
names a mask by its voxels, so the same mask is stored once however many versions use
it, and a reader can check what it read.

The viewer's drawing tools send only what changed: :func:`apply_voxel_diff` applies flat
voxel indices and their new values to a mask and returns the old values (the undo of the
diff); :func:`voxel_diff` computes the diff between two masks (Python patching the
browser). Flat indices are in NIfTI order by default (``order="F"``: ``i`` fastest, as
Papaya holds the voxels), or numpy's C order.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import numpy as np

from ..errors import InvalidLabel, MaskGeometryMismatch
from ..volume import Volume

__all__ = ["AFFINE_TOLERANCE_MM", "apply_voxel_diff", "label_mask_array", "mask_sha256", "voxel_diff"]

AFFINE_TOLERANCE_MM = 1e-3
"""Largest difference between a mask's affine and its study's, per matrix element."""

Order = Literal["F", "C"]


def _as_uint8(array: np.ndarray, source: str) -> np.ndarray:
    """``array`` as ``uint8`` if every value is an integer in 0-255, else :class:`MaskGeometryMismatch`."""
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if array.dtype.kind not in "iuf":
        raise MaskGeometryMismatch(source, f"mask values must be numbers, got dtype {array.dtype}")
    if array.size and array.dtype != np.uint8:
        low, high = float(array.min()), float(array.max())
        if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > 255:
            raise MaskGeometryMismatch(source, f"mask values must lie in 0-255, found {low:g} to {high:g}")
        if array.dtype.kind == "f" and not np.array_equal(array, np.rint(array)):
            raise MaskGeometryMismatch(source, "mask values must be whole numbers (0 = background, 1-255 = labels)")
    return np.ascontiguousarray(array, dtype=np.uint8)


def label_mask_array(mask: Volume | np.ndarray, study_volume: Volume, source: str = "<mask>") -> np.ndarray:
    """Check a mask against its study's volume and return its voxels as a C-ordered ``uint8`` array.

    Parameters
    ----------
    mask : Volume or numpy.ndarray
        A volume must have the study's shape and affine (within :data:`AFFINE_TOLERANCE_MM`);
        an array, the study's shape (it is taken to lie on the study's grid).
    study_volume : Volume
        The study's volume, as stored.
    source : str
        What the mask is, for messages (a study UID, a file).

    Returns
    -------
    numpy.ndarray
        ``uint8``, the study's 3D shape.

    Raises
    ------
    MaskGeometryMismatch
        Another shape or affine, a fourth axis, or values that are not integers in 0-255.
    """
    expected = tuple(study_volume.shape[:3])
    array = np.asarray(mask.array if isinstance(mask, Volume) else mask)
    if array.shape != expected:
        raise MaskGeometryMismatch(source, f"mask shape {array.shape} differs from the study's {expected}")
    if isinstance(mask, Volume) and not np.allclose(mask.affine, study_volume.affine, atol=AFFINE_TOLERANCE_MM):
        raise MaskGeometryMismatch(
            source, "mask affine differs from the study's: the mask lies on another grid (resample it first)"
        )
    return _as_uint8(array, source)


def mask_sha256(array: np.ndarray) -> str:
    """SHA-256 of a mask's voxels as C-ordered ``uint8`` bytes (what :func:`label_mask_array` returns)."""
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.uint8).tobytes()).hexdigest()


def _voxel_index(indices: Any, shape: tuple[int, ...], order: Order, source: str) -> tuple[np.ndarray, ...]:
    """The voxels a diff names, checked (integers, in range, no repeats), as a tuple of index arrays."""
    if order not in ("F", "C"):
        raise ValueError(f"order must be 'F' (NIfTI, i fastest) or 'C' (numpy), not {order!r}")
    flat = np.asarray(indices)
    if flat.ndim != 1 or (flat.size and flat.dtype.kind not in "iu"):
        raise InvalidLabel(source, f"voxel indices must be a 1-D array of integers, got {flat.dtype} {flat.shape}")
    flat = flat.astype(np.int64, copy=False)
    size = int(np.prod(shape))
    if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= size):
        raise InvalidLabel(source, f"voxel indices must lie in [0, {size}), found {flat.min()} to {flat.max()}")
    if flat.size > 1 and np.unique(flat).size != flat.size:
        raise InvalidLabel(source, "voxel indices repeat: a diff names each changed voxel once")
    return np.unravel_index(flat, shape, order=order)


def apply_voxel_diff(
    mask: np.ndarray, indices: Any, values: Any, *, order: Order = "F", source: str = "<mask>"
) -> np.ndarray:
    """Set the voxels of a diff in ``mask`` (in place) and return their previous values.

    Applying the returned values at the same indices undoes the diff, bit for bit. A
    refused diff leaves ``mask`` unchanged.

    Parameters
    ----------
    mask : numpy.ndarray
        A writable ``uint8`` 3D mask (any memory layout).
    indices : array_like of int
        Flat indices of the changed voxels, each at most once.
    values : array_like of int or int
        Their new values (0-255), one per index or one for all.
    order : {"F", "C"}
        How indices are flattened: ``"F"`` (NIfTI and Papaya: ``i`` fastest) or ``"C"`` (numpy).
    source : str
        Named in errors.

    Returns
    -------
    numpy.ndarray
        ``uint8`` previous values, in the order of ``indices``.

    Raises
    ------
    InvalidLabel
        Indices that are not integers, out of range or repeated; values that are not
        integers in 0-255 or do not match the indices in number; a mask that is not ``uint8``.
    """
    if mask.dtype != np.uint8 or mask.ndim != 3:
        raise InvalidLabel(source, f"a label mask is a 3D uint8 array, got {mask.dtype} {mask.shape}")
    where = _voxel_index(indices, mask.shape, order, source)
    count = where[0].size
    new = np.asarray(values)
    if new.ndim == 0:
        new = np.full(count, new)
    if new.shape != (count,):
        raise InvalidLabel(source, f"{count} voxel indices but {new.size} values")
    try:
        new = _as_uint8(new, source)
    except MaskGeometryMismatch as exc:
        raise InvalidLabel(source, exc.reason) from None
    previous = mask[where]  # fancy indexing copies
    mask[where] = new
    return previous


def voxel_diff(before: np.ndarray, after: np.ndarray, *, order: Order = "F") -> tuple[np.ndarray, np.ndarray]:
    """The diff that turns mask ``before`` into ``after``: flat indices (``int64``) and new values (``uint8``).

    Raises
    ------
    ValueError
        If the masks differ in shape, or ``order`` is unknown.
    """
    if before.shape != after.shape:
        raise ValueError(f"masks differ in shape: {before.shape} and {after.shape}")
    if order not in ("F", "C"):
        raise ValueError(f"order must be 'F' (NIfTI, i fastest) or 'C' (numpy), not {order!r}")
    changed = np.flatnonzero((before != after).ravel(order=order))
    return changed.astype(np.int64), after.ravel(order=order)[changed].astype(np.uint8)
