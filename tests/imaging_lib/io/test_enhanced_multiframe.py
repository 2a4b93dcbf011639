"""Enhanced multi-frame DICOM, built as highdicom's legacy conversion builds it from real series, against dcm2niix.

The files are :class:`highdicom.legacy.LegacyConvertedEnhancedCTImage` / ``...MRImage``
made from pydicom's CT_small (stepped into a short stack) and papaya's brain MR series;
the reference is Debian's ``dcm2niix`` run on the same file. Both volumes are brought
to the closest canonical orientation (dcm2niix flips rows) before voxels and affines
are compared.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from imaging_lib import sample_data
from imaging_lib.io.dicom import read_dicom_series
from support.archive_series import reinstanced

highdicom_legacy = pytest.importorskip("highdicom.legacy")
DCM2NIIX = shutil.which("dcm2niix")
needs_dcm2niix = pytest.mark.skipif(DCM2NIIX is None, reason="dcm2niix (Debian package dcm2niix) is not installed")


def _stack(files: list[bytes]) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(io.BytesIO(data)) for data in files]


def _legacy_converted(datasets: list[pydicom.Dataset], path: Path) -> Path:
    """Convert single-frame datasets into one legacy-converted enhanced file, as highdicom does."""
    from pydicom.uid import generate_uid

    modality = str(datasets[0].Modality)
    kind = (
        highdicom_legacy.LegacyConvertedEnhancedCTImage
        if modality == "CT"
        else highdicom_legacy.LegacyConvertedEnhancedMRImage
    )
    image = kind(datasets, generate_uid(), 1, generate_uid(), 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save_as(path, enforce_file_format=True)
    return path


def _dcm2niix(path: Path, out: Path | None = None) -> nib.Nifti1Image:
    """dcm2niix's reading of a file or folder (written to ``out``, default next to the file)."""
    out = out or path.parent / "dcm2niix"
    out.mkdir()
    run = subprocess.run(
        [DCM2NIIX, "-o", str(out), "-f", "reference", "-z", "n", "-b", "n", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return nib.load(out / "reference.nii")


def _canonical(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(array), affine))
    return image.get_fdata(), image.affine


def _ct_slices(count: int) -> list[pydicom.Dataset]:
    slices = _stack(reinstanced([sample_data.pydicom_file("CT_small.dcm")], count, patient_id="ENHANCED-CT"))
    for dataset in slices:
        dataset.WindowCenter, dataset.WindowWidth = 40, 400  # CT_small has none: a soft-tissue window
    return slices


def _shifted_slices(count: int) -> list[pydicom.Dataset]:
    """CT slices each stored shifted by its own intercept (-1024, -924, ...): the same HU on every slice."""
    slices = _ct_slices(count)
    for k, dataset in enumerate(slices):
        dataset.RescaleIntercept = -1024 + 100 * k
        dataset.PixelData = (dataset.pixel_array.astype(np.int16) - 100 * k).tobytes()
    return slices


@needs_dcm2niix
def test_enhanced_ct_applies_the_shared_rescale_and_agrees_with_dcm2niix(tmp_path):
    slices = _ct_slices(6)
    path = _legacy_converted(slices, tmp_path / "enhanced_ct.dcm")
    dataset = pydicom.dcmread(path)
    shared = dataset.SharedFunctionalGroupsSequence[0]
    assert float(shared.PixelValueTransformationSequence[0].RescaleIntercept) == -1024
    assert "RescaleIntercept" not in dataset  # only in the functional group: a reader must look there

    volume = read_dicom_series(path)
    ours, ours_affine = _canonical(volume.array, volume.affine)
    reference_image = _dcm2niix(path)
    reference, reference_affine = _canonical(reference_image.get_fdata(), reference_image.affine)
    np.testing.assert_array_equal(ours, reference)
    np.testing.assert_allclose(ours_affine, reference_affine, atol=1e-3)
    hounsfield = slices[0].pixel_array.astype(np.int32) - 1024
    assert volume.array.min() == hounsfield.min() < -800  # air in HU, not 1024 too high
    assert (volume.metadata["window_center"], volume.metadata["window_width"]) == (40.0, 400.0)


@needs_dcm2niix
def test_enhanced_mr_from_papayas_series_agrees_with_dcm2niix_and_with_the_single_frame_files(tmp_path):
    """Voxels as dcm2niix reads the enhanced file; the slice step from the frames' positions.

    Papaya's files say SpacingBetweenSlices 2 mm while their positions are 7 mm apart;
    highdicom copies the 2 mm into the Pixel Measures group and dcm2niix (1.0.20220720)
    takes the enhanced file's step from it. The positions are the truth (dcm2niix on
    the single-frame files agrees), so the affine is checked against that run.
    """
    files = sample_data.brain_series()
    datasets = [pydicom.dcmread(path) for path in files]
    for dataset in datasets:
        for tag in [tag for tag in dataset.keys() if tag.group == 0x0000]:
            del dataset[tag]  # command elements in papaya's files cannot be written to a file
    path = _legacy_converted(datasets, tmp_path / "enhanced" / "enhanced_mr.dcm")
    assert pydicom.dcmread(path, stop_before_pixels=True).NumberOfFrames == len(files)

    volume = read_dicom_series(path)
    ours, ours_affine = _canonical(volume.array, volume.affine)
    enhanced = _dcm2niix(path)
    reference, enhanced_affine = _canonical(enhanced.get_fdata(), enhanced.affine)
    np.testing.assert_array_equal(ours, reference)
    np.testing.assert_allclose(ours_affine[:, [0, 1, 3]], enhanced_affine[:, [0, 1, 3]], atol=1e-3)
    source = _dcm2niix(files[0].parent, tmp_path / "source")
    _, source_affine = _canonical(source.get_fdata(), source.affine)
    np.testing.assert_allclose(ours_affine, source_affine, atol=0.1)  # positions written to 0.1 mm
    single = read_dicom_series(files)
    np.testing.assert_array_equal(volume.array, single.array)
    np.testing.assert_allclose(volume.affine, single.affine, atol=1e-3)


def test_frames_with_their_own_rescale_each_get_theirs(tmp_path):
    """Per-frame Pixel Value Transformation: each slice stored shifted by its own intercept reads as the same HU.

    dcm2niix (1.0.20220720) applies one rescale to all frames, so the reference here is
    the single-frame files the enhanced file was converted from.
    """
    slices = _shifted_slices(4)
    path = _legacy_converted(slices, tmp_path / "per_frame.dcm")
    dataset = pydicom.dcmread(path, stop_before_pixels=True)
    intercepts = [
        float(frame.PixelValueTransformationSequence[0].RescaleIntercept)
        for frame in dataset.PerFrameFunctionalGroupsSequence
    ]
    assert sorted(intercepts) == [-1024, -924, -824, -724]  # per frame, not shared

    volume = read_dicom_series(path)
    single_frame = [tmp_path / f"{k}.dcm" for k in range(len(slices))]
    for target, source in zip(single_frame, slices, strict=True):
        source.save_as(target, enforce_file_format=True)
    np.testing.assert_array_equal(volume.array, read_dicom_series(single_frame).array)
    hounsfield = slices[0].pixel_array.astype(np.int32) + int(slices[0].RescaleIntercept)
    for k in range(volume.shape[2]):
        np.testing.assert_array_equal(volume.array[:, :, k], hounsfield.T)  # the same HU on every slice


def test_the_functional_groups_survive_deidentification_so_ingest_stores_the_same_volume(tmp_path):
    from imaging_lib.ingestion.batch import ingest
    from imaging_lib.store.objects import Store

    slices = _shifted_slices(4)
    path = _legacy_converted(slices, tmp_path / "per_frame.dcm")
    store = Store(tmp_path / "store")
    summary = ingest(path, store, secret="enhanced-ingest-secret-0123456789", progress=False)
    assert len(summary.ingested) == 1 and summary.ok, str(summary)
    (volume_key,) = store.list("volumes/")
    stored, read = store.read_volume(volume_key), read_dicom_series(path)
    np.testing.assert_array_equal(stored.array, read.array)
    np.testing.assert_allclose(stored.affine, read.affine)
    assert stored.array.min() < -800  # HU, each frame's own intercept applied
