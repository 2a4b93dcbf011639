"""Series for archive tests, made from real slices: papaya's brain MR and pydicom's CT_small, re-instanced.

:func:`reinstanced` turns real single-frame files into one new series of any length: new
Study, Series, SOP Instance and Frame of Reference UIDs, slices stepped along the normal
from the first file's position (so the series reads as one regular volume), and the
patient's identifiers (:data:`support.phi.PHI`, with a Patient ID of the caller's) planted
in every instance. :func:`upload` puts the files into Orthanc through its REST API;
:func:`series_answer` and :func:`study_answer` are the QIDO-RS answers a scripted
archive gives for them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from support.phi import PHI

__all__ = ["planted_patient_id", "reinstanced", "series_answer", "study_answer", "uids_of", "upload"]


def planted_patient_id(tag: str) -> str:
    """A Patient ID holding the planted PHI ID (so a leak is found by ``find_phi``) and a test's own tag."""
    return f"{PHI['PatientID']}-{tag}"


def reinstanced(
    sources: Sequence[str | Path],
    count: int,
    *,
    patient_id: str,
    study_date: str = "20240315",
    modality: str | None = None,
    study_uid: str | None = None,
) -> list[bytes]:
    """``count`` instances of one new series made from ``sources`` (cycled), with PHI planted.

    Parameters
    ----------
    sources : sequence of path
        Real single-frame DICOM files of one orientation.
    count : int
        Instances to make.
    patient_id : str
        The Patient ID (the archive query's key).
    study_date : str
        StudyDate (YYYYMMDD).
    modality : str, optional
        Overrides Modality.
    study_uid : str, optional
        Put the series into this study (default a new study).

    Returns
    -------
    list of bytes
        Encoded files, slice k at ``first position + k * step * normal``.
    """
    import pydicom
    from pydicom.uid import generate_uid

    datasets = [pydicom.dcmread(path) for path in sources]
    first = datasets[0]
    orientation = np.asarray(first.ImageOrientationPatient, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    origin = np.asarray(first.ImagePositionPatient, dtype=float)
    step = float(first.get("SliceThickness") or 1.0)
    study_uid = study_uid or generate_uid()
    series_uid, frame_uid = generate_uid(), generate_uid()
    files = []
    for k in range(count):
        dataset = datasets[k % len(datasets)].copy()
        for tag in [tag for tag in dataset.keys() if tag.group == 0x0000]:
            del dataset[tag]  # command elements (papaya's files) cannot be written to a file
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID = study_uid, series_uid
        dataset.FrameOfReferenceUID = frame_uid
        dataset.SOPInstanceUID = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        dataset.ImageOrientationPatient = [float(v) for v in orientation]
        dataset.ImagePositionPatient = [round(float(v), 4) for v in origin + normal * step * k]
        dataset.InstanceNumber = k + 1
        dataset.SliceLocation = round(step * k, 4)
        dataset.PatientID = patient_id
        dataset.PatientName = PHI["PatientName"]
        dataset.PatientBirthDate = PHI["PatientBirthDate"]
        dataset.InstitutionName = PHI["InstitutionName"]
        dataset.ReferringPhysicianName = PHI["ReferringPhysicianName"]
        dataset.AccessionNumber = PHI["AccessionNumber"]
        dataset.StudyDescription = PHI["ScheduledStepComment"]
        dataset.StudyDate = dataset.SeriesDate = study_date
        if modality:
            dataset.Modality = modality
        buffer = io.BytesIO()
        dataset.save_as(buffer, enforce_file_format=True)
        files.append(buffer.getvalue())
    return files


def uids_of(data: bytes) -> tuple[str, str, str]:
    """(Study, Series, SOP Instance UID) of an encoded file."""
    import pydicom

    dataset = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    return str(dataset.StudyInstanceUID), str(dataset.SeriesInstanceUID), str(dataset.SOPInstanceUID)


def upload(orthanc, files: Sequence[bytes], threads: int = 4) -> None:
    """POST every file to Orthanc's ``/instances`` (a few at a time)."""
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(orthanc.upload, files))


def _element(vr: str, *values) -> dict:
    return {"vr": vr, "Value": list(values)} if values else {"vr": vr}


def study_answer(files: Sequence[bytes]) -> bytes:
    """The QIDO-RS answer (DICOM JSON) an archive holding ``files`` gives for their study."""
    import pydicom

    dataset = pydicom.dcmread(io.BytesIO(files[0]), stop_before_pixels=True)
    study = {
        "0020000D": _element("UI", str(dataset.StudyInstanceUID)),
        "00080020": _element("DA", str(dataset.StudyDate)),
        "00100020": _element("LO", str(dataset.PatientID)),
        "00100010": _element("PN", {"Alphabetic": str(dataset.PatientName)}),
        "00080061": _element("CS", str(dataset.Modality)),
        "00201208": _element("IS", len(files)),
    }
    return json.dumps([study]).encode()


def series_answer(files: Sequence[bytes]) -> bytes:
    """The QIDO-RS answer an archive holding ``files`` gives for their study's series."""
    import pydicom

    dataset = pydicom.dcmread(io.BytesIO(files[0]), stop_before_pixels=True)
    series = {
        "0020000D": _element("UI", str(dataset.StudyInstanceUID)),
        "0020000E": _element("UI", str(dataset.SeriesInstanceUID)),
        "00080060": _element("CS", str(dataset.Modality)),
        "00201209": _element("IS", len(files)),
    }
    return json.dumps([series]).encode()
