"""Images of the segmentation tests: phantoms of known truth and papaya's real T1 image."""

from __future__ import annotations

import pytest

from imaging_lib import Volume, sample_data
from imaging_lib.io.nifti import read_nifti
from imaging_lib.phantoms import demo_phantom


@pytest.fixture(scope="module")
def soft_phantom():
    """Partial-volume edges and noise (sigma 8 against contrasts of 100 and 180)."""
    return demo_phantom()


@pytest.fixture(scope="module")
def hard_phantom():
    """Hard edges (voxel centre inside or not) and the same noise."""
    return demo_phantom(supersample=1)


@pytest.fixture(scope="module")
def sample_image() -> Volume:
    return read_nifti(sample_data.papaya_nifti("sample_image.nii.gz"))
