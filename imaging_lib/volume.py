"""The one volume type of the library: voxels, their place in the world, and metadata.

A :class:`Volume` follows nibabel's conventions: ``array[i, j, k]`` is the voxel at
index ``(i, j, k)`` and ``affine @ (i, j, k, 1)`` is the centre of that voxel in RAS+
millimetres (+x towards the patient's Right, +y Anterior, +z Superior). DICOM's patient
coordinates are LPS+; the DICOM reader converts them. Readers, the store, the models
and the widgets all exchange this one type.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import nibabel as nib
import numpy as np
from nibabel import orientations

from .errors import InvalidGeometry

__all__ = ["Volume", "check_affine"]


def check_affine(affine: Any, source: str = "<affine>") -> np.ndarray:
    """Return ``affine`` as a float64 4x4 array, or raise if it has no meaning.

    Parameters
    ----------
    affine : array_like
        Candidate 4x4 voxel-to-world matrix.
    source : str
        Name of what the affine came from, used in the error message.

    Returns
    -------
    numpy.ndarray
        The affine, shape (4, 4), dtype float64.

    Raises
    ------
    InvalidGeometry
        If the shape is not 4x4, a value is not finite, the bottom row is not
        ``[0, 0, 0, 1]`` or the 3x3 part is singular.
    """
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4):
        raise InvalidGeometry(source, f"affine must be 4x4, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InvalidGeometry(source, "affine contains NaN or infinite values")
    if not np.allclose(a[3], [0, 0, 0, 1]):
        raise InvalidGeometry(source, f"affine bottom row is {a[3].tolist()}, not [0, 0, 0, 1]")
    linear = a[:3, :3]
    scale = np.abs(linear).max()
    if scale == 0 or abs(np.linalg.det(linear / scale)) < 1e-9:
        raise InvalidGeometry(source, "affine is singular (voxel axes are degenerate)")
    return a


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D (or 4D) image with its voxel-to-world geometry.

    Parameters
    ----------
    array : numpy.ndarray
        Voxels indexed ``[i, j, k]`` (and optionally a fourth, non-spatial axis).
    affine : array_like
        4x4 matrix mapping voxel indices to RAS+ millimetres.
    metadata : dict
        Free-form facts about the image: ``modality``, ``series_description``,
        ``study_uid``, ``series_uid``, ``warnings`` (a list of strings), ...

    Raises
    ------
    InvalidGeometry
        If the affine is not finite, not 4x4 or singular, or the array has fewer than
        two or more than four dimensions.
    """

    array: np.ndarray
    affine: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        source = str(self.metadata.get("source", "<volume>"))
        array = np.asarray(self.array)
        if array.ndim == 2:
            array = array[:, :, np.newaxis]
        if array.ndim not in (3, 4):
            raise InvalidGeometry(source, f"a volume needs 3 or 4 dimensions, got shape {array.shape}")
        object.__setattr__(self, "array", array)
        object.__setattr__(self, "affine", check_affine(self.affine, source))
        object.__setattr__(self, "metadata", dict(self.metadata))

    # ------------------------------------------------------------------ geometry
    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the voxel array."""
        return self.array.shape

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in millimetres along i, j and k (the affine's column norms)."""
        i, j, k = (float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))
        return i, j, k

    @property
    def orientation(self) -> tuple[str, str, str]:
        """Anatomical direction each voxel axis increases towards, e.g. ``('L', 'P', 'S')``."""
        return orientations.aff2axcodes(self.affine)

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres, from the affine's determinant."""
        return abs(float(np.linalg.det(self.affine[:3, :3]))) / 1000.0

    def voxel_to_world(self, ijk: Any) -> np.ndarray:
        """Map voxel indices (shape ``(3,)`` or ``(n, 3)``) to RAS+ millimetres."""
        points = np.asarray(ijk, dtype=np.float64)
        return points @ self.affine[:3, :3].T + self.affine[:3, 3]

    def world_to_voxel(self, xyz: Any) -> np.ndarray:
        """Map RAS+ millimetres (shape ``(3,)`` or ``(n, 3)``) to continuous voxel indices."""
        inverse = np.linalg.inv(self.affine)
        points = np.asarray(xyz, dtype=np.float64)
        return points @ inverse[:3, :3].T + inverse[:3, 3]

    def contains(self, ijk: Any) -> bool:
        """Whether the rounded voxel index lies inside the array."""
        index = np.rint(np.asarray(ijk, dtype=np.float64)).astype(int)
        return bool(np.all(index >= 0) and np.all(index < np.asarray(self.shape[:3])))

    # ------------------------------------------------------------------ views
    def slice(self, index: int, axis: int = 2) -> np.ndarray:
        """Return the 2D voxel plane ``index`` along ``axis`` (a view, not a copy).

        Raises
        ------
        IndexError
            If ``index`` is outside the volume along ``axis``.
        """
        if not -self.shape[axis] <= index < self.shape[axis]:
            raise IndexError(f"slice {index} is outside axis {axis} of length {self.shape[axis]}")
        return np.take(self.array, index, axis=axis)

    def as_ras(self) -> Volume:
        """Return the volume with voxel axes flipped and permuted to point R, A, S.

        No resampling happens: voxels are only reordered, and the affine is updated so
        that every voxel keeps its world position.
        """
        current = orientations.io_orientation(self.affine)
        target = orientations.axcodes2ornt(("R", "A", "S"))
        transform = orientations.ornt_transform(current, target)
        if np.array_equal(transform, [[0, 1], [1, 1], [2, 1]]):
            return self
        array = orientations.apply_orientation(self.array, transform)
        affine = self.affine @ orientations.inv_ornt_aff(transform, self.shape[:3])
        return replace(self, array=array, affine=affine)

    def with_array(self, array: np.ndarray, **metadata: Any) -> Volume:
        """Return a volume on the same geometry holding ``array`` (a mask, a heat map)."""
        if array.shape[:3] != self.shape[:3]:
            raise ValueError(f"array shape {array.shape} does not match volume shape {self.shape}")
        return Volume(array, self.affine, {**self.metadata, **metadata})

    # ------------------------------------------------------------------ nibabel
    def to_nifti(self) -> nib.Nifti1Image | nib.Nifti2Image:
        """Return a NIfTI image holding the same voxels and exactly the same affine.

        NIfTI-1 stores the affine in float32; when that would round it (DICOM geometry
        usually), NIfTI-2, which stores float64, is used instead. Papaya, nibabel, ITK
        and FSL read both.
        """
        exact_in_float32 = np.array_equal(self.affine.astype(np.float32).astype(np.float64), self.affine)
        image_class = nib.Nifti1Image if exact_in_float32 else nib.Nifti2Image
        image = image_class(self.array, self.affine)
        image.header.set_xyzt_units("mm", "sec")
        description = str(self.metadata.get("series_description", ""))[:79]
        image.header["descrip"] = description.encode("ascii", "replace")
        return image

    @classmethod
    def from_nifti(cls, image: nib.spatialimages.SpatialImage, **metadata: Any) -> Volume:
        """Build a volume from a nibabel image, keeping its affine exactly."""
        return cls(np.asanyarray(image.dataobj), image.affine, metadata)

    def __repr__(self) -> str:
        spacing = ", ".join(f"{s:.3g}" for s in self.spacing)
        modality = self.metadata.get("modality", "?")
        return (
            f"Volume(shape={self.shape}, dtype={self.array.dtype}, spacing=({spacing}) mm, "
            f"orientation={''.join(self.orientation)}, modality={modality})"
        )
