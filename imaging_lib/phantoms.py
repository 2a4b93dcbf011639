"""Synthetic volumes whose truth is known: ellipsoids drawn on any voxel geometry.

Segmentation accuracy can only be measured against a known answer, so this module
draws ellipsoids (spheres included) of exact world size and position into a volume of
any shape and affine, including anisotropic and oblique (non-diagonal) ones, with
optional partial-volume edges and Gaussian noise. Tests, benchmarks and demos use it;
real patient data never needs it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from .volume import Volume

__all__ = ["Ellipsoid", "Phantom", "demo_phantom", "draw_phantom", "oblique_affine"]


@dataclass(frozen=True)
class Ellipsoid:
    """A solid ellipsoid in world (RAS+ millimetre) coordinates.

    Parameters
    ----------
    centre_mm : tuple of float
        Centre in millimetres.
    semi_axes_mm : tuple of float
        Semi-axis lengths in millimetres, along the columns of ``rotation``.
    intensity : float
        Value of voxels fully inside.
    rotation : tuple of tuple of float
        3x3 rotation whose columns are the ellipsoid's axes in world space.
    """

    centre_mm: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float]
    intensity: float
    rotation: tuple[tuple[float, ...], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))

    @classmethod
    def sphere(cls, centre_mm: Sequence[float], radius_mm: float, intensity: float) -> Ellipsoid:
        """Return a sphere of ``radius_mm`` around ``centre_mm``."""
        x, y, z = (float(v) for v in centre_mm)
        return cls((x, y, z), (float(radius_mm),) * 3, float(intensity))

    @property
    def volume_ml(self) -> float:
        """Analytic volume, 4/3·π·a·b·c, in millilitres."""
        a, b, c = self.semi_axes_mm
        return 4.0 / 3.0 * math.pi * a * b * c / 1000.0

    def inside(self, points_mm: np.ndarray) -> np.ndarray:
        """Whether each point (array of shape ``(..., 3)``) lies inside the ellipsoid."""
        local = (np.asarray(points_mm, dtype=np.float64) - self.centre_mm) @ np.asarray(self.rotation)
        return np.sum((local / np.asarray(self.semi_axes_mm)) ** 2, axis=-1) <= 1.0

    def world_half_extent(self) -> np.ndarray:
        """Half-size of the axis-aligned world box around the ellipsoid, in millimetres."""
        axes = np.asarray(self.rotation) * np.asarray(self.semi_axes_mm)
        return np.sqrt(np.sum(axes**2, axis=1))


@dataclass(frozen=True)
class Phantom:
    """A synthetic volume and the truth it was drawn from.

    Parameters
    ----------
    volume : Volume
        The image (float32), noise included.
    labels : Volume
        uint8 label image on the same geometry: voxel centres inside ellipsoid ``n``
        (counting from 1, later ellipsoids painted over earlier ones) hold ``n``.
    ellipsoids : tuple of Ellipsoid
        What was drawn, in order.
    """

    volume: Volume
    labels: Volume
    ellipsoids: tuple[Ellipsoid, ...] = field(default_factory=tuple)

    def seed_ijk(self, index: int) -> tuple[int, int, int]:
        """Voxel index nearest to the centre of ellipsoid ``index`` (counting from 0)."""
        ijk = self.volume.world_to_voxel(self.ellipsoids[index].centre_mm)
        i, j, k = (int(v) for v in np.rint(ijk))
        return i, j, k

    def truth(self, index: int) -> dict[str, object]:
        """Analytic volume (mL) and centroid (mm and continuous voxel index) of one ellipsoid."""
        shape = self.ellipsoids[index]
        return {
            "volume_ml": shape.volume_ml,
            "centroid_mm": list(shape.centre_mm),
            "centroid_ijk": self.volume.world_to_voxel(shape.centre_mm).tolist(),
        }


def oblique_affine(
    shape: Sequence[int],
    spacing_mm: Sequence[float] = (0.9, 1.2, 2.0),
    angles_deg: Sequence[float] = (20.0, -15.0, 10.0),
    centre_mm: Sequence[float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """Return a voxel-to-world affine with the given spacing, rotated obliquely.

    Parameters
    ----------
    shape : sequence of int
        Array shape; the centre voxel of that shape lands on ``centre_mm``.
    spacing_mm : sequence of float
        Voxel size along i, j and k.
    angles_deg : sequence of float
        Extrinsic x, y, z rotation angles in degrees applied to the voxel axes.
    centre_mm : sequence of float
        World position of the volume's centre.

    Returns
    -------
    numpy.ndarray
        4x4 affine whose 3x3 part is ``R @ diag(spacing)``.
    """
    linear = Rotation.from_euler("xyz", angles_deg, degrees=True).as_matrix() @ np.diag(spacing_mm)
    centre_voxel = (np.asarray(shape[:3], dtype=np.float64) - 1.0) / 2.0
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = np.asarray(centre_mm, dtype=np.float64) - linear @ centre_voxel
    return affine


def _voxel_box(shape: tuple[int, ...], affine: np.ndarray, ellipsoid: Ellipsoid) -> tuple[slice, ...]:
    """Voxel index box (clipped to the array) enclosing an ellipsoid, with one voxel margin."""
    half = ellipsoid.world_half_extent()
    signs = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1], indexing="ij")).reshape(3, -1).T
    corners = np.asarray(ellipsoid.centre_mm) + signs * half
    inverse = np.linalg.inv(affine)
    ijk = corners @ inverse[:3, :3].T + inverse[:3, 3]
    low = np.maximum(np.floor(ijk.min(axis=0)).astype(int) - 1, 0)
    high = np.minimum(np.ceil(ijk.max(axis=0)).astype(int) + 2, shape[:3])
    return tuple(slice(int(lo), int(hi)) for lo, hi in zip(low, high))


def _inside_fraction(affine: np.ndarray, box: tuple[slice, ...], ellipsoid: Ellipsoid, supersample: int) -> np.ndarray:
    """Fraction of each voxel of ``box`` inside the ellipsoid, from supersample³ points."""
    grid = np.stack(np.meshgrid(*[np.arange(s.start, s.stop) for s in box], indexing="ij"), axis=-1)
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    fraction = np.zeros(grid.shape[:3], dtype=np.float64)
    for di in offsets:
        for dj in offsets:
            for dk in offsets:
                points = (grid + (di, dj, dk)) @ affine[:3, :3].T + affine[:3, 3]
                fraction += ellipsoid.inside(points)
    return fraction / supersample**3


def draw_phantom(
    shape: Sequence[int],
    affine: np.ndarray,
    ellipsoids: Sequence[Ellipsoid],
    *,
    background: float = 0.0,
    noise_sigma: float = 0.0,
    supersample: int = 1,
    random_state: int = 0,
) -> Phantom:
    """Draw ellipsoids into a volume of the given shape and geometry.

    Parameters
    ----------
    shape : sequence of int
        Array shape (3D).
    affine : numpy.ndarray
        4x4 voxel-to-world affine; any non-singular one, oblique included.
    ellipsoids : sequence of Ellipsoid
        Painted in order: later ones cover earlier ones where they overlap.
    background : float
        Value outside every ellipsoid.
    noise_sigma : float
        Standard deviation of the Gaussian noise added to every voxel.
    supersample : int
        Points per voxel edge used to compute each voxel's inside fraction. ``1`` gives
        hard edges (voxel centre inside or not); larger values give partial-volume
        edges whose value is proportional to the covered fraction.
    random_state : int
        Seed of the noise generator, so a phantom is reproducible.

    Returns
    -------
    Phantom
        The image, the truth label image and the ellipsoids.
    """
    shape = tuple(int(s) for s in shape[:3])
    image = np.full(shape, background, dtype=np.float64)
    labels = np.zeros(shape, dtype=np.uint8)
    for number, ellipsoid in enumerate(ellipsoids, start=1):
        box = _voxel_box(shape, affine, ellipsoid)
        fraction = _inside_fraction(affine, box, ellipsoid, supersample)
        image[box] = image[box] * (1.0 - fraction) + ellipsoid.intensity * fraction
        centres = _inside_fraction(affine, box, ellipsoid, 1) > 0
        labels[box][centres] = number
    if noise_sigma > 0:
        image += np.random.default_rng(random_state).normal(0.0, noise_sigma, shape)
    metadata = {"source": "phantom", "modality": "OT", "series_description": "synthetic ellipsoid phantom"}
    volume = Volume(image.astype(np.float32), affine, metadata)
    return Phantom(volume, volume.with_array(labels, series_description="phantom truth labels"), tuple(ellipsoids))


def demo_phantom(
    shape: Sequence[int] = (96, 96, 48),
    *,
    noise_sigma: float = 8.0,
    supersample: int = 3,
    random_state: int = 0,
) -> Phantom:
    """Return the standard phantom: a sphere and a tilted ellipsoid on an oblique grid.

    The grid has anisotropic voxels (0.9 x 1.2 x 2.0 mm) rotated 20°, -15° and 10°
    about x, y and z. Ellipsoid 0 is a sphere of radius 14 mm (intensity 200) and
    ellipsoid 1 a tilted 18 x 11 x 9 mm ellipsoid (intensity 120), on a background of
    20 with Gaussian noise.

    Parameters
    ----------
    shape : sequence of int
        Array shape; the objects sit in the middle, so keep it at least the default.
    noise_sigma : float
        Noise standard deviation.
    supersample : int
        Partial-volume sampling (see :func:`draw_phantom`).
    random_state : int
        Noise seed.

    Returns
    -------
    Phantom
    """
    affine = oblique_affine(shape)
    tilt = Rotation.from_euler("zyx", (35.0, 20.0, -25.0), degrees=True).as_matrix()
    ellipsoids = (
        Ellipsoid.sphere((-22.0, 8.0, 4.0), 14.0, 200.0),
        Ellipsoid((20.0, -6.0, -3.0), (18.0, 11.0, 9.0), 120.0, tuple(map(tuple, tilt))),
    )
    return draw_phantom(
        shape,
        affine,
        ellipsoids,
        background=20.0,
        noise_sigma=noise_sigma,
        supersample=supersample,
        random_state=random_state,
    )
